"""Costs that only exist with several devices: collectives and the pipeline's critical path.

All-reduce time comes from the profile's measured table (bytes -> seconds per group size) when it has one,
else from a ring model: 2 (g - 1) / g x bytes / link bandwidth + 2 (g - 1) x latency. Point-to-point sends
cost bytes / bandwidth + latency.

A 1F1B pipeline of p stages running m micro-batches takes about (m - 1) x (slowest stage) + (sum of all
stages) per step (Narayanan et al. 2021). The blocks are split evenly, the first stage also runs the
embeddings and the last the head and loss, so the last stage is the slowest and the step takes
(m + p - 1) x (one stage's blocks) + m x (head and loss) + 1 x (embeddings). `critical_path_factor` gives
each op the factor that turns its per-step total into its share of that critical path.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from timelaw.devices.profile import DeviceSpec
from timelaw.ledger import Op

__all__ = ["collective_seconds", "ring_all_reduce_seconds", "pipeline_factor", "critical_path_factor",
           "HALF_ALL_REDUCE", "DDP_BUCKET_BYTES", "overlapped_gradient_all_reduce"]

MICRO_BATCH_PHASES = ("forward", "backward", "recompute")  # repeated for each micro-batch
# A ring all-reduce is a reduce-scatter then an all-gather: (g - 1) / g of the message and g - 1 latencies
# each. Measured tables hold all-reduces only, so these are priced as half of one.
HALF_ALL_REDUCE = ("reduce_scatter", "all_gather")


def collective_seconds(op: Op, profile: DeviceSpec) -> np.ndarray:
    """Seconds of one occurrence of a communication op."""
    g, message = op.group_size, np.asarray(op.message_bytes, dtype=np.float64)
    if op.collective == "all_reduce":
        if profile.allreduce is not None and g in profile.allreduce.by_group_size:
            return profile.allreduce.seconds(g, message)
        latency = profile.interconnect_latency_seconds
        return ring_all_reduce_seconds(message, g, _link_bandwidth(profile), latency)
    if op.collective == "p2p":
        return message / _link_bandwidth(profile) + profile.interconnect_latency_seconds
    if op.collective in HALF_ALL_REDUCE:  # each is one half of a ring all-reduce of the same message
        return 0.5 * collective_seconds(replace(op, collective="all_reduce"), profile)
    raise ValueError(f"unknown collective {op.collective!r} in op {op.name}")


def ring_all_reduce_seconds(message_bytes, group_size: int, bandwidth: float, latency_seconds: float):
    """A ring all-reduce: each rank sends and receives 2 (g - 1) / g of the message in 2 (g - 1) steps."""
    g, message = group_size, np.asarray(message_bytes, dtype=np.float64)
    return 2 * (g - 1) / g * message / bandwidth + 2 * (g - 1) * latency_seconds


def _link_bandwidth(profile: DeviceSpec) -> float:
    if profile.interconnect_bandwidth <= 0:
        raise ValueError(f"profile {profile.name!r} has no interconnect bandwidth and no all-reduce table, "
                         "so it cannot price multi-device training; calibrate with several ranks")
    return profile.interconnect_bandwidth


# torch DDP's default bucket (bucket_cap_mb=25): gradients are all-reduced in buckets of this many bytes
DDP_BUCKET_BYTES = 25 * 2 ** 20


def overlapped_gradient_all_reduce(op_times, micro_batches, layers_per_stage=1) -> list:
    """(op, seconds, factor) with the data-parallel collectives cut to the part the compute cannot hide, as
    torch DDP and FSDP (and Megatron's --overlap-grad-reduce, DeepSpeed's overlap_comm) run them.

    Each collective overlaps the work of its micro-batch that produces or consumes it: the gradient
    all-reduce (ZeRO 0) and the once-per-step reduce-scatter (ZeRO 1) run in buckets beside the last
    micro-batch's backward; ZeRO 2's and 3's reduce-scatters beside each backward; ZeRO 3's weight gathers,
    prefetched one block ahead, beside each forward and each backward. A share b of the traffic cannot be
    hidden (the last bucket, b = min(1, 25 MiB / message); for ZeRO 3, the first block's weights, b =
    1 / layers on the stage), so with T the collectives of one window and W the compute beside them:
    exposed = max(b x T, T - (1 - b) x W). The all-gather of updated weights after a ZeRO 1-2 step stays
    exposed (its overlap with the next forward, Megatron's --overlap-param-gather, is not modelled), and so
    does contention between the collectives and the compute.
    """
    m = np.asarray(micro_batches, dtype=np.float64)
    hidden_by = {"forward": "forward", "backward": "backward", "communication": "backward"}
    compute = {phase: sum(seconds / factor for op, seconds, factor in op_times
                          if op.phase == phase and op.axis != "data") / m for phase in ("forward", "backward")}
    windows: dict[str, list[int]] = {}
    for i, (op, _, _) in enumerate(op_times):
        if op.axis == "data" and op.phase in hidden_by and not (op.phase == "communication"
                                                                and op.collective == "all_gather"):
            windows.setdefault(op.phase, []).append(i)
    out = list(op_times)
    for phase, members in windows.items():
        # seconds of one window: per micro-batch for the micro-batch phases, once for the per-step ones
        per_window = m if phase in MICRO_BATCH_PHASES else 1.0
        traffic = sum(out[i][1] / out[i][2] for i in members) / per_window
        message = sum(np.asarray(out[i][0].message_bytes, dtype=np.float64) for i in members)
        sharded_weights = any(out[i][0].name.startswith("params.") for i in members)
        last = 1.0 / np.asarray(layers_per_stage, dtype=np.float64) if sharded_weights else np.minimum(
            1.0, DDP_BUCKET_BYTES / message)
        exposed = np.maximum(last * traffic, traffic - (1.0 - last) * compute[hidden_by[phase]])
        keep = np.divide(exposed, traffic, out=np.ones_like(np.asarray(traffic * 1.0)), where=np.asarray(traffic) > 0)
        for i in members:
            op, seconds, factor = out[i]
            out[i] = (op, seconds * keep, factor)
    return out


def pipeline_factor(pipeline_parallel: int, micro_batches, interleave: int = 1) -> np.ndarray:
    """How much longer each stage's per-micro-batch work takes on a 1F1B pipeline: (m + p - 1) / m; with
    `interleave` = v model chunks per stage the fill and drain shrink v-fold: (m + (p - 1) / v) / m
    (Narayanan et al. 2021, the interleaved schedule)."""
    m = np.asarray(micro_batches, dtype=np.float64)
    if interleave == 1:
        return (m + pipeline_parallel - 1) / m
    return (m + (pipeline_parallel - 1) / interleave) / m


def critical_path_factor(op: Op, pipeline_parallel: int, micro_batches, interleave: int = 1) -> np.ndarray:
    """The factor from an op's per-step total (count x cost) to its time on the step's critical path.

    Per-step ops (optimizer, gradient all-reduce) run once: 1. Per-micro-batch ops of the blocks wait for
    the pipeline to fill and drain: (m + p - 1) / m. The head and loss run on the slowest (last) stage, so
    every micro-batch of them is on the path: 1. The embeddings of the first stage are on it only while the
    pipeline fills, once per step: 1 / m (1 when there is one stage, which is then also the last). With an
    interleaved schedule the blocks' factor is (m + (p - 1) / v) / m; the ends stay where they were (the
    first chunk of the first stage, the last chunk of the last).
    """
    m = np.asarray(micro_batches, dtype=np.float64)
    if op.phase not in MICRO_BATCH_PHASES:
        return np.ones_like(m)
    if op.stage == "all":
        return pipeline_factor(pipeline_parallel, m, interleave)
    if op.stage == "first" and pipeline_parallel > 1:
        return 1.0 / m
    return np.ones_like(m)
