"""Paying for a run: how many devices, at what price, and the cheapest plan that reaches a loss by a deadline.

A device count n trains n data-parallel copies of the model (each a TrainSetup with data_parallel x n),
priced by the step-time model with its collectives on the profile's interconnect; the candidates of every
count are searched and the best kept. Money: dollars = devices x hours x dollars_per_device_hour (an idle
device counts as paid), energy = devices x hours x watts_per_device. Counts are the powers of two up to
max_devices (and max_devices itself); on a System, powers of two inside one node and then whole nodes (1, 2,
4, ... nodes, and the most that max_devices allows), each priced on the links it crosses. Each count is
searched on the tensor and pipeline sizes asked for (default: every device a data-parallel copy); the best
candidate of each count then gets the fastest layout best_layout finds for it (timelaw.plan.refine).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from timelaw.config import TrainSetup
from timelaw.plan.evaluate import law_inputs, loss_for_tokens

__all__ = ["Prices", "device_counts", "devices_per_node", "with_devices", "layouts", "costed", "loss_at_steps",
           "steps_to_reach", "fastest_to_reach", "positive_number"]


def positive_number(value, name: str) -> float:
    """`value` as a float, or a ValueError naming `name` unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Prices:
    """What a device-hour costs, in dollars and in watts (None: not priced)."""

    dollars_per_device_hour: Optional[float] = None
    watts_per_device: Optional[float] = None

    def __post_init__(self):
        for name in ("dollars_per_device_hour", "watts_per_device"):
            if getattr(self, name) is not None:
                positive_number(getattr(self, name), name)

    def dollars(self, devices: int, hours: float) -> Optional[float]:
        return None if self.dollars_per_device_hour is None else devices * hours * self.dollars_per_device_hour

    def energy_kwh(self, devices: int, hours: float) -> Optional[float]:
        return None if self.watts_per_device is None else devices * hours * self.watts_per_device / 1000.0


def device_counts(max_devices, devices_per_node: Optional[int] = None) -> tuple[int, ...]:
    """1, 2, 4, ... up to max_devices and max_devices itself; with `devices_per_node` (a System), the powers
    of two inside one node, then whole nodes: 1, 2, 4, ... nodes and the most whole nodes max_devices allows."""
    if isinstance(max_devices, bool) or not isinstance(max_devices, (int, np.integer)) or max_devices < 1:
        raise ValueError(f"max_devices must be a whole number >= 1, got {max_devices!r}")
    powers = {2 ** k for k in range(int(math.log2(max_devices)) + 1)}
    if devices_per_node is None or max_devices < devices_per_node:
        return tuple(sorted(powers | {int(max_devices)}))
    nodes = int(max_devices) // devices_per_node
    within = {n for n in powers if n < devices_per_node}
    whole = {devices_per_node * 2 ** k for k in range(int(math.log2(nodes)) + 1)} | {devices_per_node * nodes}
    return tuple(sorted(within | whole))


def devices_per_node(estimator) -> Optional[int]:
    """The node size of the System the estimator prices on, or None for a bare device profile."""
    system = getattr(estimator, "system", None)
    return None if system is None else int(system.devices_per_node)


def with_devices(setup: TrainSetup, devices: int, tensor_parallel: int = 1, pipeline_parallel: int = 1,
                 shard_optimizer: bool = False) -> TrainSetup:
    """`setup` over `devices` devices: tensor-parallel groups of `tensor_parallel`, `pipeline_parallel`
    stages, the rest data-parallel copies (its global batch is chosen by the search). shard_optimizer: with
    several data-parallel copies, at least ZeRO stage 1 (the optimizer state sharded: the same traffic as the
    all-reduce, a 1 / dp update, room for models the copies could not hold whole)."""
    if devices == 1 and tensor_parallel == 1 and pipeline_parallel == 1:
        return setup
    model_parallel = tensor_parallel * pipeline_parallel
    fields = {**setup.model_dump(), "data_parallel": setup.data_parallel * devices // model_parallel,
              "tensor_parallel": tensor_parallel, "pipeline_parallel": pipeline_parallel, "global_batch_size": None}
    if shard_optimizer and fields["data_parallel"] > 1:
        fields["zero_stage"] = max(setup.zero_stage, 1)
    return TrainSetup(**fields)


def _whole_numbers(sizes, name: str) -> list[int]:
    for t in sizes:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
            raise ValueError(f"{name} must hold whole numbers >= 1, got {t!r}")
    return [int(t) for t in sizes]


def layouts(max_devices, node_size: Optional[int], tensor_parallel_sizes=(1,), counts=None,
            pipeline_parallel_sizes=(1,)) -> list[tuple[int, int, int]]:
    """(devices, tensor_parallel, pipeline_parallel) to search: each device count (`counts`, or those
    max_devices implies) with each allowed tensor-parallel size that fits in a node (a tensor-parallel group
    across nodes is not searched) and each pipeline depth, where tensor x pipeline divides the count. None at
    all is a ValueError."""
    tensors = _whole_numbers(tensor_parallel_sizes, "tensor_parallel_sizes")
    pipelines = _whole_numbers(pipeline_parallel_sizes, "pipeline_parallel_sizes")
    triples = []
    for devices in (device_counts(max_devices, node_size) if counts is None else counts):
        for t in tensors:
            for p in pipelines:
                if devices % (t * p) == 0 and (node_size is None or t <= node_size):
                    triples.append((devices, t, p))
    if not triples:
        raise ValueError(f"no device count up to {max_devices} splits into tensor_parallel_sizes {tuple(tensors)} "
                         f"x pipeline_parallel_sizes {tuple(pipelines)}")
    return triples


def costed(prediction, prices: Prices):
    """The Prediction with its dollars and energy filled in for its devices and budget."""
    return replace(prediction, dollars=prices.dollars(prediction.devices, prediction.hours),
                   energy_kwh=prices.energy_kwh(prediction.devices, prediction.hours))


def loss_at_steps(candidates, indices, steps, law_choice, unique_tokens) -> np.ndarray:
    """The predicted loss of each candidate at `indices` after `steps` optimizer steps."""
    col = {n: candidates.column(n)[indices] for n in ("tokens_per_step", "d_model", "n_layers", "vocab_size")}
    n_law = candidates.column("n_total" if law_choice.n_count == "total" else "n_non_embedding")[indices]
    inputs = law_inputs(col["d_model"], col["n_layers"], col["tokens_per_step"], col["vocab_size"])
    return loss_for_tokens(law_choice, n_law, np.asarray(steps, dtype=np.float64) * col["tokens_per_step"],
                           unique_tokens, **inputs)


def steps_to_reach(candidates, indices, target_loss: float, law_choice, unique_tokens, min_steps: int,
                   max_steps) -> np.ndarray:
    """The fewest optimizer steps (>= min_steps) at which each candidate at `indices` reaches `target_loss`,
    by bisection on whole steps; every candidate must reach it within its `max_steps`. The loss falls as
    steps grow, so the bisection is exact."""
    indices = np.asarray(indices)
    low = np.full(indices.size, max(min_steps, 1) - 1.0)  # fails (or is below the floor of steps)
    high = np.asarray(max_steps, dtype=np.float64).copy()  # reaches the target
    while np.any(high - low > 1):
        middle = np.floor((low + high) / 2)
        reached = loss_at_steps(candidates, indices, middle, law_choice, unique_tokens) <= target_loss
        high = np.where(reached, middle, high)
        low = np.where(reached, low, middle)
    return high


def fastest_to_reach(candidates, indices, target_loss: float, law_choice, unique_tokens, min_steps: int,
                     max_steps) -> tuple[int, float]:
    """(position in `indices`, steps) of the candidate that reaches `target_loss` in the least time, steps x
    seconds per step, each within its `max_steps` (the first on a tie): steps_to_reach's bisection, run
    only on the candidates that can still win. After each halving a candidate whose fewest possible steps
    already cost more than some candidate's most possible is dropped, so the answer is exact while most of
    the candidates leave after a few halvings."""
    indices = np.asarray(indices)
    seconds = candidates.column("seconds_per_step")[indices]
    low = np.full(indices.size, max(min_steps, 1) - 1.0)
    high = np.asarray(max_steps, dtype=np.float64).copy()
    live = np.ones(indices.size, dtype=bool)
    while True:
        live &= (low + 1) * seconds <= np.min(high * seconds)  # fewest possible vs the best most-possible
        open_ = live & (high - low > 1)
        if not open_.any():
            break
        which = np.flatnonzero(open_)
        middle = np.floor((low[which] + high[which]) / 2)
        reached = loss_at_steps(candidates, indices[which], middle, law_choice, unique_tokens) <= target_loss
        high[which] = np.where(reached, middle, high[which])
        low[which] = np.where(reached, low[which], middle)
    survivors = np.flatnonzero(live)
    k = int(survivors[np.argmin(high[survivors] * seconds[survivors])])  # argmin: the first on a tie
    return k, float(high[k])
