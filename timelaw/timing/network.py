"""Collectives priced on the tiers of a System's network: inside a node, and between nodes.

Placement. Ranks are numbered tensor-parallel innermost, then data-parallel, then pipeline stages (as
Megatron and torchtitan lay them out), and filled into nodes in order: ranks 0 .. devices_per_node - 1 on
the first node, and so on. A tensor-parallel group is then ranks r .. r + tp - 1 (in one node whenever tp
divides devices_per_node); a data-parallel group strides by tp; consecutive pipeline stages are tp x dp
ranks apart. A tensor-parallel group larger than a node is allowed: it spans nodes and is priced as one
that does.

All-reduce of M bytes over a group with k members on each of N nodes:

- N = 1: on the intra-node link: the measured intra-node table at k ranks if there is one (else the
  device's own table), else a ring, 2 (k - 1) / k x M / (bandwidth x efficiency) + 2 (k - 1) x latency;
- N > 1, hierarchically: a reduce-scatter inside each node leaves each member with M / k, an all-reduce of
  that across the N nodes (each member over its own network link, in parallel), then an all-gather inside
  the node. The reduce-scatter and all-gather together cost one intra-node all-reduce of M (priced as
  above); the inter-node all-reduce is a ring over N of M / k bytes on the inter-node link (or the measured
  inter-node table, for groups of whole nodes). NCCL cuts the message into chunks and pipelines them
  through the tiers, so the collective takes as long as its slowest tier: max(intra, inter), not the sum.
  The ring's 2 (N - 1) / N factor and its 2 (N - 1) latencies make the effective bandwidth fall as the node
  count grows.

Point-to-point sends between pipeline stages: bytes / (bandwidth x efficiency) + latency on the inter-node
link when any pair of consecutive stages sits on different nodes (1F1B keeps the stages in lock step, so
the slowest boundary sets the pace), else on the intra-node link.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from timelaw.config import TrainSetup
from timelaw.devices.system import Link, System
from timelaw.ledger import Op
from timelaw.timing.parallel import HALF_ALL_REDUCE

__all__ = ["check_layout", "group_spread", "pipeline_crosses_nodes", "collective_seconds", "all_reduce_seconds",
           "intra_node_all_reduce_seconds", "ring_all_reduce_seconds", "p2p_seconds"]


def check_layout(setup: TrainSetup, system: System | None) -> None:
    """Refuse a layout that does not use exactly the devices of a system of a given size (ValidationError
    naming data_parallel, the usual free axis, with the whole product in the message)."""
    if system is None or system.n_devices is None or setup.n_devices == system.n_devices:
        return
    message = (
        f"tensor_parallel x pipeline_parallel x data_parallel = {setup.tensor_parallel} x "
        f"{setup.pipeline_parallel} x {setup.data_parallel} = {setup.n_devices} devices, but the system "
        f"{system.name!r} has {system.nodes} nodes of {system.devices_per_node} = {system.n_devices}")
    detail = InitErrorDetails(type=PydanticCustomError("value_error", "{msg}", {"msg": message}),
                              loc=("data_parallel",), input=setup.data_parallel)
    raise ValidationError.from_exception_data("TrainSetup", [detail])


@lru_cache(maxsize=4096)
def group_spread(stride: int, size: int, n_devices: int, devices_per_node: int) -> tuple[int, int]:
    """(most members of one group on one node, most nodes one group spans) over every group of `size` ranks
    `stride` apart among n_devices ranks filled into nodes in order."""
    ranks = np.arange(n_devices)
    block = stride * size
    # the group of rank r: the ranks of its block (r // block) with the same offset r % stride
    group = (ranks // block) * stride + ranks % stride
    node = ranks // devices_per_node
    pairs = np.unique(np.stack([group, node], axis=1), axis=0, return_counts=True)
    (group_of_pair, _), counts = pairs[0].T, pairs[1]
    nodes_spanned = np.bincount(group_of_pair)
    return int(counts.max()), int(nodes_spanned.max())


@lru_cache(maxsize=4096)
def pipeline_crosses_nodes(stage_stride: int, n_devices: int, devices_per_node: int) -> bool:
    """Whether any rank and its next stage's rank (stage_stride = tp x dp ranks later) are on different nodes."""
    ranks = np.arange(n_devices - stage_stride)
    return bool(np.any(ranks // devices_per_node != (ranks + stage_stride) // devices_per_node))


def ring_all_reduce_seconds(message_bytes, group_size: int, link: Link) -> np.ndarray:
    """A ring all-reduce: each rank sends and receives 2 (g - 1) / g of the message in 2 (g - 1) steps."""
    g, message = group_size, np.asarray(message_bytes, dtype=np.float64)
    return 2 * (g - 1) / g * message / link.effective_bandwidth + 2 * (g - 1) * link.latency_seconds


def intra_node_all_reduce_seconds(message_bytes, group_size: int, system: System) -> np.ndarray:
    """An all-reduce among `group_size` devices of one node: the measured table, else a ring."""
    if group_size <= 1:
        return np.zeros_like(np.asarray(message_bytes, dtype=np.float64))
    for table in (system.intra_node_allreduce, system.device.allreduce):
        if table is not None and group_size in table.by_group_size:
            return table.seconds(group_size, message_bytes)
    return ring_all_reduce_seconds(message_bytes, group_size, system.intra_node)


def all_reduce_seconds(message_bytes, per_node: int, nodes: int, system: System) -> np.ndarray:
    """An all-reduce of a group with `per_node` members on each of `nodes` nodes (see the module doc)."""
    if nodes <= 1:
        return intra_node_all_reduce_seconds(message_bytes, per_node, system)
    table, ranks = system.inter_node_allreduce, per_node * nodes
    if table is not None and per_node == system.devices_per_node and ranks in table.by_group_size:
        return table.seconds(ranks, message_bytes)
    intra = intra_node_all_reduce_seconds(message_bytes, per_node, system)  # reduce-scatter + all-gather
    inter = ring_all_reduce_seconds(np.asarray(message_bytes, dtype=np.float64) / per_node, nodes,
                                    system.inter_node)
    return np.maximum(intra, inter)


def p2p_seconds(message_bytes, link: Link) -> np.ndarray:
    return np.asarray(message_bytes, dtype=np.float64) / link.effective_bandwidth + link.latency_seconds


def _all_reduce_group(op: Op, setup: TrainSetup) -> tuple[int, int]:
    """(stride, size) of the ranks an all-reduce op runs over."""
    tp, dp, pp = setup.tensor_parallel, setup.data_parallel, setup.pipeline_parallel
    if op.axis == "tensor":
        return 1, tp
    if op.axis == "data":
        return tp, dp
    if op.axis == "pipeline":  # the tied embedding's gradient, between the first and the last stage
        return tp * dp * (pp - 1), 2
    raise ValueError(f"op {op.name} serves no known parallel axis ({op.axis!r})")


def collective_seconds(op: Op, system: System, setup: TrainSetup) -> np.ndarray:
    """Seconds of one occurrence of a communication op of `setup`'s layout on `system`."""
    n, per_node_max = setup.n_devices, system.devices_per_node
    if op.collective == "p2p":
        crosses = pipeline_crosses_nodes(setup.tensor_parallel * setup.data_parallel, n, per_node_max)
        return p2p_seconds(op.message_bytes, system.inter_node if crosses else system.intra_node)
    if op.collective in ("all_reduce",) + HALF_ALL_REDUCE:
        stride, size = _all_reduce_group(op, setup)
        if size != op.group_size:
            raise ValueError(f"op {op.name} runs over {op.group_size} ranks, but the layout's "
                             f"{op.axis} group has {size}")
        per_node, nodes = group_spread(stride, size, n, per_node_max)
        seconds = all_reduce_seconds(op.message_bytes, per_node, nodes, system)
        # a reduce-scatter or an all-gather is either half of the all-reduce, tier by tier
        return seconds if op.collective == "all_reduce" else 0.5 * seconds
    raise ValueError(f"unknown collective {op.collective!r} in op {op.name}")
