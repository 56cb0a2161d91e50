"""The loss-law interface shared by every form: parameters, prediction, bands, fitting, JSON.

A form (see forms.py) supplies its equation as `log_loss(theta, log_n, log_d, log_u, log_r)`, vectorised, in
a parametrisation `theta` where the scale constants are stored as logarithms (the log-sum-exp form the fits
use; log_r is the log aspect ratio d_model / n_layers, used by shape-aware forms). Everything else --
predicting, the batch term, the bounds of a possible loss, fitting, intervals, ranges, serialising -- is
written once, here.

Bounds: a prediction given `vocab_size` never exceeds ln(vocab_size), the loss of a uniform guess (an
untrained model), nor falls to the law's floor E. The law's excess x = L - E is mapped to
x M / (x^p + M^p)^(1/p) with M = ln(vocab) - E: unchanged to 1e-6 where x < M / 10 (every fitted regime),
saturating smoothly at ln(vocab) where the power law would diverge (D -> 0).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dataclasses import replace

from timelaw.errors import NotFittedError
from timelaw.laws.batch import CriticalBatch
from timelaw.laws.fitting import DEFAULT_GRID, HUBER_DELTA, fit_runs
from timelaw.laws.ranges import FitRange
from timelaw.laws.tables import RunTable, read_runs
from timelaw.provenance import provenance

SCHEMA = "timelaw.loss_law/1"
_POINTS_PER_CHUNK = 1 << 15  # bounds the memory of predict_interval on large grids
_BOUND_POWER = 8.0  # sharpness of the soft ceiling at ln(vocab) (see the module doc)
# B_crit depends on the loss it helps predict, so the loss is a fixed point L = law(N, D / (1 + B / B_crit(L))).
# Plain iteration crawls for B >> B_crit; Steffensen's acceleration reaches 1e-10 in 4 rounds on every case
# tried (B up to 2^24 tokens). The count is fixed, not "until converged", so that a shape gets the same bits
# alone and inside a million-candidate search.
_BATCH_ROUNDS = 5


class LossLaw:
    """Base class of the loss laws. Construct with known constants, or fit to runs with `.fit`.

    Attributes (scikit-learn style, ending in `_`):
      params_      dict of constants, in the order of `param_names`
      ci_          dict name -> (low, high) confidence interval at `ci_level_`, or None
      ci_level_    the level of `ci_` (e.g. 0.95), or None
      samples_     array (n_bootstrap, n_params) of bootstrap estimates, columns as `param_names`, or None
      residuals_   log(observed loss) - log(predicted loss) on the fitted runs, or None
      provenance_  dict saying where the constants come from (timelaw.provenance.provenance)
      range_       FitRange: the N, D, shape and batch ranges the constants were fitted on, or None (unknown)
      critical_batch_  CriticalBatch of the batch term (timelaw.laws.batch), or None: batch size ignored
    """

    form: ClassVar[str]
    equation: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    log_scaled: ClassVar[frozenset[str]]  # constants fitted as their logarithm (positive scales)
    start_box: ClassVar[dict[str, tuple[float, float]]]  # theta ranges the starting points cover
    bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}  # theta bounds for L-BFGS-B
    separates_n_and_d: ClassVar[bool] = True  # False when loss depends on N and D only through C = 6 N D
    uses_unique_tokens: ClassVar[bool] = False
    uses_shape: ClassVar[bool] = False

    def __init__(
        self,
        params: Mapping[str, float] | None = None,
        *,
        ci: Mapping[str, tuple[float, float]] | None = None,
        ci_level: float | None = None,
        samples: Any = None,
        residuals: Any = None,
        provenance: Mapping[str, Any] | None = None,
        fit_range: FitRange | None = None,
        critical_batch: CriticalBatch | None = None,
    ) -> None:
        self.params_ = None if params is None else self._checked_params(params)
        self.ci_ = None if ci is None else {name: (float(lo), float(hi)) for name, (lo, hi) in ci.items()}
        self.ci_level_ = ci_level
        self.samples_ = None if samples is None else np.asarray(samples, dtype=float)
        self.residuals_ = None if residuals is None else np.asarray(residuals, dtype=float)
        self.provenance_ = None if provenance is None else dict(provenance)
        self.range_ = fit_range
        self.critical_batch_ = critical_batch

    # --- the equation -------------------------------------------------------------------------------

    @staticmethod
    def log_loss(theta: np.ndarray, log_n, log_d, log_u=None, log_r=None):
        """log L at (log N, log D, log U, log aspect ratio) for constants `theta`; implemented by each form."""
        raise NotImplementedError

    @classmethod
    def log_loss_jac(cls, theta: np.ndarray, log_n, log_d, log_u=None, log_r=None) -> tuple[np.ndarray, np.ndarray]:
        """log L and its Jacobian (n_params, n_points) in theta; central differences unless a form overrides.

        All 2 n_params shifted thetas go through `log_loss` in one broadcast call (theta entries of shape
        (2 n_params, 1)), which is many times faster than one call each on the small tables fits see.
        """
        steps = 1e-6 * np.maximum(1.0, np.abs(theta))
        shifts = np.concatenate([np.diag(steps), -np.diag(steps)], axis=1)
        shifted = cls.log_loss((theta[:, None] + shifts)[:, :, None], log_n, log_d, log_u, log_r)
        jac = (shifted[: len(theta)] - shifted[len(theta) :]) / (2 * steps[:, None])
        return cls.log_loss(theta, log_n, log_d, log_u, log_r), jac

    @classmethod
    def theta_from_params(cls, params: Mapping[str, float]) -> np.ndarray:
        with np.errstate(divide="ignore"):  # a fit may drive a scale to exactly 0: its log is -inf, exp gives 0 back
            return np.array([np.log(params[n]) if n in cls.log_scaled else params[n] for n in cls.param_names], float)

    @classmethod
    def params_from_theta(cls, theta: np.ndarray) -> dict[str, float]:
        return {n: float(np.exp(v) if n in cls.log_scaled else v) for n, v in zip(cls.param_names, theta)}

    # --- prediction -----------------------------------------------------------------------------------

    def predict(self, N, D, unique_tokens=None, *, d_model=None, n_layers=None, batch_tokens=None,
                vocab_size=None):
        """Final loss of a model with N parameters trained on D tokens (U unique tokens, if the form uses them).

        d_model, n_layers: the shape, for shape-aware forms (ignored by the others; omitted: a typical shape).
        batch_tokens: tokens per optimizer step; with a batch term (`critical_batch_`), tokens trained above
          the critical batch count less. vocab_size: bounds the loss by ln(vocab_size) (see the module doc).
        Vectorised with numpy broadcasting; `unique_tokens` is ignored by forms that do not model repetition.
        """
        inputs = self._inputs(N, D, unique_tokens, d_model, n_layers, batch_tokens, vocab_size)
        return self._loss(self._theta(), inputs)

    def predict_interval(self, N, D, unique_tokens=None, level: float = 0.9, *, d_model=None, n_layers=None,
                         batch_tokens=None, vocab_size=None) -> tuple[np.ndarray, np.ndarray]:
        """(low, high): the central `level` band of the loss over the bootstrap parameter samples."""
        if self.samples_ is None:
            raise ValueError(
                f"this {self.form} law has no bootstrap samples, so no uncertainty band; "
                "fit it with n_bootstrap > 0 (published presets carry none)"
            )
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
        inputs = self._inputs(N, D, unique_tokens, d_model, n_layers, batch_tokens, vocab_size)
        shape, flat = _broadcast_flat(*inputs)
        with np.errstate(divide="ignore"):  # a resample may drive a scale to 0: its log is -inf, exp gives 0 back
            thetas = np.where(self._log_mask(), np.log(self.samples_), self.samples_)
        quantiles = ((1 - level) / 2, (1 + level) / 2)
        low, high = np.empty(int(np.prod(shape))), np.empty(int(np.prod(shape)))
        for start in range(0, low.size, _POINTS_PER_CHUNK):
            part = slice(start, start + _POINTS_PER_CHUNK)
            chunk = tuple(None if x is None else x[part] for x in flat)
            # All samples in one broadcast call: theta entries of shape (n_samples, 1) give (n_samples, n_points).
            losses = self._loss(thetas.T[:, :, None], chunk)
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
        fitted_table = self._batch_discounted(table)
        result = fit_runs(type(self), fitted_table, grid=grid, delta=delta, n_bootstrap=n_bootstrap, seed=seed)
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
        self.range_ = FitRange.of_runs(table.n_params, table.tokens, table.aspect_ratio, table.n_layers,
                                       table.batch_tokens, source=table.source)
        return self

    def _batch_discounted(self, table: RunTable) -> RunTable:
        """The runs with D replaced by the tokens their batches are worth, when they say their batch.

        B_crit is taken at each run's measured loss, so the discount needs no constants of the law itself.
        A law without a batch term gets the published one (timelaw.laws.batch) when the runs carry batches.
        """
        if table.batch_tokens is None:
            return table
        if self.critical_batch_ is None:
            self.critical_batch_ = CriticalBatch()
        log_d = self.critical_batch_.log_effective_tokens(np.log(table.tokens), np.log(table.batch_tokens),
                                                          table.loss)
        return replace(table, tokens=np.exp(log_d))

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
            "range": None if self.range_ is None else self.range_.to_dict(),
            "critical_batch": None if self.critical_batch_ is None else self.critical_batch_.to_dict(),
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
            fit_range=FitRange.from_dict(record.get("range")),
            critical_batch=None if record.get("critical_batch") is None
            else CriticalBatch.from_dict(record["critical_batch"]),
        )

    # --- helpers --------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        if self.params_ is None:
            return f"{type(self).__name__}()"
        shown = ", ".join(f"{name}={value:.6g}" for name, value in self.params_.items())
        return f"{type(self).__name__}({shown})"

    def floor(self) -> float:
        """The lowest loss the law allows: its irreducible term E (0 for forms without one)."""
        return float(self.params_["E"]) if self.params_ and "E" in self.params_ else 0.0

    def _inputs(self, N, D, unique_tokens, d_model, n_layers, batch_tokens, vocab_size) -> tuple:
        """(log N, log D, log U, log aspect ratio, log batch, log vocab), None where not given or not used."""
        log_n, log_d, log_u = _log_inputs(N, D, unique_tokens)
        if (d_model is None) != (n_layers is None):
            raise ValueError("give both d_model and n_layers (the shape), or neither")
        log_r = None
        if self.uses_shape and d_model is not None:
            log_r = _log_positive(d_model, "d_model") - _log_positive(n_layers, "n_layers")
        log_b = None
        if batch_tokens is not None and self.critical_batch_ is not None:
            log_b = _log_positive(batch_tokens, "batch_tokens")
        log_v = None if vocab_size is None else _log_positive(vocab_size, "vocab_size")
        if log_v is not None and np.any(log_v <= self.floor()):
            smallest = float(np.exp(np.min(log_v)))
            raise ValueError(f"vocab_size {smallest:g}: a uniform guess over it, ln({smallest:g}) = {np.log(smallest):.3g} "
                             f"nats, is below this {self.form} law's irreducible loss E = {self.floor():.3g}, so the "
                             f"law cannot describe it; use a vocabulary above e^E = {np.exp(self.floor()):.3g} tokens")
        return log_n, log_d, log_u, log_r, log_b, log_v

    def _loss(self, theta, inputs) -> np.ndarray:
        """The loss at `inputs` (from _inputs): the form's equation, the batch term, then the bounds."""
        log_n, log_d, log_u, log_r, log_b, log_v = inputs
        loss = self._bounded(theta, np.exp(self.log_loss(theta, log_n, log_d, log_u, log_r)), log_v)
        if log_b is not None:
            def step(current):
                log_d_eff = self.critical_batch_.log_effective_tokens(log_d, log_b, current)
                return self._bounded(theta, np.exp(self.log_loss(theta, log_n, log_d_eff, log_u, log_r)), log_v)

            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                for _ in range(_BATCH_ROUNDS):
                    once = step(loss)
                    twice = step(once)
                    curvature = twice - 2.0 * once + loss
                    jump = loss - (once - loss) ** 2 / np.where(curvature != 0, curvature, 1.0)
                    # The iteration rises monotonically from below: keep Aitken's jump only where it goes up.
                    usable = (curvature != 0) & np.isfinite(jump) & (jump >= once)
                    loss = np.where(usable, jump, twice)
            if log_v is not None:  # an accelerated step may overshoot the ceiling
                loss = np.minimum(loss, log_v)
        return loss

    def _bounded(self, theta, loss, log_v):
        """`loss` kept below ln(vocab) (when given) and above the floor E, smoothly (see the module doc)."""
        if log_v is None:
            return loss
        floor = np.exp(theta[self.param_names.index("E")]) if "E" in self.param_names else 0.0
        ceiling = log_v  # ln(vocab): the loss of a uniform guess, in nats
        room = np.maximum(ceiling - floor, 1e-12)
        excess = np.maximum(loss - floor, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = excess / room
            scaled = excess / np.power(1.0 + np.power(ratio, _BOUND_POWER), 1.0 / _BOUND_POWER)
        # Where the law overflows (D -> 0) the ratio is inf: the bound is the ceiling itself (rounding included).
        return np.minimum(floor + np.where(np.isfinite(scaled), scaled, room), ceiling)

    def _theta(self) -> np.ndarray:
        if self.params_ is None:
            raise NotFittedError(f"this {self.form} law has no constants yet: fit it, or take a preset")
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


def _broadcast_flat(*inputs):
    """The common shape of the inputs, and each input broadcast to it and flattened (None stays None)."""
    present = [x for x in inputs if x is not None]
    shape = np.broadcast_shapes(*(x.shape for x in present))
    flat = [None if x is None else np.broadcast_to(x, shape).ravel() for x in inputs]
    return shape, flat


def _log_positive(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if not np.all(array > 0):
        raise ValueError(f"{name} must be > 0 everywhere (no NaN, zero or negative values)")
    return np.log(array)
