"""Refining a searched candidate's parallel layout with best_layout.

optimize and cheapest price every shape and batch on one layout per device count (data parallel, with the
tensor and pipeline sizes given); the best of each count is then handed to best_layout, which tries every
tensor x pipeline x interleave x data split, sequence parallelism, ZeRO 0-3, recomputation and micro-batch
for that model and global batch on that many devices. A faster feasible layout replaces the searched one.
Refining the winner of each count the same way keeps the rule "more devices never hurt": the best over a
larger set of counts is the best over a superset of the same refined plans.
"""
from __future__ import annotations

from typing import Optional

from timelaw.config import TrainSetup

__all__ = ["faster_layout"]


def faster_layout(candidates, index: int, estimator, devices: int, method: str) -> Optional[tuple[TrainSetup, float]]:
    """(setup, seconds per step) of the fastest layout of the candidate at `index` on `devices` devices,
    when it is faster than the candidate's own; None otherwise (or when no layout of it fits)."""
    from timelaw.plan.layout import best_layout

    if devices <= 1:
        return None
    cfg, setup = candidates.config_and_setup(index)
    try:
        layout = best_layout(cfg, setup, profile=estimator, devices=devices, method=method, top=1)
    except ValueError:  # nothing fits under best_layout's memory count: keep the searched layout
        return None
    searched = float(candidates.column("seconds_per_step")[index])
    return (layout.setup, layout.seconds_per_step) if layout.seconds_per_step < searched else None
