"""The designed set of reference training steps that calibration times on a device.

Fit shapes are drawn at random from a grid of widths, depths, batches and context lengths (on a GPU also
precisions, activation recomputation and gradient accumulation); held-out shapes are built so that they test
what matters to users: families of equal parameter count at different depth/width, and a span of at least 10x
in parameters. Shapes whose step would be too slow for the budget of the run are dropped using the ledger's
flop count and a rough device rate, and shapes whose training memory would not fit the device are dropped
using the ledger's memory footprint.

`benchmark_steps` is a third set, for benchmarks/time_accuracy.py: shapes neither the fit nor its held-out
steps use, timed after calibration to score a profile.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.ledger import ledger

__all__ = ["StepDesign", "design_steps", "benchmark_steps", "CPU", "GPU"]

Step = tuple[TransformerConfig, TrainSetup]
MEMORY_FRACTION = 0.7  # of the device's memory a designed step may need (the ledger's footprint)


@dataclass(frozen=True)
class StepDesign:
    """Grid and limits for one kind of device."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seq_lens: tuple[int, ...]
    batches: tuple[int, ...]
    vocab_size: int
    precision: str  # of the held-out steps, and of the fit steps unless `fit_precisions` says otherwise
    rough_flops_per_second: float  # only to skip shapes that would take too long (at `precision`)
    max_step_seconds: float
    # (width, depth) families of equal non-embedding parameters (12 d^2 L), held out from the fit
    holdout_families: tuple[tuple[tuple[int, int], ...], ...]
    # (width, depth, seq_len, batch) at the small and large ends, so the held-out set spans >= 10x in params
    holdout_extremes: tuple[tuple[int, int, int, int], ...]
    # Fit steps draw a precision from this tuple (repeat one to weight it); rough rates per precision.
    fit_precisions: tuple[str, ...] = ()
    rough_rates: dict = field(default_factory=dict)
    # Chance that a fit step recomputes activations / accumulates over two micro-batches.
    recompute_share: float = 0.0
    accumulate_share: float = 0.0


CPU = StepDesign(
    widths=(64, 128, 192, 256, 384, 512), depths=(1, 2, 3, 4, 6, 8), seq_lens=(64, 128, 256),
    batches=(1, 2, 4, 8), vocab_size=2048, precision="fp32", rough_flops_per_second=1.5e10,
    max_step_seconds=1.0,
    holdout_families=(((64, 32), (128, 8), (256, 2)), ((128, 16), (256, 4), (512, 1))),
    holdout_extremes=((64, 1, 64, 2), (512, 4, 64, 2)),
)
# Sized for an H100/H200 (bf16 ~400 TFLOP/s achieved in a training step, fp32 without TF32 ~40): most steps
# take 10-250 ms, so the matmuls are compute-bound, with a few small ones where the host's launches show.
GPU = StepDesign(
    widths=(512, 768, 1024, 1536, 2048, 3072), depths=(2, 4, 6, 8, 12, 16, 24), seq_lens=(512, 1024, 2048),
    batches=(2, 4, 8, 16, 32), vocab_size=32768, precision="bf16", rough_flops_per_second=4e14,
    max_step_seconds=0.5,
    holdout_families=(((1024, 16), (2048, 4)), ((768, 24), (1536, 6)), ((512, 16), (1024, 4))),
    holdout_extremes=((512, 2, 512, 2), (3072, 12, 2048, 4)),
    fit_precisions=("bf16", "bf16", "bf16", "fp32"), rough_rates={"bf16": 4e14, "fp32": 4e13, "fp16": 4e14},
    recompute_share=0.25, accumulate_share=0.25,
)


def _step(design: StepDesign, width: int, depth: int, seq: int, batch: int, precision: str | None = None,
          recompute: bool = False, accumulate: int = 1) -> Step:
    cfg = TransformerConfig(d_model=width, n_layers=depth, n_heads=max(1, width // 64),
                            vocab_size=design.vocab_size, seq_len=seq)
    setup = TrainSetup(micro_batch_size=batch, precision=precision or design.precision,
                       activation_checkpointing="full" if recompute else "none",
                       global_batch_size=batch * accumulate)
    return cfg, setup


def _rough_seconds(design: StepDesign, step: Step) -> float:
    rate = design.rough_rates.get(step[1].precision, design.rough_flops_per_second)
    return ledger(*step).total("flops") / rate


def _fits(step: Step, memory_bytes: float | None) -> bool:
    return memory_bytes is None or float(ledger(*step).memory.total_bytes) <= MEMORY_FRACTION * memory_bytes


def design_steps(device_type: str, n_fit: int = 24, seed: int = 0, scale: float = 1.0,
                 memory_bytes: float | None = None) -> tuple[list[Step], list[Step]]:
    """(fit steps, held-out steps) for a device type ("cpu" or a GPU type); `scale` < 1 shrinks the
    time limit per step, for quick runs; steps needing more than 70% of `memory_bytes` are left out."""
    design = CPU if device_type == "cpu" else GPU
    limit = design.max_step_seconds * scale
    rng = np.random.default_rng(seed)
    mid_seq, mid_batch = design.seq_lens[1], design.batches[1]

    def keep(step):
        return _rough_seconds(design, step) <= limit and _fits(step, memory_bytes)

    holdout = []
    for family in design.holdout_families:
        holdout += [_step(design, w, d, mid_seq, mid_batch) for w, d in family]
    # batch and context length varied away from the families' setting
    holdout += [_step(design, design.widths[2], design.depths[2], design.seq_lens[-1], design.batches[0]),
                _step(design, design.widths[1], design.depths[3], design.seq_lens[0], design.batches[-1])]
    holdout += [_step(design, *shape) for shape in design.holdout_extremes]
    holdout = [s for s in holdout if keep(s)]
    held = {(c.d_model, c.n_layers, c.seq_len, s.micro_batch_size) for c, s in holdout}

    fit, seen = [], set(held)
    for _ in range(50 * n_fit):
        if len(fit) == n_fit:
            break
        key = (int(rng.choice(design.widths)), int(rng.choice(design.depths)),
               int(rng.choice(design.seq_lens)), int(rng.choice(design.batches)))
        # Only designs with variants draw them, so the CPU design's shapes stay those of earlier versions.
        variant = {}
        if design.fit_precisions:
            variant["precision"] = str(rng.choice(design.fit_precisions))
        if design.recompute_share:
            variant["recompute"] = bool(rng.random() < design.recompute_share)
        if design.accumulate_share:
            variant["accumulate"] = 2 if rng.random() < design.accumulate_share else 1
        if key in seen:
            continue
        seen.add(key)
        step = _step(design, *key, **variant)
        if keep(step):
            fit.append(step)
    return fit, holdout


def _bench(width, depth, heads, seq, batch, vocab, precision="fp32", recompute=False, accumulate=1) -> Step:
    cfg = TransformerConfig(d_model=width, n_layers=depth, n_heads=heads, vocab_size=vocab, seq_len=seq)
    return cfg, TrainSetup(micro_batch_size=batch, precision=precision,
                           activation_checkpointing="full" if recompute else "none",
                           global_batch_size=batch * accumulate)


# Six fp32 CPU shapes off the calibration grid (widths that are not multiples the grid uses, other head
# counts and context lengths) and not used by the tests: the issue-14 stability check scores on these.
CPU_BENCHMARK = (
    (320, 3, 5, 128, 2, 2048), (448, 2, 7, 64, 4, 2048), (576, 1, 9, 96, 2, 2048),
    (96, 6, 3, 160, 4, 2048), (224, 4, 4, 128, 2, 2048), (160, 8, 5, 192, 1, 2048),
)
# GPU shapes off the calibration grid, each in bf16 and fp32, with and without recomputation and
# gradient accumulation (fp32 only on the smaller ones: without TF32 it runs ~10x slower).
GPU_BENCHMARK = ((1280, 10, 10, 1024, 4, 32768), (2560, 6, 20, 2048, 2, 32768), (640, 12, 10, 1536, 4, 32768))


def benchmark_steps(device_type: str, variants: bool = True, memory_bytes: float | None = None) -> list[Step]:
    """Held-out steps for scoring a profile, none of them in `design_steps` (see CPU_BENCHMARK)."""
    steps = []
    if device_type == "cpu":
        steps = [_bench(*shape) for shape in CPU_BENCHMARK]
        if variants:  # recomputation and accumulation on two of them
            steps += [_bench(*CPU_BENCHMARK[0], recompute=True), _bench(*CPU_BENCHMARK[1], accumulate=2)]
    else:
        for i, shape in enumerate(GPU_BENCHMARK):
            precisions = ("bf16", "fp32") if i != 1 else ("bf16",)
            for precision in precisions:
                steps.append(_bench(*shape, precision=precision))
                if variants:
                    steps += [_bench(*shape, precision=precision, recompute=True),
                              _bench(*shape, precision=precision, accumulate=2)]
    return [s for s in steps if _fits(s, memory_bytes)]
