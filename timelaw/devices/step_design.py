"""The designed set of reference training steps that calibration times on a device.

Fit shapes are drawn at random from a grid of widths, depths, batches and context lengths; held-out shapes
are built so that they test what matters to users: families of equal parameter count at different
depth/width, and a span of at least 10x in parameters. Shapes whose step would be too slow for the budget
of the run are dropped using the ledger's flop count and a rough device rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.ledger import ledger

__all__ = ["StepDesign", "design_steps"]

Step = tuple[TransformerConfig, TrainSetup]


@dataclass(frozen=True)
class StepDesign:
    """Grid and limits for one kind of device."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seq_lens: tuple[int, ...]
    batches: tuple[int, ...]
    vocab_size: int
    precision: str
    rough_flops_per_second: float  # only to skip shapes that would take too long
    max_step_seconds: float
    # (width, depth) families of equal non-embedding parameters (12 d^2 L), held out from the fit
    holdout_families: tuple[tuple[tuple[int, int], ...], ...]
    # (width, depth, seq_len, batch) at the small and large ends, so the held-out set spans >= 10x in params
    holdout_extremes: tuple[tuple[int, int, int, int], ...]


CPU = StepDesign(
    widths=(64, 128, 192, 256, 384, 512), depths=(1, 2, 3, 4, 6, 8), seq_lens=(64, 128, 256),
    batches=(1, 2, 4, 8), vocab_size=2048, precision="fp32", rough_flops_per_second=1.5e10,
    max_step_seconds=1.0,
    holdout_families=(((64, 32), (128, 8), (256, 2)), ((128, 16), (256, 4), (512, 1))),
    holdout_extremes=((64, 1, 64, 2), (512, 4, 64, 2)),
)
GPU = StepDesign(
    widths=(256, 512, 768, 1024, 1536, 2048), depths=(2, 4, 6, 8, 12, 16, 24), seq_lens=(256, 512, 1024, 2048),
    batches=(1, 2, 4, 8, 16), vocab_size=32768, precision="bf16", rough_flops_per_second=3e14,
    max_step_seconds=0.5,
    holdout_families=(((512, 16), (1024, 4), (2048, 1)), ((768, 24), (1536, 6)), ((256, 16), (512, 4))),
    holdout_extremes=((256, 2, 512, 2), (2048, 12, 1024, 4)),
)


def _step(design: StepDesign, width: int, depth: int, seq: int, batch: int) -> Step:
    cfg = TransformerConfig(d_model=width, n_layers=depth, n_heads=max(1, width // 64),
                            vocab_size=design.vocab_size, seq_len=seq)
    return cfg, TrainSetup(micro_batch_size=batch, precision=design.precision)


def _rough_seconds(design: StepDesign, step: Step) -> float:
    return ledger(*step).total("flops") / design.rough_flops_per_second


def design_steps(device_type: str, n_fit: int = 24, seed: int = 0, scale: float = 1.0) -> tuple[list[Step], list[Step]]:
    """(fit steps, held-out steps) for a device type ("cpu" or a GPU type); `scale` < 1 shrinks the
    time limit per step, for quick runs."""
    design = CPU if device_type == "cpu" else GPU
    limit = design.max_step_seconds * scale
    rng = np.random.default_rng(seed)
    mid_seq, mid_batch = design.seq_lens[1], design.batches[1]

    holdout = []
    for family in design.holdout_families:
        holdout += [_step(design, w, d, mid_seq, mid_batch) for w, d in family]
    # batch and context length varied away from the families' setting
    holdout += [_step(design, design.widths[2], design.depths[2], design.seq_lens[-1], design.batches[0]),
                _step(design, design.widths[1], design.depths[3], design.seq_lens[0], design.batches[-1])]
    holdout += [_step(design, *shape) for shape in design.holdout_extremes]
    holdout = [s for s in holdout if _rough_seconds(design, s) <= limit]
    held = {(c.d_model, c.n_layers, c.seq_len, s.micro_batch_size) for c, s in holdout}

    fit, seen = [], set(held)
    for _ in range(50 * n_fit):
        if len(fit) == n_fit:
            break
        key = (int(rng.choice(design.widths)), int(rng.choice(design.depths)),
               int(rng.choice(design.seq_lens)), int(rng.choice(design.batches)))
        if key in seen:
            continue
        seen.add(key)
        step = _step(design, *key)
        if _rough_seconds(design, step) <= limit:
            fit.append(step)
    return fit, holdout
