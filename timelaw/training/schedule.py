"""Learning-rate schedules over training progress p in (0, 1]: linear warm-up, then cosine or linear decay.

The trainer sets p = (steps done + 1) / (steps planned), where the plan is re-estimated before every step
from the measured step time and the budget left, so the last step of the budget runs at p = 1: the final LR.
"""
from __future__ import annotations

import math

__all__ = ["SCHEDULES", "lr_at", "default_lr"]

SCHEDULES = ("cosine", "linear")


def lr_at(progress: float, peak: float, schedule: str = "cosine", warmup_fraction: float = 0.05,
          final_fraction: float = 0.1) -> float:
    """LR at `progress` in (0, 1]: warm-up to `peak`, then decay to `final_fraction` x peak at progress 1."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}")
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup_fraction:
        return peak * progress / warmup_fraction
    decayed = (progress - warmup_fraction) / (1.0 - warmup_fraction) if warmup_fraction < 1 else 1.0
    shape = 0.5 * (1 + math.cos(math.pi * decayed)) if schedule == "cosine" else 1.0 - decayed
    return peak * (final_fraction + (1 - final_fraction) * shape)


def default_lr(d_model: int) -> float:
    """Peak AdamW LR for small models: 3e-3 up to width 64, then falling as 1/sqrt(width) (stable without
    gradient clipping in our runs; wider models want smaller steps)."""
    return 3e-3 * min(1.0, math.sqrt(64 / d_model))
