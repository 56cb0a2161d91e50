"""optimize: the shape with the lowest predicted loss for a time budget, by vectorised search.

Step times do not depend on the budget, so the candidates are priced once (`Candidates`) and every budget
after that costs one law evaluation over the arrays: frontier and the U-curves reuse the same Candidates.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Optional

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig, sequences_per_step
from timelaw.plan.evaluate import Evaluated, evaluate, law_inputs, loss_for_tokens, steps_in, training_memory
from timelaw.plan.inputs import LawChoice, resolve_device, resolve_law, resolve_setup, single_budget
from timelaw.plan.predict import GIB, Prediction, predict_resolved
from timelaw.plan.bounds import bound_note, bounds_hit
from timelaw.plan.cost import Prices, costed, devices_per_node, layouts, positive_number, with_devices
from timelaw.plan.refine import faster_layout
from timelaw.plan.space import SearchSpace, candidate_batches

__all__ = ["Candidates", "Outcome", "Plan", "optimize", "price_candidates"]

TABLE_COLUMNS = (
    "rank", "loss", "n_params", "tokens", "steps", "d_model", "n_layers", "n_heads", "head_dim", "mlp", "seq_len",
    "micro_batch_size", "global_batch_size", "tokens_per_step", "seconds_per_step", "tokens_per_second",
    "memory_gib",
)


@dataclass(frozen=True)
class Candidates:
    """Every candidate that fits in the device's memory, priced: one Evaluated per MLP kind."""

    parts: tuple
    n_generated: int
    seconds: float  # wall time to generate and price them

    def column(self, name: str) -> np.ndarray:
        return self._columns[name]

    @cached_property
    def _columns(self) -> dict:
        names = ("seconds_per_step", "tokens_per_step", "n_total", "n_non_embedding", "memory_bytes")
        cols = {n: np.concatenate([getattr(p, n) for p in self.parts]) for n in names}
        for n in ("d_model", "n_layers", "n_heads", "seq_len", "micro_batch_size", "grad_accum_steps", "vocab_size"):
            cols[n] = np.concatenate([np.broadcast_to(getattr(p.shapes, n), p.n_total.shape) for p in self.parts])
        cols["mlp"] = np.concatenate([np.full(p.n_total.shape, p.shapes.mlp) for p in self.parts])
        return cols

    @property
    def size(self) -> int:
        return int(sum(p.n_total.size for p in self.parts))

    def locate(self, index: int) -> Evaluated:
        """The candidate at flat `index`, as a batch of one."""
        for part in self.parts:
            if index < part.n_total.size:
                return part.take(index)
            index -= part.n_total.size
        raise IndexError(index)

    def config_and_setup(self, index: int) -> tuple[TransformerConfig, TrainSetup]:
        one = self.locate(index)
        micro, accum = int(one.shapes.micro_batch_size), int(one.shapes.grad_accum_steps)
        global_batch = sequences_per_step(micro, one.setup.data_parallel, accum)
        setup = TrainSetup(**{**one.setup.model_dump(), "micro_batch_size": micro,
                              "global_batch_size": global_batch})
        return one.shapes.to_config(), setup


def price_candidates(space: SearchSpace, setup: TrainSetup, estimator) -> Candidates:
    """Generate every candidate of `space`, drop those that do not fit in memory, price the rest."""
    start = time.perf_counter()
    limit, parts, generated = estimator.profile.memory_bytes, [], 0
    for shapes in candidate_batches(space, setup):
        if setup.tensor_parallel > 1:  # only shapes whose heads and MLP split over the tensor-parallel group
            t = setup.tensor_parallel
            shapes = shapes.take((shapes.n_heads % t == 0) & (shapes.n_kv_heads % t == 0) & (shapes.d_ff % t == 0))
        if setup.pipeline_parallel > 1:  # only shapes whose layers split over the stages
            shapes = shapes.take(shapes.n_layers % setup.pipeline_parallel == 0)
        generated += shapes.size
        memory = training_memory(shapes, setup)
        fits = memory <= limit
        parts.append(evaluate(shapes.take(fits), setup, estimator, memory_bytes=memory[fits]))
    return Candidates(parts=tuple(parts), n_generated=generated, seconds=time.perf_counter() - start)


@dataclass(frozen=True)
class Outcome:
    """Every candidate's result for one budget and law; loss is inf where a constraint fails."""

    budget_seconds: float
    steps: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray

    def ranked(self, top: Optional[int] = None) -> np.ndarray:
        """Indices of the `top` lowest losses, best first (ties: more tokens first)."""
        finite = np.flatnonzero(np.isfinite(self.loss))
        if top is not None and top < finite.size:
            finite = finite[np.argpartition(self.loss[finite], top - 1)[:top]]
        return finite[np.lexsort((-self.tokens[finite], self.loss[finite]))]

    def ranked_shapes(self, candidates: "Candidates", top: int) -> np.ndarray:
        """Indices of the `top` best distinct shapes (width, depth, MLP, context), each at its best heads and
        batch, best first: a table of ten batch sizes of one shape teaches nothing."""
        order = self.ranked()
        key = np.stack([candidates.column(n)[order] for n in ("d_model", "n_layers", "seq_len")], axis=1)
        mlp = np.unique(candidates.column("mlp")[order], return_inverse=True)[1].reshape(-1, 1)
        _, first = np.unique(np.concatenate([key, mlp], axis=1), axis=0, return_index=True)
        return order[np.sort(first)[:top]]


def outcome(candidates: Candidates, budget: float, law_choice: LawChoice, unique_tokens, min_steps: int) -> Outcome:
    steps = steps_in(budget, candidates.column("seconds_per_step"))
    tokens = steps * candidates.column("tokens_per_step")
    n_law = candidates.column("n_total" if law_choice.n_count == "total" else "n_non_embedding")
    inputs = law_inputs(*(candidates.column(n) for n in ("d_model", "n_layers", "tokens_per_step", "vocab_size")))
    loss = loss_for_tokens(law_choice, n_law, tokens, unique_tokens, **inputs)
    return Outcome(budget, steps, tokens, np.where(steps >= max(min_steps, 1), loss, np.inf))


def table_rows(candidates: Candidates, result: Outcome, indices) -> list[dict]:
    """Readable rows for the candidates at `indices` (rank order)."""
    c = {n: candidates.column(n)[indices] for n in candidates._columns}
    global_batch = sequences_per_step(c["micro_batch_size"], candidates.parts[0].setup.data_parallel, c["grad_accum_steps"])
    columns = {
        "rank": np.arange(1, len(indices) + 1), "loss": result.loss[indices], "n_params": c["n_total"],
        "tokens": result.tokens[indices], "steps": result.steps[indices], "d_model": c["d_model"],
        "n_layers": c["n_layers"], "n_heads": c["n_heads"], "head_dim": c["d_model"] / c["n_heads"],
        "mlp": c["mlp"], "seq_len": c["seq_len"], "micro_batch_size": c["micro_batch_size"],
        "global_batch_size": global_batch, "tokens_per_step": c["tokens_per_step"],
        "seconds_per_step": c["seconds_per_step"], "tokens_per_second": c["tokens_per_step"] / c["seconds_per_step"],
        "memory_gib": c["memory_bytes"] / GIB,
    }
    floats = {"loss", "tokens", "seconds_per_step", "tokens_per_second", "memory_gib"}
    return [{k: (str(v[i]) if k == "mlp" else float(v[i]) if k in floats else int(v[i])) for k, v in columns.items()}
            for i in range(len(indices))]


def u_curve(candidates: Candidates, result: Outcome, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """The lowest loss reachable at each model size: (N at bin centres, best loss), log-spaced bins in N."""
    n, loss = candidates.column("n_total"), result.loss
    ok = np.isfinite(loss)
    if not np.any(ok):
        return np.empty(0), np.empty(0)
    edges = np.geomspace(n[ok].min(), n[ok].max() * (1 + 1e-9), bins + 1)
    which = np.clip(np.searchsorted(edges, n[ok], side="right") - 1, 0, bins - 1)
    best = np.full(bins, np.inf)
    np.minimum.at(best, which, loss[ok])
    centres = np.sqrt(edges[:-1] * edges[1:])
    keep = np.isfinite(best)
    return centres[keep], best[keep]


@dataclass(frozen=True)
class Plan:
    """optimize's answer: `best` (a Prediction with .config and .setup) and the ranked `table`."""

    best: Prediction
    table: list
    budget_seconds: float
    n_candidates: int
    n_priced: int
    n_eligible: int
    search_seconds: float
    space: SearchSpace
    notes: tuple = ()
    bounds: tuple = ()  # the search-space limits the optimum touches (see plan.bounds)
    _candidates: Candidates = field(default=None, repr=False, compare=False)
    _outcome: Outcome = field(default=None, repr=False, compare=False)

    @property
    def candidates_per_second(self) -> float:
        return self.n_candidates / self.search_seconds

    def u_curve(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
        """Best loss at each model size for this budget: the U-curve."""
        return u_curve(self._candidates, self._outcome, bins)

    def __repr__(self) -> str:
        c = self.best.config
        return (f"Plan(best loss {self.best.loss:.4f}: d_model={c.d_model} n_layers={c.n_layers} "
                f"n_heads={c.n_heads}, {self.best.n_params / 1e6:.1f}M params, {self.best.tokens:.3g} tokens; "
                f"{self.n_candidates:,} candidates, {self.n_eligible:,} eligible, {len(self.table)} rows in .table)")

    def _repr_html_(self) -> str:
        from timelaw.plan.predict import _pre

        return _pre(self.text)

    def to_frame(self):
        """The ranked table as a pandas DataFrame (needs pandas: the `pandas` extra)."""
        from timelaw._optional import require

        pd = require("pandas", "Plan.to_frame()")

        return pd.DataFrame(self.table, columns=TABLE_COLUMNS)

    def to_dict(self) -> dict:
        return {"best": self.best.to_dict(), "table": self.table, "budget_seconds": self.budget_seconds,
                "n_candidates": self.n_candidates, "n_priced": self.n_priced, "n_eligible": self.n_eligible,
                "search_seconds": self.search_seconds, "candidates_per_second": self.candidates_per_second,
                "notes": list(self.notes), "bounds": list(self.bounds)}

    @property
    def text(self) -> str:
        from timelaw.plan.report import format_table

        head = (f"searched {self.n_candidates:,} candidate shapes in {self.search_seconds:.2f} s "
                f"({self.candidates_per_second:,.0f}/s): {self.n_priced:,} fit in memory, "
                f"{self.n_eligible:,} meet every constraint")
        lines = [head, "", "best:", self.best.text]
        if self.bounds:
            lines.append("  " + bound_note(self.bounds))
        return "\n".join(lines + ["", "the best distinct shapes, each at its best batch:", format_table(self.table)])

    def __str__(self) -> str:
        return self.text


def _no_candidate(space: SearchSpace, candidates: Candidates, budget: float) -> ValueError:
    if candidates.size == 0:
        return ValueError(f"no candidate shape of the search space fits in the device's memory or the "
                          f"parameter range [{space.min_params:g}, {space.max_params:g}]")
    return ValueError(f"no candidate gets {space.min_steps} optimizer steps in {budget:g} s: lower min_steps, "
                      "tokens_per_step or the smallest sizes of the search space, or raise the budget")


def optimize(hours=None, minutes=None, seconds=None, *, profile=None, law=None, unique_tokens=None,
             setup: TrainSetup | None = None, space: SearchSpace | None = None, method: str = "roofline",
             top: int = 20, n_count: str | None = None, max_devices: int = 1, dollars: float | None = None,
             dollars_per_device_hour: float | None = None, watts_per_device: float | None = None,
             tensor_parallel_sizes=(1,), pipeline_parallel_sizes=(1,), refine_layout: bool = True,
             **space_options) -> Plan:
    """The shape (width, depth, heads, batch, and optionally seq_len and MLP kind) with the lowest predicted
    loss for the budget on the device, and the `top` best candidates.

    Profile, law and unique_tokens default as in predict_loss. `setup` fixes everything but the batch
    (precision, optimizer, checkpointing, parallelism). The search space is `space` (a SearchSpace) with any
    of its fields overridden by keyword, e.g. optimize(hours=4, max_params=1e9, mlps=("gelu", "swiglu")).
    `plan.best` is exactly predict_loss(plan.best.config, setup=plan.best.setup, ...) for the same inputs.

    max_devices: also search the number of data-parallel devices, 1, 2, 4, ... up to it (timelaw.plan.cost);
    more devices are never worse, and on a tie the fewer win. dollars: a budget in money (needs
    dollars_per_device_hour): each device count gets dollars / (price x devices) hours, or the time budget
    if that is shorter ("the best model for $5,000 by Friday": optimize(hours=72, dollars=5000, ...)).
    tensor_parallel_sizes: tensor-parallel group sizes to try at each device count (default data parallel
    only, (1,); e.g. (1, 2, 4, 8) lets models too large for one device in); pipeline_parallel_sizes likewise
    for pipeline stages; with max_devices > 1 these set the parallel layout, overriding the setup's.
    refine_layout: on more than one device, search with the data-parallel copies' optimizer state sharded
    (at least ZeRO 1: the same traffic, room for larger models), then give the best candidate of each device
    count the fastest layout best_layout finds for its model and batch (tensor, pipeline, interleave, ZeRO,
    recomputation, micro-batch); plan.best then carries that layout. False: the setup's layout as given.
    An optimum that nearly fills a device's memory gets a note (larger models did not fit the layouts
    searched).
    `plan.best` then carries .devices, .dollars and .energy_kwh (with watts_per_device).
    """
    prices = Prices(dollars_per_device_hour, watts_per_device)
    timed = hours is not None or minutes is not None or seconds is not None
    if not timed and dollars is None:
        raise ValueError("give a budget: hours, minutes or seconds, or dollars (with dollars_per_device_hour), "
                         "or both a time and dollars")
    deadline = single_budget(hours, minutes, seconds) if timed else None
    if dollars is not None:
        if prices.dollars_per_device_hour is None:
            raise ValueError("a budget in dollars needs dollars_per_device_hour")
        money = positive_number(dollars, "dollars")
    budget = deadline
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    space = (space or SearchSpace()).updated(**space_options)
    estimator, device = resolve_device(profile, method)
    setup = resolve_setup(setup, device)
    law_choice = resolve_law(law, unique_tokens, n_count)
    start = time.perf_counter()
    chosen, generated = None, 0
    for devices, tensor, pipeline in layouts(max_devices, devices_per_node(estimator), tensor_parallel_sizes,
                                             pipeline_parallel_sizes=pipeline_parallel_sizes):
        if dollars is not None:  # the hours the money buys on this many devices, within any deadline
            budget = money / (prices.dollars_per_device_hour * devices) * 3600.0
            budget = budget if deadline is None else min(budget, deadline)
        candidates = price_candidates(space, with_devices(setup, devices, tensor, pipeline, refine_layout), estimator)
        generated += candidates.n_generated
        result = outcome(candidates, budget, law_choice, unique_tokens, space.min_steps)
        ranked = result.ranked_shapes(candidates, top)
        if not ranked.size:
            continue
        cfg, searched = candidates.config_and_setup(int(ranked[0]))
        faster = faster_layout(candidates, int(ranked[0]), estimator, devices, method) if refine_layout else None
        best = predict_resolved(cfg, budget, searched if faster is None else faster[0], estimator, law_choice,
                                unique_tokens, method)
        if faster is not None:
            best = replace(best, notes=best.notes + (_refined_note(searched, faster, result.loss[ranked[0]]),))
        if chosen is None or best.loss < chosen[0].loss:  # strictly better: on a tie the fewer devices stay
            chosen = (best, budget, candidates, result, ranked, (tensor, pipeline))
    search_seconds = time.perf_counter() - start
    if chosen is None:
        raise _no_candidate(space, candidates, budget)
    best, budget, candidates, result, ranked, searched_layout = chosen
    best = costed(best, prices)
    hits = optimum_bounds(space, best)
    memory_note = _memory_bound_note(candidates, int(ranked[0]), device, searched_layout, tensor_parallel_sizes,
                                     pipeline_parallel_sizes)
    if max_devices > 1 and best.devices == max_devices:
        hits += (f"max_devices = {max_devices}",)
    return Plan(
        best=best, table=table_rows(candidates, result, ranked), budget_seconds=budget,
        n_candidates=generated, n_priced=candidates.size,
        n_eligible=int(np.isfinite(result.loss).sum()), search_seconds=search_seconds, space=space,
        notes=best.notes + ((bound_note(hits),) if hits else ()) + memory_note, bounds=hits,
        _candidates=candidates,
        _outcome=result,
    )


MEMORY_BOUND_SHARE = 0.85  # a searched optimum using more of a device's memory than this was chosen by it


def _memory_bound_note(candidates: Candidates, index: int, device, layout: tuple, tensor_sizes,
                       pipeline_sizes) -> tuple:
    """A note when the searched optimum nearly fills a device in the most sharded layout searched: larger
    models, perhaps better, did not fit any layout searched (memory is a bound of the search like its
    edges). Found in a less sharded layout, it beat the larger models the others could hold."""
    used = float(candidates.column("memory_bytes")[index])
    most_sharded = layout == (max(tensor_sizes), max(pipeline_sizes))
    if used <= MEMORY_BOUND_SHARE * device.memory_bytes or not most_sharded:
        return ()
    return (f"the searched optimum uses {used / GIB:.1f} of {device.memory_bytes / GIB:.0f} GiB per device: larger "
            f"models did not fit the layouts searched (tensor sizes {tuple(tensor_sizes)}, pipeline sizes "
            f"{tuple(pipeline_sizes)}) and may be better; search more sharding, e.g. tensor_parallel_sizes=(1, 2, "
            "4, 8), pipeline_parallel_sizes=(1, 2, 4), or a setup with zero_stage=3",)


def _refined_note(searched: TrainSetup, faster: tuple, searched_loss: float) -> str:
    s, seconds = faster
    return (f"layout refined by best_layout: tensor {s.tensor_parallel} x pipeline {s.pipeline_parallel} "
            f"(interleave {s.pipeline_interleave}) x data {s.data_parallel}, ZeRO {s.zero_stage}, micro-batch "
            f"{s.micro_batch_size}, checkpointing {s.activation_checkpointing}, {seconds:.4g} s/step "
            f"(the searched tensor {searched.tensor_parallel} x pipeline {searched.pipeline_parallel} x data "
            f"{searched.data_parallel} layout reached loss {searched_loss:.4f}; the table lists searched layouts)")


def optimum_bounds(space: SearchSpace, best: Prediction) -> tuple[str, ...]:
    """The search-space limits the chosen Prediction touches."""
    c = best.config
    return bounds_hit(space, c.d_model, c.n_layers, best.tokens_per_step, best.setup.micro_batch_size,
                      best.n_params, best.steps)
