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
- N > 1, as NCCL's ring (the default, `System.inter_node_algorithm = "ring"`): one ring through all
  n = k N ranks, cut into as many channels as the node has network links, so each node's links together
  carry 2 (n - 1) / n of the message: 2 (n - 1) / n x M / min(k x inter-node bandwidth, intra-node
  bandwidth) (each x its efficiency). Of the ring's 2 (n - 1) steps, 2 (N - 1) cross the network and pay
  its latency, the rest the intra-node latency (NCCL's own tuning model counts them so). The bus bandwidth
  is then bounded by the node's network bandwidth, which is what nccl-tests measure on 3+ nodes;
- or NCCL's double binary tree: the node's links carry the message twice (up, reduced, and down,
  broadcast), 2 M / that bandwidth, with a latency of 2 ((k - 1) intra-node + log2 N network) steps: the
  ring's bandwidth, nearly, without its latency linear in the ranks. NCCL runs whichever its tuning model
  says is faster; so does this (the minimum), so small messages on many nodes take the tree;
- N = 2 with `inter_node_algorithm = "hierarchical"` (NCCL's NVLS tree on NVLink SHARP
  systems): a reduce-scatter inside each node leaves each member with M / k, an all-reduce of that
  between the two nodes (each member over its own network link, in parallel), then an all-gather inside
  the node. The reduce-scatter and all-gather together cost one intra-node all-reduce of M (priced as
  above); NCCL pipelines chunks through the tiers, so the collective takes as long as its slower tier,
  max(intra, inter). This beats the ring by up to 2x on two nodes only: on 3+ nodes NCCL's maintainers
  report no algorithm above the node's network bandwidth, so those are priced as the ring;
- a measured inter-node table (groups of whole nodes) replaces all of these at the rank counts it holds;
  at other counts of whole nodes the model's time is scaled by measured / modelled at the nearest measured
  count (a two-node measurement faster than the model is not carried to 3+ nodes).

A reduce-scatter or an all-gather (ZeRO, sequence parallelism, the pipeline's tensor-group gathers) is half
of the ring all-reduce of the same message, tier by tier: NCCL runs them on rings only.

Sources: NCCL's tuning model (NVIDIA/nccl, src/graph/tuning.cc: ring steps 2 (n - 1), of them 2 (N - 1)
over the network; tree latency in log2 N); maintainers in NVIDIA/nccl #508, #1031 and NVIDIA/nccl-tests
#169 (two-node results can exceed the network card; 3+ nodes do not).

Contention in the fabric (bus bandwidth falling with the node count on some RoCE clusters) is not
modelled: measure the table on such a cluster.

Point-to-point sends between pipeline stages: bytes / (bandwidth x efficiency) + latency on the inter-node
link when any pair of consecutive stages sits on different nodes (1F1B keeps the stages in lock step, so
the slowest boundary sets the pace), else on the intra-node link.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from timelaw.config import TrainSetup
from timelaw.devices.system import Link, System
from timelaw.ledger import Op
from timelaw.timing.parallel import HALF_ALL_REDUCE

__all__ = ["check_layout", "group_spread", "pipeline_crosses_nodes", "crosses_nodes", "collective_seconds",
           "all_reduce_seconds", "intra_node_all_reduce_seconds", "ring_all_reduce_seconds", "cross_node_ring_seconds",
           "cross_node_tree_seconds", "p2p_seconds"]


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


def all_reduce_seconds(message_bytes, per_node: int, nodes: int, system: System,
                       ring_only: bool = False) -> np.ndarray:
    """An all-reduce of a group with `per_node` members on each of `nodes` nodes (see the module doc).
    ring_only: price the ring alone across nodes (NCCL's reduce-scatter and all-gather have no tree)."""
    if nodes <= 1:
        return intra_node_all_reduce_seconds(message_bytes, per_node, system)
    table, ranks = system.inter_node_allreduce, per_node * nodes
    if table is not None and per_node == system.devices_per_node:
        if ranks in table.by_group_size:
            return table.seconds(ranks, message_bytes)
        return _scaled_by_the_table(message_bytes, nodes, system, ring_only)
    return _modelled_all_reduce_seconds(message_bytes, per_node, nodes, system, ring_only)


def _scaled_by_the_table(message_bytes, nodes: int, system: System, ring_only: bool) -> np.ndarray:
    """Whole nodes at a count the measured table lacks: the model's time, scaled by measured / modelled at
    the measured count nearest in log nodes (the cluster's own efficiency, carried over). A two-node
    measurement faster than the model (NCCL's two-node trees beat the network card, which 3+ nodes cannot)
    does not speed up other counts."""
    table, k = system.inter_node_allreduce, system.devices_per_node
    measured = sorted(r // k for r in table.by_group_size)
    near = min(measured, key=lambda n: (abs(math.log(n / nodes)), -n))
    ratio = table.seconds(near * k, message_bytes) / _modelled_all_reduce_seconds(
        message_bytes, k, near, system, ring_only)
    if near == 2 and nodes > 2:
        ratio = np.maximum(ratio, 1.0)
    return ratio * _modelled_all_reduce_seconds(message_bytes, k, nodes, system, ring_only)


def _modelled_all_reduce_seconds(message_bytes, per_node: int, nodes: int, system: System,
                                 ring_only: bool) -> np.ndarray:
    """NCCL's ring or tree (or, on two nodes of a hierarchical system, reduce-inside-first), the fastest."""
    choices = [cross_node_ring_seconds(message_bytes, per_node, nodes, system)]
    if ring_only:
        return choices[0]
    choices.append(cross_node_tree_seconds(message_bytes, per_node, nodes, system))
    if nodes == 2 and system.inter_node_algorithm == "hierarchical":
        intra = intra_node_all_reduce_seconds(message_bytes, per_node, system)  # reduce-scatter + all-gather
        inter = ring_all_reduce_seconds(np.asarray(message_bytes, dtype=np.float64) / per_node, nodes,
                                        system.inter_node)
        choices.append(np.maximum(intra, inter))
    return np.minimum.reduce(choices)  # NCCL runs the algorithm its model says is fastest


def _node_bandwidth(per_node: int, system: System) -> float:
    """Bytes/s a node's members move across the network at once (one link each), or the intra-node link
    if that is slower."""
    return min(per_node * system.inter_node.effective_bandwidth, system.intra_node.effective_bandwidth)


def cross_node_ring_seconds(message_bytes, per_node: int, nodes: int, system: System) -> np.ndarray:
    """NCCL's ring through `per_node` x `nodes` ranks: the node's network links (one per member) carry
    2 (n - 1) / n of the message; 2 (nodes - 1) of its 2 (n - 1) steps cross the network."""
    n, message = per_node * nodes, np.asarray(message_bytes, dtype=np.float64)
    network_steps = 2 * (nodes - 1)
    latency = (network_steps * system.inter_node.latency_seconds
               + (2 * (n - 1) - network_steps) * system.intra_node.latency_seconds)
    return 2 * (n - 1) / n * message / _node_bandwidth(per_node, system) + latency


def cross_node_tree_seconds(message_bytes, per_node: int, nodes: int, system: System) -> np.ndarray:
    """NCCL's double binary tree: each node's links carry the message twice (reduced up, broadcast down),
    a little more than the ring, but its latency grows with log2(nodes), not with the ranks: the faster
    for small messages on many nodes."""
    message = np.asarray(message_bytes, dtype=np.float64)
    latency = 2 * ((per_node - 1) * system.intra_node.latency_seconds
                   + math.ceil(math.log2(nodes)) * system.inter_node.latency_seconds)
    return 2 * message / _node_bandwidth(per_node, system) + latency


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


def _spread(op: Op, system: System, setup: TrainSetup) -> tuple[int, int]:
    """(most members of the op's group on one node, most nodes it spans) for a collective of the layout."""
    stride, size = _all_reduce_group(op, setup)
    if size != op.group_size:
        raise ValueError(f"op {op.name} runs over {op.group_size} ranks, but the layout's {op.axis} group has {size}")
    return group_spread(stride, size, setup.n_devices, system.devices_per_node)


def _p2p_crosses_nodes(system: System, setup: TrainSetup) -> bool:
    return pipeline_crosses_nodes(setup.tensor_parallel * setup.data_parallel, setup.n_devices,
                                  system.devices_per_node)


def crosses_nodes(op: Op, system: System, setup: TrainSetup) -> bool:
    """Whether a communication op of `setup`'s layout on `system` travels over the network between nodes."""
    if op.collective == "p2p":
        return _p2p_crosses_nodes(system, setup)
    return _spread(op, system, setup)[1] > 1


def collective_seconds(op: Op, system: System, setup: TrainSetup) -> np.ndarray:
    """Seconds of one occurrence of a communication op of `setup`'s layout on `system`."""
    if op.collective == "p2p":
        link = system.inter_node if _p2p_crosses_nodes(system, setup) else system.intra_node
        return p2p_seconds(op.message_bytes, link)
    if op.collective in ("all_reduce",) + HALF_ALL_REDUCE:
        per_node, nodes = _spread(op, system, setup)
        if op.collective == "all_reduce":
            return all_reduce_seconds(op.message_bytes, per_node, nodes, system)
        # a reduce-scatter or an all-gather is either half of the ring all-reduce, tier by tier
        return 0.5 * all_reduce_seconds(op.message_bytes, per_node, nodes, system, ring_only=True)
    raise ValueError(f"unknown collective {op.collective!r} in op {op.name}")
