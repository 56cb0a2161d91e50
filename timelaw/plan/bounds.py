"""Which edges of the search space an optimum sits on.

An optimum on an edge of the box was chosen by the box, not by the law: the next candidate beyond it might be
better. `bounds_hit` names each such edge, so Plan and the CLI can say which limit to move.
"""
from __future__ import annotations

import math

from timelaw.plan.space import SearchSpace

__all__ = ["bounds_hit", "bound_note"]


def bounds_hit(space: SearchSpace, d_model: int, n_layers: int, tokens_per_step: float, micro_batch_size: int,
               n_params: float, steps: float) -> tuple[str, ...]:
    """The search-space limits the candidate (d_model, n_layers, batch, size, steps) touches, as 'name = value'."""
    hits = []
    if d_model - space.d_model_step < space.d_model_min:
        hits.append(f"d_model_min = {space.d_model_min}")
    if d_model + space.d_model_step > space.d_model_max:
        hits.append(f"d_model_max = {space.d_model_max}")
    if n_layers <= min(space.n_layers):
        hits.append(f"n_layers min = {min(space.n_layers)}")
    if n_layers >= max(space.n_layers):
        hits.append(f"n_layers max = {max(space.n_layers)}")
    # The aspect ratio binds when the next width at this depth would leave the allowed range.
    if (d_model + space.d_model_step) / n_layers > space.aspect_ratio_max:
        hits.append(f"aspect_ratio_max = {space.aspect_ratio_max:g}")
    if (d_model - space.d_model_step) / n_layers < space.aspect_ratio_min:
        hits.append(f"aspect_ratio_min = {space.aspect_ratio_min:g}")
    if len(space.tokens_per_step) > 1 and tokens_per_step <= min(space.tokens_per_step):
        hits.append(f"tokens_per_step min = {min(space.tokens_per_step)}")
    if len(space.tokens_per_step) > 1 and tokens_per_step >= max(space.tokens_per_step):
        hits.append(f"tokens_per_step max = {max(space.tokens_per_step)}")
    if len(space.micro_batch_sizes) > 1 and micro_batch_size >= max(space.micro_batch_sizes):
        hits.append(f"micro_batch_sizes max = {max(space.micro_batch_sizes)}")
    if math.isfinite(space.max_params) and n_params > 0.9 * space.max_params:
        hits.append(f"max_params = {space.max_params:g}")
    if space.min_params > 0 and n_params < 1.1 * space.min_params:
        hits.append(f"min_params = {space.min_params:g}")
    if space.min_steps > 1 and steps < 1.5 * space.min_steps:
        hits.append(f"min_steps = {space.min_steps}")
    return tuple(hits)


def bound_note(hits: tuple[str, ...]) -> str:
    return (f"the optimum sits on the search space's bound(s) {', '.join(hits)}: a better candidate may lie "
            "beyond; widen them to check")
