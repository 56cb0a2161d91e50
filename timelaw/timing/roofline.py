"""Per-operation roofline: max(compute time, memory time) with efficiencies measured on the device.

For each op of the ledger, compute time uses the achieved matmul rate for its shape (interpolated from the
profile's sweep) and memory time the achieved bandwidth of its class; kernel launches add a fixed cost each.
The per-class sums are then combined by a non-negative linear fit to real steps, which absorbs what the
roofline cannot see: overlap, fusion and framework overhead.
"""
from __future__ import annotations

import numpy as np

from timelaw.ledger import Op, ledger
from timelaw.timing.base import StepTimeEstimator, as_shapes
from timelaw.timing.parallel import collective_seconds, pipeline_factor

__all__ = ["RooflineEstimator", "op_seconds", "GROUP_OF_CLASS"]

# Feature groups: one fitted coefficient each. Memory-bound classes share one: they run the same kind of
# kernel and a small calibration set cannot separate them.
GROUP_OF_CLASS = {
    "matmul": "matmul", "attention": "attention", "optimizer": "optimizer", "communication": "communication",
    "elementwise": "memory_bound", "norm": "memory_bound", "softmax": "memory_bound",
    "embedding": "memory_bound", "loss": "memory_bound",
}
GROUPS = ("matmul", "attention", "memory_bound", "optimizer", "communication")


def op_seconds(op: Op, profile, precision: str) -> np.ndarray:
    """Roofline seconds of one occurrence of `op`, launch cost excluded."""
    if op.cls == "communication":
        return collective_seconds(op, profile)
    if op.gemm is not None:
        batch, m, n, k = op.gemm
        rate = profile.matmul_rate(precision, batch * m, n, k)
    else:
        rate = profile.peak(precision)
    compute = np.asarray(op.flops) / rate
    memory = np.asarray(op.bytes_read + op.bytes_written) / profile.bandwidth(op.cls)
    return np.maximum(compute, memory)


class RooflineEstimator(StepTimeEstimator):
    name = "roofline"
    feature_names = tuple(f"{g}_seconds" for g in GROUPS) + ("kernel_launch_seconds", "constant_seconds")

    def op_times(self, cfg, setup) -> list[tuple[Op, np.ndarray, np.ndarray]]:
        """(op, roofline seconds per step, pipeline stretch) for every op, before the fit's coefficients."""
        shapes = as_shapes(cfg, setup)
        bubble = pipeline_factor(setup.pipeline_parallel, shapes.grad_accum_steps)
        times = []
        for op in ledger(shapes, setup).ops:
            stretch = bubble if op.phase in ("forward", "backward", "recompute") else 1.0
            times.append((op, op_seconds(op, self.profile, setup.precision) * op.count * stretch, stretch))
        return times

    def features(self, cfg, setup):
        columns = {g: 0.0 for g in GROUPS}
        launches = 0.0
        for op, seconds, stretch in self.op_times(cfg, setup):
            columns[GROUP_OF_CLASS[op.cls]] = columns[GROUP_OF_CLASS[op.cls]] + seconds
            launches = launches + op.kernels * op.count * stretch
        launch_seconds = np.asarray(launches) * self.profile.kernel_seconds
        stacked = np.broadcast_arrays(*(np.asarray(columns[g], dtype=np.float64) for g in GROUPS), launch_seconds)
        return np.stack([*stacked, np.ones_like(stacked[0])], axis=-1)

    def breakdown(self, cfg, setup) -> dict[str, float]:
        """Predicted seconds per op class for one config: where the step time goes."""
        scale = dict(zip(self.feature_names, self.coef_))
        out: dict[str, float] = {}
        for op, seconds, _ in self.op_times(cfg, setup):
            group = f"{GROUP_OF_CLASS[op.cls]}_seconds"
            out[op.cls] = out.get(op.cls, 0.0) + float(np.sum(seconds)) * scale[group]
        launches = self.features(cfg, setup)[..., -2]
        out["kernel_launches"] = float(np.sum(launches)) * scale["kernel_launch_seconds"]
        out["constant"] = scale["constant_seconds"]
        return out
