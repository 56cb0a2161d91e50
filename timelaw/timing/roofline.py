"""Per-operation roofline: max(compute time, memory time) with efficiencies measured on the device.

For each op of the ledger, compute time uses the achieved matmul rate for its shape (interpolated from the
profile's sweep) and memory time the achieved bandwidth of its class; collectives use the profile's
all-reduce table or link model. Each op's total is weighted by its share of the step's critical path (the
pipeline's fill and drain, see `timing/parallel.py`). The per-class sums are then combined by a non-negative
linear fit to real steps, which absorbs what the roofline cannot see: overlap, fusion, framework overhead.

Two host-side terms: `kernel_launch_seconds` counts every kernel launch at the profile's launch cost, as
time added to the device's (a CPU, where the thread that launches also computes). On an accelerator the host
queues kernels ahead of the device, so a micro-batch costs max(device time, host time): `host_bound_seconds`
is the host time the device cannot hide, max(0, kernels x host cost per kernel - device roofline time).
The host cost per kernel belongs to the framework more than to the device (a few microseconds for eager
PyTorch, tens for Megatron with its hooks and recomputation), so `fit` chooses it on the fitting data.
"""
from __future__ import annotations

import numpy as np

from timelaw.ledger import Op
from timelaw.timing.base import (
    StepTimeEstimator, as_shapes, grouped_shapes, measured_seconds, nnls_relative, step_ledger,
)
from timelaw.timing.parallel import (
    MICRO_BATCH_PHASES, collective_seconds, critical_path_factor, overlapped_gradient_all_reduce,
)
from timelaw.timing import network

__all__ = ["RooflineEstimator", "op_seconds", "op_group", "GROUP_OF_CLASS", "GROUPS", "HOST_SECONDS_GRID"]

# Feature groups: one fitted coefficient each. Memory-bound classes share one: they run the same kind of
# kernel and a small calibration set cannot separate them. Collectives are grouped by the parallel axis they
# serve: tensor-parallel all-reduces sit between a layer's kernels, pipeline sends synchronise the stages,
# gradient all-reduces run once per step, and each departs from its bandwidth model in its own way.
GROUP_OF_CLASS = {
    "matmul": "matmul", "attention": "attention", "optimizer": "optimizer",
    "elementwise": "memory_bound", "norm": "memory_bound", "softmax": "memory_bound",
    "embedding": "memory_bound", "loss": "memory_bound",
}
GROUPS = ("matmul", "attention", "memory_bound", "optimizer", "tensor_parallel", "pipeline_parallel",
          "data_parallel", "network")
# A collective that crosses nodes on a System is priced on the network and fitted as its own group: a
# coefficient fitted on one node's links says nothing about the network (a fit that never saw the network
# keeps it at 1, priced as the System's links say; see StepTimeEstimator.fit).
# Candidate host costs per kernel that `fit` chooses from: 1 us to 1 ms, four per octave.
HOST_SECONDS_GRID = np.geomspace(1e-6, 1e-3, 41)


def op_group(op: Op) -> str:
    """The feature group of an op: its class, or for a collective the parallel axis it serves."""
    return f"{op.axis}_parallel" if op.cls == "communication" else GROUP_OF_CLASS[op.cls]


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
    feature_names = tuple(f"{g}_seconds" for g in GROUPS) + (
        "kernel_launch_seconds", "host_bound_seconds", "constant_seconds")

    def __init__(self, profile, coefficients: dict[str, float] | None = None):
        super().__init__(profile, coefficients)
        # Until fitted (or given with the coefficients), the host is assumed as fast as the launch benchmark.
        self.host_seconds_per_kernel_ = (coefficients or {}).get("host_seconds_per_kernel",
                                                                  self.profile.kernel_seconds)

    @property
    def host_seconds_per_kernel(self) -> float:
        """The host's cost per kernel: given with the coefficients, else chosen by `fit`."""
        return self.host_seconds_per_kernel_

    @property
    def overlaps_host(self) -> bool:
        """Whether the host queues kernels ahead of the device (every device but a CPU)."""
        return self.profile.device_type != "cpu"

    # Profiles fitted before the network group existed: priced as the System's links say.
    default_coefficients = {"network_seconds": 1.0}

    @property
    def never_seen_features(self) -> tuple[str, ...]:
        return () if self.system is not None else ("network_seconds",)  # one node has no network

    def feature_group(self, op: Op, setup) -> str:
        """op_group, except that a collective crossing nodes of the System is in the "network" group."""
        if op.cls == "communication" and self.system is not None and network.crosses_nodes(op, self.system, setup):
            return "network"
        return op_group(op)

    def op_times(self, cfg, setup, step=None) -> list[tuple[Op, np.ndarray, np.ndarray]]:
        """(op, roofline seconds on the step's critical path, critical-path factor) for every op."""
        shapes = as_shapes(cfg, setup)
        network.check_layout(setup, self.system)
        times = []
        for op in step_ledger(shapes, setup, step).ops:
            factor = critical_path_factor(op, setup.pipeline_parallel, shapes.grad_accum_steps,
                                          setup.pipeline_interleave)
            if op.cls == "communication" and self.system is not None:  # priced on the tiers it crosses
                seconds = network.collective_seconds(op, self.system, setup)
            else:
                seconds = op_seconds(op, self.profile, setup.precision)
            times.append((op, seconds * op.count * factor, factor))
        if setup.overlap_grad_reduce:  # DDP / FSDP: data-parallel collectives beside the compute
            times = overlapped_gradient_all_reduce(times, shapes.grad_accum_steps,
                                                   shapes.n_layers / setup.pipeline_parallel)
        return times

    def _parts(self, op_times, setup) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features before the host term: (group seconds and launch seconds, (..., 9)), and the micro-batch
        ops' device seconds and kernel count, from which the host term follows for any host cost."""
        columns = {g: 0.0 for g in GROUPS}
        launches = device = kernels = 0.0
        for op, seconds, factor in op_times:
            group = self.feature_group(op, setup)
            columns[group] = columns[group] + seconds
            # a GPU runs torch's foreach optimizer: a few multi-tensor kernels, not one per tensor
            per_op = op.foreach_kernels if self.overlaps_host and op.foreach_kernels is not None else op.kernels
            launched = per_op * op.count * factor
            launches = launches + launched
            if op.phase in MICRO_BATCH_PHASES:
                device, kernels = device + seconds, kernels + launched
        launch_seconds = np.asarray(launches) * self.profile.kernel_seconds
        stacked = np.broadcast_arrays(*(np.asarray(columns[g], dtype=np.float64) for g in GROUPS), launch_seconds)
        return np.stack(stacked, axis=-1), np.asarray(device), np.asarray(kernels)

    def _assemble(self, parts, host_seconds_per_kernel: float) -> np.ndarray:
        base, device, kernels = parts
        if self.overlaps_host:
            host_bound = np.maximum(0.0, kernels * host_seconds_per_kernel - device)
        else:
            host_bound = np.zeros_like(device)
        host_bound = np.broadcast_to(host_bound, base.shape[:-1])
        return np.concatenate([base, host_bound[..., None], np.ones_like(host_bound)[..., None]], axis=-1)

    def features(self, cfg, setup, step=None):
        return self._assemble(self._parts(self.op_times(cfg, setup, step), setup), self.host_seconds_per_kernel)

    def fit(self, measurements) -> "RooflineEstimator":
        """Choose the host cost per kernel that fits best (when the host overlaps the device), then NNLS."""
        measurements = list(measurements)
        if not (self.overlaps_host and len(measurements) >= self.required_measurements):
            return super().fit(measurements)  # no host term to choose (or too few steps: refused there)
        seconds = measured_seconds(measurements)
        # one ledger per group of shapes: the host term follows from these parts for any host cost
        parts = [(group, self._parts(self.op_times(shapes, setup), setup))
                 for setup, group, shapes in grouped_shapes(measurements)]

        def rows(host_seconds):
            X = np.empty((len(measurements), len(self.feature_names)))
            for group, part in parts:
                X[group] = self._assemble(part, host_seconds)
            return X

        self.host_seconds_per_kernel_ = float(min(HOST_SECONDS_GRID, key=lambda h: nnls_relative(rows(h), seconds)[1]))
        return self._fit_rows(rows(self.host_seconds_per_kernel_), seconds)

    @property
    def coefficients(self) -> dict[str, float]:
        return {**super().coefficients, "host_seconds_per_kernel": float(self.host_seconds_per_kernel)}

    def breakdown(self, cfg, setup, step=None) -> dict[str, float]:
        """Predicted seconds per op class (collectives per parallel axis) for one config, plus launches, the
        host-bound time and the constant: where the step time goes. The values sum to the prediction."""
        scale = dict(zip(self.feature_names, self.coef_))
        out: dict[str, float] = {}
        times = self.op_times(cfg, setup, step)
        for op, seconds, _ in times:
            name = op_group(op) if op.cls == "communication" else op.cls
            out[name] = out.get(name, 0.0) + float(np.sum(seconds)) * scale[f"{self.feature_group(op, setup)}_seconds"]
        features = self._assemble(self._parts(times, setup), self.host_seconds_per_kernel)
        out["kernel_launches"] = float(np.sum(features[..., -3])) * scale["kernel_launch_seconds"]
        out["host_bound"] = float(np.sum(features[..., -2])) * scale["host_bound_seconds"]
        out["constant"] = scale["constant_seconds"]
        return out
