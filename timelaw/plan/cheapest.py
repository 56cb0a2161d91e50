"""cheapest: the plan that reaches a target loss by a deadline at the least cost.

For every device count (timelaw.plan.cost) every candidate shape and batch is priced once; those whose loss
at the deadline reaches the target get the fewest steps that reach it (bisection on whole steps), hence
their hours and cost = devices x hours x price (device-hours when no price is given). The cheapest wins, the
fastest on a tie. Its Prediction is built by predict_loss's own code for exactly that many steps.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from timelaw.config import TrainSetup
from timelaw.plan.cost import (Prices, costed, devices_per_node, fastest_to_reach, layouts, loss_at_steps,
                               positive_number, steps_to_reach, with_devices)
from timelaw.plan.inputs import resolve_device, resolve_law, resolve_setup
from timelaw.plan.predict import Prediction, predict_resolved
from timelaw.plan.refine import faster_layout
from timelaw.plan.search import outcome, price_candidates
from timelaw.plan.space import SearchSpace

__all__ = ["cheapest"]

_ONE_STEP_MORE = 1 + 1e-12  # the budget of exactly k steps, kept above k x seconds by rounding


def cheapest(target_loss: float, deadline_hours: float, *, profile=None, max_devices: int = 1,
             dollars_per_device_hour: float | None = None, watts_per_device: float | None = None, law=None,
             unique_tokens=None, setup: TrainSetup | None = None, space: SearchSpace | None = None,
             method: str = "roofline", n_count: str | None = None, devices=None, tensor_parallel_sizes=(1,),
             pipeline_parallel_sizes=(1,), refine_layout: bool = True, **space_options) -> Prediction:
    """The cheapest plan (devices, shape, batch, hours) that reaches `target_loss` within `deadline_hours`.

    Returns a Prediction with .devices, .hours, .dollars (None without a price: then device-hours are
    minimised), .loss (at most the target), .config and .setup. Raises ValueError when no plan reaches the
    target in time, giving the best loss that the deadline allows. Other arguments as in optimize;
    `devices` (a sequence of counts) replaces the counts max_devices implies, e.g. devices=[64] for one count;
    tensor_parallel_sizes, pipeline_parallel_sizes and refine_layout as in optimize (the cheapest plan of each
    device count gets the fastest layout best_layout finds for it, which only lowers its cost).
    """
    target = positive_number(target_loss, "target_loss")
    deadline = positive_number(deadline_hours, "deadline_hours") * 3600.0
    prices = Prices(dollars_per_device_hour, watts_per_device)
    space = (space or SearchSpace()).updated(**space_options)
    estimator, device = resolve_device(profile, method)
    setup = resolve_setup(setup, device)
    law_choice = resolve_law(law, unique_tokens, n_count)
    best, best_reachable = None, (np.inf, None)
    start = time.perf_counter()
    triples = layouts(max_devices, devices_per_node(estimator), tensor_parallel_sizes,
                      counts=None if devices is None else tuple(devices),
                      pipeline_parallel_sizes=pipeline_parallel_sizes)
    counts = sorted({n for n, _, _ in triples})
    for devices, tensor, pipeline in triples:
        candidates = price_candidates(space, with_devices(setup, devices, tensor, pipeline, refine_layout), estimator)
        at_deadline = outcome(candidates, deadline, law_choice, unique_tokens, space.min_steps)
        if np.isfinite(at_deadline.loss).any():
            i = int(at_deadline.ranked(top=1)[0])
            if at_deadline.loss[i] < best_reachable[0]:
                best_reachable = (float(at_deadline.loss[i]), (devices, candidates, i))
        for plan in _plans(candidates, at_deadline, target, deadline, devices, estimator, method, law_choice,
                           unique_tokens, space.min_steps, prices, refine_layout):
            if best is None or plan[:2] < best[:2]:
                best = plan
    if best is None:
        raise ValueError(_unreachable(target, deadline_hours, max(counts), best_reachable))
    _, seconds, steps, candidates, index, best_setup = best
    cfg = candidates.config_and_setup(index)[0]
    budget = seconds * _ONE_STEP_MORE
    prediction = predict_resolved(cfg, budget, best_setup, estimator, law_choice, unique_tokens, method)
    note = (f"the cheapest of every shape, batch and device count in {list(counts)} that reaches loss "
            f"{target:g} within {deadline_hours:g} h (searched in {time.perf_counter() - start:.1f} s)")
    return replace(costed(prediction, prices), notes=prediction.notes + (note,))


def _plans(candidates, at_deadline, target: float, deadline: float, devices: int, estimator, method: str,
           law_choice, unique_tokens, min_steps: int, prices: Prices, refine_layout: bool) -> list[tuple]:
    """This device count's plans that reach the target by the deadline, as (cost, seconds, steps,
    candidates, index, setup): the cheapest searched candidate, on its fastest layout; and, with
    refine_layout, the candidate of lowest loss at the deadline on its fastest layout (optimize's pick, which
    its faster layout may bring within reach)."""
    rate = prices.dollars_per_device_hour or 1.0
    refined: dict[int, object] = {}  # best_layout once per candidate: both picks may be the same one

    def fastest(index: int):
        if index not in refined:
            refined[index] = faster_layout(candidates, index, estimator, devices, method) if refine_layout else None
        return refined[index]

    def plan(index: int, steps: float, step_seconds: float, setup) -> tuple:
        return devices * steps * step_seconds / 3600.0 * rate, steps * step_seconds, steps, candidates, index, setup

    plans = []
    able = np.flatnonzero(at_deadline.loss <= target)
    if able.size:  # on one device count the cheapest is the fastest: cost = devices x time x price
        k, steps_k = fastest_to_reach(candidates, able, target, law_choice, unique_tokens, min_steps,
                                      at_deadline.steps[able])
        index = int(able[k])
        faster = fastest(index)
        if faster is None:
            searched = candidates.config_and_setup(index)[1]
            plans.append(plan(index, steps_k, float(candidates.column("seconds_per_step")[index]), searched))
        else:  # the same steps on a faster layout: sooner, cheaper
            plans.append(plan(index, steps_k, faster[1], faster[0]))
    if refine_layout and np.isfinite(at_deadline.loss).any():
        index = int(at_deadline.ranked(top=1)[0])
        faster = fastest(index)
        if faster is not None:
            most = np.floor(deadline / faster[1])
            if most >= max(min_steps, 1) and loss_at_steps(candidates, [index], [most], law_choice,
                                                            unique_tokens)[0] <= target:
                steps_k = float(steps_to_reach(candidates, [index], target, law_choice, unique_tokens, min_steps,
                                               [most])[0])
                plans.append(plan(index, steps_k, faster[1], faster[0]))
    return plans


def _unreachable(target: float, deadline_hours: float, max_devices: int, best_reachable) -> str:
    loss, where = best_reachable
    if where is None:
        return (f"no plan reaches loss {target:g} within {deadline_hours:g} h: no candidate of the search space "
                "fits the device's memory and the step limits")
    devices, candidates, i = where
    cfg, _ = candidates.config_and_setup(i)
    return (f"no plan reaches loss {target:g} within {deadline_hours:g} h on up to {max_devices} devices: the "
            f"best loss reachable by then is {loss:.4f} (d_model={cfg.d_model}, n_layers={cfg.n_layers} on "
            f"{devices} devices); raise the deadline or max_devices, or aim higher")
