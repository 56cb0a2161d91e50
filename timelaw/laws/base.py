"""The loss-law interface shared by every form: parameters, prediction, bands, fitting, JSON.

A form (see forms.py) supplies its equation as `log_loss(theta, log_n, log_d, log_u)`, vectorised, in a
parametrisation `theta` where the scale constants are stored as logarithms (the log-sum-exp form the fits
use). Everything else -- predicting, fitting, intervals, serialising -- is written once, here.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from timelaw.laws.fitting import DEFAULT_GRID, HUBER_DELTA, fit_runs
from timelaw.laws.tables import read_runs
from timelaw.provenance import provenance

SCHEMA = "timelaw.loss_law/1"
_POINTS_PER_CHUNK = 1 << 15  # bounds the memory of predict_interval on large grids


class LossLaw:
    """Base class of the loss laws. Construct with known constants, or fit to runs with `.fit`.

    Attributes (scikit-learn style, ending in `_`):
      params_      dict of constants, in the order of `param_names`
      ci_          dict name -> (low, high) confidence interval at `ci_level_`, or None
      ci_level_    the level of `ci_` (e.g. 0.95), or None
      samples_     array (n_bootstrap, n_params) of bootstrap estimates, columns as `param_names`, or None
      residuals_   log(observed loss) - log(predicted loss) on the fitted runs, or None
      provenance_  dict saying where the constants come from (timelaw.provenance.provenance)
    """

    form: ClassVar[str]
    equation: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    log_scaled: ClassVar[frozenset[str]]  # constants fitted as their logarithm (positive scales)
    start_box: ClassVar[dict[str, tuple[float, float]]]  # theta ranges the starting points cover
    bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}  # theta bounds for L-BFGS-B
    separates_n_and_d: ClassVar[bool] = True  # False when loss depends on N and D only through C = 6 N D
    uses_unique_tokens: ClassVar[bool] = False

    def __init__(
        self,
        params: Mapping[str, float] | None = None,
        *,
        ci: Mapping[str, tuple[float, float]] | None = None,
        ci_level: float | None = None,
        samples: Any = None,
        residuals: Any = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        self.params_ = None if params is None else self._checked_params(params)
        self.ci_ = None if ci is None else {name: (float(lo), float(hi)) for name, (lo, hi) in ci.items()}
        self.ci_level_ = ci_level
        self.samples_ = None if samples is None else np.asarray(samples, dtype=float)
        self.residuals_ = None if residuals is None else np.asarray(residuals, dtype=float)
        self.provenance_ = None if provenance is None else dict(provenance)

    # --- the equation -------------------------------------------------------------------------------

    @staticmethod
    def log_loss(theta: np.ndarray, log_n, log_d, log_u=None):
        """log L at (log N, log D, log U) for constants `theta`; implemented by each form."""
        raise NotImplementedError

    @classmethod
    def log_loss_jac(cls, theta: np.ndarray, log_n, log_d, log_u=None) -> tuple[np.ndarray, np.ndarray]:
        """log L and its Jacobian (n_params, n_points) in theta; central differences unless a form overrides.

        All 2 n_params shifted thetas go through `log_loss` in one broadcast call (theta entries of shape
        (2 n_params, 1)), which is many times faster than one call each on the small tables fits see.
        """
        steps = 1e-6 * np.maximum(1.0, np.abs(theta))
        shifts = np.concatenate([np.diag(steps), -np.diag(steps)], axis=1)
        shifted = cls.log_loss((theta[:, None] + shifts)[:, :, None], log_n, log_d, log_u)
        jac = (shifted[: len(theta)] - shifted[len(theta) :]) / (2 * steps[:, None])
        return cls.log_loss(theta, log_n, log_d, log_u), jac

    @classmethod
    def theta_from_params(cls, params: Mapping[str, float]) -> np.ndarray:
        return np.array([np.log(params[n]) if n in cls.log_scaled else params[n] for n in cls.param_names], float)

    @classmethod
    def params_from_theta(cls, theta: np.ndarray) -> dict[str, float]:
        return {n: float(np.exp(v) if n in cls.log_scaled else v) for n, v in zip(cls.param_names, theta)}

    # --- prediction -----------------------------------------------------------------------------------

    def predict(self, N, D, unique_tokens=None):
        """Final loss of a model with N parameters trained on D tokens (U unique tokens, if the form uses them).

        Vectorised with numpy broadcasting; `unique_tokens` is ignored by forms that do not model repetition.
        """
        return np.exp(self.log_loss(self._theta(), *_log_inputs(N, D, unique_tokens)))

    def predict_interval(self, N, D, unique_tokens=None, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """(low, high): the central `level` band of the loss over the bootstrap parameter samples."""
        if self.samples_ is None:
            raise ValueError(
                f"this {self.form} law has no bootstrap samples, so no uncertainty band; "
                "fit it with n_bootstrap > 0 (published presets carry none)"
            )
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
        log_n, log_d, log_u = _log_inputs(N, D, unique_tokens)
        shape, flat = _broadcast_flat(log_n, log_d, log_u)
        thetas = np.where(self._log_mask(), np.log(self.samples_), self.samples_)
        quantiles = ((1 - level) / 2, (1 + level) / 2)
        low, high = np.empty(int(np.prod(shape))), np.empty(int(np.prod(shape)))
        for start in range(0, low.size, _POINTS_PER_CHUNK):
            part = slice(start, start + _POINTS_PER_CHUNK)
            chunk = [None if x is None else x[part] for x in flat]
            # All samples in one broadcast call: theta entries of shape (n_samples, 1) give (n_samples, n_points).
            losses = np.exp(self.log_loss(thetas.T[:, :, None], *chunk))
            low[part], high[part] = np.quantile(losses, quantiles, axis=0)
        return low.reshape(shape), high.reshape(shape)

    # --- fitting --------------------------------------------------------------------------------------

    def fit(
        self,
        runs: Any,
        *,
        n_bootstrap: int = 100,
        grid: int | Any = DEFAULT_GRID,
        seed: int = 0,
        ci_level: float = 0.95,
        delta: float = HUBER_DELTA,
    ) -> LossLaw:
        """Fit the constants to `runs` (see timelaw.laws.fitting for the procedure). Returns self.

        grid: the number of starting points (a Halton set over `start_box`), or an array of starts in theta.
        n_bootstrap: resamples of the runs for `ci_` and `samples_` (0 for none); `seed` makes them repeatable.
        """
        table = read_runs(runs)
        result = fit_runs(type(self), table, grid=grid, delta=delta, n_bootstrap=n_bootstrap, seed=seed)
        self.params_ = self.params_from_theta(result.theta)
        self.residuals_ = result.residuals
        self.samples_ = None
        self.ci_ = self.ci_level_ = None
        if result.samples is not None:
            self.samples_ = np.where(self._log_mask(), np.exp(result.samples), result.samples)
            self.ci_, self.ci_level_ = self._intervals(self.samples_, ci_level), ci_level
            for name in result.unidentified:  # on a bound: the bootstrap spread there means nothing
                del self.ci_[name]
        self.provenance_ = provenance(
            method=result.method,
            data=table.source,
            source="fitted",
            form=self.form,
            equation=self.equation,
            objective=result.objective,
            n_runs=len(table),
        )
        return self

    # --- serialisation --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "form": self.form,
            "equation": self.equation,
            "params": self.params_,
            "ci": None if self.ci_ is None else {name: list(pair) for name, pair in self.ci_.items()},
            "ci_level": self.ci_level_,
            "samples": None if self.samples_ is None else self.samples_.tolist(),
            "residuals": None if self.residuals_ is None else self.residuals_.tolist(),
            "provenance": self.provenance_,
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """The law as JSON text; also written to `path` when one is given. Read back with load_law."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> LossLaw:
        if record.get("form") != cls.form:
            raise ValueError(f"record holds a {record.get('form')!r} law, not {cls.form!r}")
        return cls(
            record["params"],
            ci=record.get("ci"),
            ci_level=record.get("ci_level"),
            samples=record.get("samples"),
            residuals=record.get("residuals"),
            provenance=record.get("provenance"),
        )

    # --- helpers --------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        if self.params_ is None:
            return f"{type(self).__name__}()"
        shown = ", ".join(f"{name}={value:.6g}" for name, value in self.params_.items())
        return f"{type(self).__name__}({shown})"

    def _theta(self) -> np.ndarray:
        if self.params_ is None:
            raise ValueError(f"this {self.form} law has no constants yet: fit it, or take a preset")
        return self.theta_from_params(self.params_)

    def _log_mask(self) -> np.ndarray:
        return np.array([name in self.log_scaled for name in self.param_names])

    def _intervals(self, samples: np.ndarray, level: float) -> dict[str, tuple[float, float]]:
        if not 0 < level < 1:
            raise ValueError(f"ci_level must be between 0 and 1 (exclusive), got {level}")
        low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return {name: (float(lo), float(hi)) for name, lo, hi in zip(self.param_names, low, high)}

    def _checked_params(self, params: Mapping[str, float]) -> dict[str, float]:
        if set(params) != set(self.param_names):
            raise ValueError(
                f"a {self.form} law has constants {', '.join(self.param_names)}; got {', '.join(params)}"
            )
        checked = {name: float(params[name]) for name in self.param_names}
        for name, value in checked.items():
            if not np.isfinite(value) or (name in self.log_scaled and value <= 0):
                allowed = "a finite number > 0" if name in self.log_scaled else "a finite number"
                raise ValueError(f"constant {name!r} of a {self.form} law must be {allowed}, got {value!r}")
        return checked


def _log_inputs(N, D, unique_tokens):
    """Logs of the inputs; they must be positive (unique_tokens may be inf, meaning no repetition)."""
    log_u = None if unique_tokens is None else _log_positive(unique_tokens, "unique_tokens")
    return _log_positive(N, "N (parameters)"), _log_positive(D, "D (tokens)"), log_u


def _broadcast_flat(log_n, log_d, log_u):
    """The common shape of the inputs, and each input broadcast to it and flattened (None stays None)."""
    present = [x for x in (log_n, log_d, log_u) if x is not None]
    shape = np.broadcast_shapes(*(x.shape for x in present))
    flat = [None if x is None else np.broadcast_to(x, shape).ravel() for x in (log_n, log_d, log_u)]
    return shape, flat


def _log_positive(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if not np.all(array > 0):
        raise ValueError(f"{name} must be > 0 everywhere (no NaN, zero or negative values)")
    return np.log(array)
