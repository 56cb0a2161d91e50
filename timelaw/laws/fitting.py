"""Fitting a loss law to runs, the way Hoffmann et al. (2022) and Besiroglu et al. (2024) did.

The objective is the SUM over runs of the Huber loss (delta = 1e-3) of log(observed loss) - log(predicted
loss), with the law written in log-sum-exp form (log L = LSE(a - alpha log N, b - beta log D, e) for
Chinchilla). It is minimised with L-BFGS-B from many starting points and the best end point is kept.
Uncertainty comes from a bootstrap over runs: resample the runs with replacement, refit, and keep the
estimates. The data are also checked for designs that cannot separate the exponents.

This module knows nothing of particular forms: it works with any class that provides `log_loss_jac`,
`param_names`, `start_box` and `bounds` (see base.LossLaw).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from timelaw.laws.tables import RunTable

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn, a dependency
    threadpool_limits = None

HUBER_DELTA = 1e-3
DEFAULT_GRID = 64  # starting points; 16 already find the Epoch optimum, 64 leave a margin
BOOTSTRAP_STARTS = 3  # each resample restarts from the best few distinct optima of the full fit
COLLINEAR_R2 = 0.999  # log D explained this well by log N: the exponents cannot be told apart
_LBFGS_OPTIONS = {"ftol": 1e-13, "gtol": 1e-10, "maxiter": 5000}  # the Huber sum is ~1e-3: go tight


# A constant the runs cannot pin down runs to where the optimizer stops it: onto a bound (alpha = 10), or, for
# a log-scaled constant with no bound, far beyond any plausible value (E = 1.6e-9: log E 19 below its box).
_ON_BOUND = 1e-6  # |theta - bound| within this (relative to max(1, |bound|)): the bound is active
_FAR_BEYOND_BOX = 10.0  # a log-scaled constant more than e^10 ~ 2e4 times outside its start box has run off


class DegenerateFitWarning(UserWarning):
    """The runs cannot determine some constants (e.g. N and D move together), so the fit is not trustworthy."""


@dataclass(frozen=True)
class FitResult:
    theta: np.ndarray  # best constants, in the form's log-sum-exp parametrisation
    objective: float  # sum of Huber terms at theta
    residuals: np.ndarray  # log(observed) - log(predicted) per run
    samples: np.ndarray | None  # bootstrap estimates of theta, one row per resample
    method: str  # the procedure in words, for provenance
    unidentified: tuple = ()  # names of constants the runs did not identify (see unidentified_constants)


def fit_runs(
    law_cls: Any, table: RunTable, *, grid: Any, delta: float, n_bootstrap: int, seed: int
) -> FitResult:
    """Fit `law_cls`'s constants to `table`: multi-start L-BFGS-B on summed Huber loss, then bootstrap."""
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    if delta <= 0:
        raise ValueError(f"the Huber delta must be > 0, got {delta}")
    n_params = len(law_cls.param_names)
    if len(table) <= n_params:
        raise ValueError(
            f"a {law_cls.form} law has {n_params} constants, so it needs more than {n_params} runs; got {len(table)}"
        )
    logs = _log_columns(table, law_cls)
    target = np.log(table.loss)
    warn_if_degenerate(law_cls, table)

    starts = starting_points(law_cls, grid)
    with _one_blas_thread():
        optima = _local_optima(law_cls, starts, logs, target, delta)
        restarts = _distinct(np.array([theta for _, theta in optima]), BOOTSTRAP_STARTS)
        samples = _bootstrap(law_cls, restarts, logs, target, delta, n_bootstrap, seed) if n_bootstrap else None
    best_value, best_theta = optima[0]
    unidentified = unidentified_constants(law_cls, best_theta)
    if unidentified:
        values = ", ".join(f"{name} = {law_cls.params_from_theta(best_theta)[name]:.3g}" for name in unidentified)
        them = "it" if len(unidentified) == 1 else "them"
        warnings.warn(
            f"{law_cls.form} fit: the runs do not identify {', '.join(unidentified)} (the fit drove {them} to a "
            f"bound or an extreme: {values}), so no interval is reported for {them}; train more sizes and "
            "budgets, over a wider range", DegenerateFitWarning, stacklevel=4)
    residuals = target - law_cls.log_loss(best_theta, *logs)
    method = (
        f"sum over runs of Huber(delta={delta:g}) on log loss, log-sum-exp parametrisation; "
        f"L-BFGS-B from {len(starts)} starting points, best kept; "
        f"{n_bootstrap} bootstrap resamples of the runs (seed {seed}), each refit from the "
        f"{len(restarts)} best distinct optima"
    )
    return FitResult(best_theta, best_value, residuals, samples, method, unidentified)


def unidentified_constants(law_cls: Any, theta: np.ndarray) -> tuple:
    """Names of the constants at `theta` that sit on a bound of the fit, or (log-scaled ones) run off far
    beyond their start box: the runs did not determine them."""
    names = []
    for name, value in zip(law_cls.param_names, np.asarray(theta, dtype=float)):
        lower, upper = _bound(law_cls, name)
        on_bound = any(np.isfinite(b) and abs(value - b) <= _ON_BOUND * max(1.0, abs(b)) for b in (lower, upper))
        low, high = law_cls.start_box[name]
        ran_off = name in law_cls.log_scaled and not low - _FAR_BEYOND_BOX <= value <= high + _FAR_BEYOND_BOX
        if on_bound or ran_off:
            names.append(name)
    return tuple(names)


def starting_points(law_cls: Any, grid: Any) -> np.ndarray:
    """Starting points in theta: `grid` Halton points over the form's start box, or the given array."""
    lows, highs = np.array([law_cls.start_box[name] for name in law_cls.param_names], float).T
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        if grid < 1:
            raise ValueError(f"grid (the number of starting points) must be >= 1, got {grid}")
        # Unscrambled Halton: deterministic and evenly spread in any dimension, unlike a product grid.
        from scipy.stats import qmc  # imported here: scipy.stats costs ~0.3 s, `import timelaw` must not pay it

        starts = lows + qmc.Halton(len(lows), scramble=False).random(int(grid)) * (highs - lows)
    else:
        starts = np.atleast_2d(np.asarray(grid, dtype=float))
        if starts.shape[1] != len(lows):
            raise ValueError(
                f"grid must be a number of starting points or an array of shape (k, {len(lows)}) "
                f"over {', '.join(law_cls.param_names)} (log of {', '.join(sorted(law_cls.log_scaled))}); "
                f"got shape {starts.shape}"
            )
    lower, upper = np.array([_bound(law_cls, name) for name in law_cls.param_names], float).T
    return np.clip(starts, lower, upper)


def warn_if_degenerate(law_cls: Any, table: RunTable) -> None:
    """Warn (DegenerateFitWarning) when the runs cannot determine the form's exponents."""
    log_n, log_d = np.log(table.n_params), np.log(table.tokens)
    for problem in _design_problems(law_cls, log_n, log_d, table):
        warnings.warn(f"{law_cls.form} fit: {problem}", DegenerateFitWarning, stacklevel=4)


def huber(residuals: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of each residual and its derivative (the residual clipped to +-delta)."""
    size = np.abs(residuals)
    value = np.where(size <= delta, 0.5 * residuals**2, delta * (size - 0.5 * delta))
    return value, np.clip(residuals, -delta, delta)


def _design_problems(law_cls: Any, log_n: np.ndarray, log_d: np.ndarray, table: RunTable) -> list[str]:
    if not law_cls.separates_n_and_d:
        spread = np.ptp(log_n + log_d)
        return [] if spread > 1e-6 else ["every run has the same compute C = 6 N D, so nothing can be fitted"]
    if np.ptp(log_n) < 1e-6 or np.ptp(log_d) < 1e-6:
        varied, fixed = ("D", "N") if np.ptp(log_n) < 1e-6 else ("N", "D")
        return [f"every run has the same {fixed}, so the exponent of {fixed} cannot be fitted; vary {fixed} too"]
    problems = []
    r2 = np.corrcoef(log_n, log_d)[0, 1] ** 2
    if r2 > COLLINEAR_R2:
        problems.append(
            f"log N and log D are collinear (R^2 = {r2:.5f}): the runs move N and D together (D ~ N^k), "
            "so the exponents of N and D cannot be separated and the fitted constants are not meaningful; "
            "train several token counts per model size (e.g. IsoFLOP profiles)"
        )
    if getattr(law_cls, "uses_shape", False) and table.aspect_ratio is not None and np.ptp(table.aspect_ratio) == 0:
        problems.append("every run has the same aspect ratio d_model / n_layers, so the shape constants "
                        "cannot be fitted; include runs of several shapes (e.g. equal N, different depth)")
    if law_cls.uses_unique_tokens:
        unique = table.unique_tokens
        if unique is None or not np.any(table.tokens > unique):
            problems.append(
                "no run repeats data (no U column, or D <= U everywhere), so the repetition constants "
                "R_D_star and R_N_star cannot be fitted; include runs with D > U"
            )
    return problems


def _one_blas_thread():
    """L-BFGS-B calls BLAS on 5-7 numbers per step; threads there only wait on each other (10-30x slower
    on a loaded 2-core machine), so fits run with one BLAS thread."""
    return threadpool_limits(limits=1, user_api="blas") if threadpool_limits else contextlib.nullcontext()


def _log_columns(table: RunTable, law_cls: Any) -> tuple:
    """(log N, log D, log U or None, log aspect ratio or None): the inputs of the form's log_loss."""
    use_unique = law_cls.uses_unique_tokens and table.unique_tokens is not None
    log_u = np.log(table.unique_tokens) if use_unique else None
    log_r = None
    if getattr(law_cls, "uses_shape", False):
        if table.aspect_ratio is None:
            raise ValueError(f"a {law_cls.form} law needs the shape of every run: add columns 'd_model' and "
                             "'n_layers' to the runs table")
        log_r = np.log(table.aspect_ratio)
    return np.log(table.n_params), np.log(table.tokens), log_u, log_r


def _bound(law_cls: Any, name: str) -> tuple[float, float]:
    lower, upper = law_cls.bounds.get(name, (None, None))
    return (-np.inf if lower is None else lower, np.inf if upper is None else upper)


def _objective(theta: np.ndarray, law_cls: Any, logs: tuple, target: np.ndarray, delta: float):
    prediction, jac = law_cls.log_loss_jac(theta, *logs)
    value, slope = huber(prediction - target, delta)
    return float(value.sum()), jac @ slope


def _minimise(law_cls: Any, start: np.ndarray, logs: tuple, target: np.ndarray, delta: float):
    from scipy.optimize import minimize  # imported on first fit, not with timelaw

    bounds = [law_cls.bounds.get(name, (None, None)) for name in law_cls.param_names]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = minimize(
            _objective, start, args=(law_cls, logs, target, delta), jac=True, method="L-BFGS-B",
            bounds=bounds, options=_LBFGS_OPTIONS,
        )
    return float(result.fun), result.x


def _local_optima(law_cls: Any, starts: np.ndarray, logs: tuple, target: np.ndarray, delta: float):
    """(objective, theta) from every start, best first; non-finite end points are dropped."""
    optima = [_minimise(law_cls, start, logs, target, delta) for start in starts]
    optima = [(value, theta) for value, theta in optima if np.isfinite(value) and np.all(np.isfinite(theta))]
    if not optima:
        raise RuntimeError(f"the {law_cls.form} fit failed from every starting point; check the runs")
    return sorted(optima, key=lambda pair: pair[0])


def _distinct(thetas: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` rows of `thetas` (best first) that differ from each other by more than rounding."""
    chosen = [thetas[0]]
    for theta in thetas[1:]:
        if len(chosen) == count:
            break
        if min(np.max(np.abs(theta - other)) for other in chosen) > 1e-3:
            chosen.append(theta)
    return np.array(chosen)


def _bootstrap(law_cls, restarts, logs, target, delta, n_bootstrap: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    samples = np.empty((n_bootstrap, restarts.shape[1]))
    for k in range(n_bootstrap):
        rows = rng.integers(0, len(target), len(target))
        resampled = tuple(None if x is None else x[rows] for x in logs)
        samples[k] = _local_optima(law_cls, restarts, resampled, target[rows], delta)[0][1]
    return samples
