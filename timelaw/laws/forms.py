"""The loss-law forms. Each is one equation in log-sum-exp form; base.LossLaw does the rest.

N is the number of parameters, D the number of training tokens, U the number of unique tokens, and
C = 6 N D the training flops (forward + backward, one multiply-add counted as 2 flops). Losses are in
nats per token.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from timelaw.laws.allocation import FLOPS_PER_PARAM_TOKEN
from timelaw.laws.base import LossLaw
from timelaw.laws.fitting import DEFAULT_GRID, HUBER_DELTA

LOG_FLOPS_PER_PARAM_TOKEN = np.log(FLOPS_PER_PARAM_TOKEN)  # C = 6 N D
_EXPONENT_BOUNDS = (1e-4, 10.0)  # keeps exponents positive (several forms divide by them)
_LOG_R_STAR_BOUNDS = (-5.0, 15.0)  # R* from 0.007 to 3e6 epochs: keeps exp(log R*) finite
_CHINCHILLA_BOX = {"E": (-1.0, 1.0), "A": (0.0, 25.0), "B": (0.0, 25.0), "alpha": (0.0, 2.0), "beta": (0.0, 2.0)}


class ChinchillaLaw(LossLaw):
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, approach 3)."""

    form = "chinchilla"
    equation = "L = E + A / N^alpha + B / D^beta"
    param_names = ("E", "A", "B", "alpha", "beta")
    log_scaled = frozenset({"E", "A", "B"})
    start_box = _CHINCHILLA_BOX  # the ranges of the grid of Hoffmann et al. and Besiroglu et al. (log E, A, B)
    bounds = {"alpha": _EXPONENT_BOUNDS, "beta": _EXPONENT_BOUNDS}

    @staticmethod
    def log_loss(theta, log_n, log_d, log_u=None, log_r=None):
        e, a, b, alpha, beta = theta[:5]
        return np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)

    @classmethod
    def log_loss_jac(cls, theta, log_n, log_d, log_u=None, log_r=None):
        # Analytic: the softmax weight of each term; this form is fitted most, so it is worth it.
        e, a, b, alpha, beta = theta
        n_term, d_term = a - alpha * log_n, b - beta * log_d
        value = np.logaddexp(np.logaddexp(n_term, d_term), e)
        w_n, w_d = np.exp(n_term - value), np.exp(d_term - value)
        w_e = np.exp(e - value)
        return value, np.stack([w_e, w_n, w_d, -w_n * log_n, -w_d * log_d])


class DataConstrainedLaw(LossLaw):
    """Chinchilla with effective data and parameters when data is repeated (Muennighoff et al. 2023).

    With U unique tokens seen D / U times, R_D = D / U - 1 repetitions count as
    D' = U + U R_D* (1 - exp(-R_D / R_D*)) tokens; parameters beyond U_N = min(N, N_opt(U)) (N_opt(U): the
    compute-optimal size for U tokens under the Chinchilla part) count likewise with R_N = N / U_N - 1 and
    R_N*. With unique_tokens=None this is exactly the Chinchilla law with the same E, A, B, alpha, beta.
    With U given, the parameter term applies even without repetition (as published): parameters beyond
    N_opt(U) are discounted, since the unique data cannot use them fully.
    """

    form = "data_constrained"
    equation = (
        "L = E + A / N'^alpha + B / D'^beta, D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)), R_D = D / U_D - 1, "
        "U_D = min(U, D); N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)), R_N = N / U_N - 1, U_N = min(N, N_opt(U_D))"
    )
    param_names = ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star")
    log_scaled = frozenset({"E", "A", "B", "R_D_star", "R_N_star"})
    start_box = {**_CHINCHILLA_BOX, "R_D_star": (0.0, 5.0), "R_N_star": (0.0, 5.0)}
    bounds = {**ChinchillaLaw.bounds, "R_D_star": _LOG_R_STAR_BOUNDS, "R_N_star": _LOG_R_STAR_BOUNDS}
    uses_unique_tokens = True

    @staticmethod
    def log_loss(theta, log_n, log_d, log_u=None, log_r=None):
        if log_u is not None:
            log_n, log_d = _effective_logs(theta, log_n, log_d, log_u)
        return ChinchillaLaw.log_loss(theta, log_n, log_d)


class KaplanLaw(LossLaw):
    """L(N, D) = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D (Kaplan et al. 2020, eq. 1.5).

    Kaplan et al. count N without embedding parameters; use the same convention with their constants.
    """

    form = "kaplan"
    equation = "L = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D"
    param_names = ("N_c", "D_c", "alpha_N", "alpha_D")
    log_scaled = frozenset({"N_c", "D_c"})
    start_box = {"N_c": (15.0, 40.0), "D_c": (15.0, 40.0), "alpha_N": (0.02, 0.5), "alpha_D": (0.02, 0.5)}
    bounds = {"alpha_N": _EXPONENT_BOUNDS, "alpha_D": _EXPONENT_BOUNDS}

    @staticmethod
    def log_loss(theta, log_n, log_d, log_u=None, log_r=None):
        log_nc, log_dc, alpha_n, alpha_d = theta
        return alpha_d * np.logaddexp(alpha_n / alpha_d * (log_nc - log_n), log_dc - log_d)


class ComputeOnlyLaw(LossLaw):
    """L(C) = E + A / C^gamma with C = 6 N D: loss depends on compute, not on its split.

    The hypothesis is Guo 2024, "More Compute Is What You Need" (arXiv:2404.19484), whose Figure 1 shows
    loss linear in log C; the saturating power law in C is the usual form (cf. Cerebras-GPT, arXiv:2304.03208).
    """

    form = "compute_only"
    equation = "L = E + A / C^gamma, C = 6 N D"
    param_names = ("E", "A", "gamma")
    log_scaled = frozenset({"E", "A"})
    start_box = {"E": (-1.0, 1.0), "A": (0.0, 40.0), "gamma": (0.0, 1.0)}
    bounds = {"gamma": _EXPONENT_BOUNDS}
    separates_n_and_d = False

    @staticmethod
    def log_loss(theta, log_n, log_d, log_u=None, log_r=None):
        e, a, gamma = theta
        return np.logaddexp(a - gamma * (LOG_FLOPS_PER_PARAM_TOKEN + log_n + log_d), e)


class ShapeLaw(LossLaw):
    """Chinchilla with a penalty on wide, shallow shapes: L = E + A (1 + (r / R0)^gamma) / N^alpha + B / D^beta.

    r = d_model / n_layers is the aspect ratio. At equal N, very wide and shallow models train worse (Kaplan et
    al. 2020 figure 5; Gemstones, McLeish et al. 2025): the penalty multiplies the parameter term, grows as a
    power of r above R0 and vanishes for typical shapes (r << R0), where the law is Chinchilla's. The form was
    chosen among several (depth penalties, a log-quadratic in r, discounted embeddings) by fitting the
    Gemstones models under 200M parameters and predicting those of 475-543M (docs/laws.md); those data
    therefore shaped the form and are no test of it. Without d_model and n_layers, predict assumes a
    typical shape (no penalty).
    """

    form = "shape"
    equation = "L = E + A (1 + (r / R0)^gamma) / N^alpha + B / D^beta, r = d_model / n_layers"
    param_names = ("E", "A", "B", "alpha", "beta", "R0", "gamma")
    log_scaled = frozenset({"E", "A", "B", "R0"})
    start_box = {**_CHINCHILLA_BOX, "R0": (2.0, 8.0), "gamma": (0.1, 3.0)}
    bounds = {**ChinchillaLaw.bounds, "R0": (0.0, 12.0), "gamma": _EXPONENT_BOUNDS}
    uses_shape = True

    @staticmethod
    def log_loss(theta, log_n, log_d, log_u=None, log_r=None):
        e, a, b, alpha, beta, log_r0, gamma = theta[:7]
        n_term = a - alpha * log_n
        if log_r is not None:
            n_term = n_term + np.logaddexp(0.0, gamma * (log_r - log_r0))
        return np.logaddexp(np.logaddexp(n_term, b - beta * log_d), e)


class ShapeDataConstrainedLaw(LossLaw):
    """The shape law on Muennighoff et al.'s effective N' and D': repeated data and wide, shallow shapes both
    cost loss. L = E + A (1 + (r / R0)^gamma) / N'^alpha + B / D'^beta (N', D' as in DataConstrainedLaw).
    With unique_tokens=None it is the shape law; with typical shapes, the data-constrained law."""

    form = "shape_data_constrained"
    equation = "L = E + A (1 + (r / R0)^gamma) / N'^alpha + B / D'^beta, N' and D' as in data_constrained"
    param_names = DataConstrainedLaw.param_names + ("R0", "gamma")
    log_scaled = DataConstrainedLaw.log_scaled | {"R0"}
    start_box = {**DataConstrainedLaw.start_box, "R0": ShapeLaw.start_box["R0"], "gamma": ShapeLaw.start_box["gamma"]}
    bounds = {**DataConstrainedLaw.bounds, "R0": ShapeLaw.bounds["R0"], "gamma": ShapeLaw.bounds["gamma"]}
    uses_unique_tokens = True
    uses_shape = True

    @staticmethod
    def log_loss(theta, log_n, log_d, log_u=None, log_r=None):
        if log_u is not None:
            log_n, log_d = _effective_logs(theta[:7], log_n, log_d, log_u)
        return ShapeLaw.log_loss(np.concatenate([theta[:5], theta[7:9]]), log_n, log_d, None, log_r)


FORMS: dict[str, type[LossLaw]] = {
    law.form: law for law in (ChinchillaLaw, KaplanLaw, DataConstrainedLaw, ComputeOnlyLaw, ShapeLaw,
                              ShapeDataConstrainedLaw)
}


def make_law(form: str, params: dict[str, float] | None = None, **attributes: Any) -> LossLaw:
    """A law of the named form ("chinchilla", "kaplan", "data_constrained", "compute_only", "shape",
    "shape_data_constrained")."""
    if form not in FORMS:
        raise ValueError(f"unknown loss-law form {form!r}; choose one of {', '.join(FORMS)}")
    return FORMS[form](params, **attributes)


def fit_loss_law(
    runs: Any,
    form: str = "chinchilla",
    *,
    n_bootstrap: int = 100,
    grid: int | Any = DEFAULT_GRID,
    seed: int = 0,
    ci_level: float = 0.95,
    delta: float = HUBER_DELTA,
) -> LossLaw:
    """Fit a loss law of `form` to runs (DataFrame, dict of arrays, or CSV/JSONL path with N, D or C, loss[, U];
    d_model and n_layers for form="shape"; batch_tokens to fit on batch-discounted tokens, see base.LossLaw.fit).

    Huber loss (delta) on log loss, summed over runs, minimised with L-BFGS-B from `grid` starting points;
    `n_bootstrap` resamples of the runs give `ci_` at `ci_level` and `predict_interval`. Warns with
    DegenerateFitWarning when the runs cannot separate the exponents. See docs/laws.md.
    """
    law = make_law(form)
    return law.fit(runs, n_bootstrap=n_bootstrap, grid=grid, seed=seed, ci_level=ci_level, delta=delta)


def _effective_logs(theta, log_n, log_d, log_u):
    """log N' and log D' of Muennighoff et al. (2023).

    theta = (log E, log A, log B, alpha, beta, log R_D*, log R_N*).
    """
    _, a, b, alpha, beta, log_rd_star, log_rn_star = theta
    log_unique_d = np.minimum(log_u, log_d)  # a run cannot use more unique tokens than it sees
    log_d_eff = _log_repeated(log_unique_d, log_d, log_rd_star)
    log_unique_n = np.minimum(log_n, _log_optimal_n(log_unique_d, a, b, alpha, beta))
    log_n_eff = _log_repeated(log_unique_n, log_n, log_rn_star)
    return log_n_eff, log_d_eff


def _log_repeated(log_unique, log_total, log_r_star):
    """log(U + U R* (1 - exp(-R / R*))) with R = total / U - 1: repeats are worth less and less."""
    r_star = np.exp(log_r_star)
    repeats = np.expm1(log_total - log_unique)
    return log_unique + np.log1p(-r_star * np.expm1(-repeats / r_star))


def _log_optimal_n(log_tokens, a, b, alpha, beta):
    """log of the compute-optimal N for `tokens` under E + A/N^alpha + B/D^beta (datablations' D_to_N)."""
    log_g = (np.log(alpha) + a - np.log(beta) - b) / (alpha + beta)
    return beta / alpha * (log_tokens + log_g) + log_g
