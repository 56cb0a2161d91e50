"""Costs that only exist with several devices: collectives and the pipeline bubble.

All-reduce time comes from the profile's measured table (bytes -> seconds per group size) when it has one,
else from a ring model: 2 (g - 1) / g x bytes / link bandwidth + 2 (g - 1) x latency. Point-to-point sends
cost bytes / bandwidth + latency. With a 1F1B pipeline of p stages and m micro-batches, each stage is busy
for m of the m + p - 1 slots, so per-micro-batch work takes (m + p - 1) / m times longer.
"""
from __future__ import annotations

import numpy as np

from timelaw.devices.profile import DeviceProfile
from timelaw.ledger import Op

__all__ = ["collective_seconds", "pipeline_factor"]


def collective_seconds(op: Op, profile: DeviceProfile) -> np.ndarray:
    """Seconds of one occurrence of a communication op."""
    g, message = op.group_size, np.asarray(op.bytes_read, dtype=np.float64)
    if op.collective == "all_reduce":
        if profile.allreduce is not None and g in profile.allreduce.by_group_size:
            return profile.allreduce.seconds(g, message)
        bandwidth = _link_bandwidth(profile)
        return 2 * (g - 1) / g * message / bandwidth + 2 * (g - 1) * profile.interconnect_latency_seconds
    if op.collective == "p2p":
        return message / _link_bandwidth(profile) + profile.interconnect_latency_seconds
    raise ValueError(f"unknown collective {op.collective!r} in op {op.name}")


def _link_bandwidth(profile: DeviceProfile) -> float:
    if profile.interconnect_bandwidth <= 0:
        raise ValueError(f"profile {profile.name!r} has no interconnect bandwidth and no all-reduce table, "
                         "so it cannot price multi-device training; calibrate with several ranks")
    return profile.interconnect_bandwidth


def pipeline_factor(pipeline_parallel: int, micro_batches) -> np.ndarray:
    """How much longer per-micro-batch work takes on a 1F1B pipeline: (m + p - 1) / m."""
    m = np.asarray(micro_batches, dtype=np.float64)
    return (m + pipeline_parallel - 1) / m
