"""Allocation: how a loss law splits compute between parameters N and tokens D (C = 6 N D flops).

Every law is handled the same way, numerically, so new forms need nothing here: the compute-optimal split
is where moving along the budget line (log N up, log D down by the same step) stops lowering the loss.
That directional slope is taken by central differences and its root found by vectorised bisection in
log N, which is exact to ~1e-10 in log N for the forms in timelaw.laws (the loss is unimodal along the line).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FLOPS_PER_PARAM_TOKEN = 6.0  # forward + backward per parameter and token; one multiply-add = 2 flops
_LOG_STEP = 1e-5  # central-difference step in log N and log D (small: some laws have kinks at the optimum)
_BISECTIONS = 64
_LOG_MAX_PARAMS = np.log(1e30)  # search ceiling for N when only D is given


@dataclass(frozen=True)
class Allocation:
    """The compute-optimal split of each budget: arrays shaped like the (broadcast) inputs."""

    flops: np.ndarray
    n_params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray


def compute_optimal(law: Any, flops, unique_tokens=None) -> Allocation:
    """N*(C) and D*(C): the split of C = 6 N D training flops with the lowest predicted loss.

    With `unique_tokens` (a data-constrained law), tokens beyond U are repeated data.
    """
    _require_split(law)
    flops = np.asarray(flops, dtype=float)
    if not np.all(flops > FLOPS_PER_PARAM_TOKEN):
        raise ValueError("flops must be > 6 (at least one parameter trained on one token) everywhere")
    log_nd = np.log(flops / FLOPS_PER_PARAM_TOKEN)
    log_n = _bisect(lambda n: _split_slope(law, n, log_nd - n, unique_tokens), np.zeros_like(log_nd), log_nd)
    n_params, tokens = np.exp(log_n), np.exp(log_nd - log_n)
    return Allocation(flops, n_params, tokens, law.predict(n_params, tokens, unique_tokens))


def optimal_params_for_tokens(law: Any, tokens, unique_tokens=None) -> np.ndarray:
    """The N for which training on `tokens` is compute-optimal (the loss-optimal size for that much data).

    Loss keeps falling with N at fixed D, so "optimal" means: no other split of the same flops does better.
    With tokens = unique tokens this is Muennighoff et al.'s D_to_N; with `unique_tokens` < tokens the
    repeated data counts at its reduced value.
    """
    _require_split(law)
    tokens = np.asarray(tokens, dtype=float)
    if not np.all((tokens > 0) & np.isfinite(tokens)):
        raise ValueError("tokens must be finite and > 0 everywhere")
    log_d = np.log(tokens)
    lows = np.zeros_like(log_d)
    return np.exp(_bisect(lambda n: _split_slope(law, n, log_d, unique_tokens), lows, lows + _LOG_MAX_PARAMS))


def compute_optimal_exponents(law: Any, flops=(1e18, 1e26), unique_tokens=None) -> tuple[float, float]:
    """(a, b) with N* ~ C^a and D* ~ C^b (a + b = 1): the log-log slope of compute_optimal over `flops`.

    For the Chinchilla form a = beta / (alpha + beta) exactly; for other forms it is the average slope.
    """
    budgets = np.geomspace(min(flops), max(flops), 9)
    allocation = compute_optimal(law, budgets, unique_tokens)
    a = float(np.polyfit(np.log(budgets), np.log(allocation.n_params), 1)[0])
    return a, 1.0 - a


def _require_split(law: Any) -> None:
    if not law.separates_n_and_d:
        raise ValueError(
            f"a {law.form} law depends on N and D only through C = 6 N D, so every split of a budget "
            "predicts the same loss: it has no compute-optimal N or D"
        )


def _split_slope(law: Any, log_n, log_d, unique_tokens):
    """Loss change when log N rises and log D falls by the same step: < 0 while more parameters help."""
    up = law.predict(np.exp(log_n + _LOG_STEP), np.exp(log_d - _LOG_STEP), unique_tokens)
    down = law.predict(np.exp(log_n - _LOG_STEP), np.exp(log_d + _LOG_STEP), unique_tokens)
    return up - down


def _bisect(slope, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """Elementwise root of an increasing `slope` in [lows, highs]; an end point where there is no sign change."""
    lows, highs = np.broadcast_arrays(lows, highs)
    lows, highs = lows.astype(float), highs.astype(float)
    for _ in range(_BISECTIONS):
        middle = 0.5 * (lows + highs)
        rising = slope(middle) > 0
        highs = np.where(rising, middle, highs)
        lows = np.where(rising, lows, middle)
    return 0.5 * (lows + highs)
