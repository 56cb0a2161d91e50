"""The interface every step-time estimator follows: features -> non-negative linear fit -> seconds.

An estimator turns a (shapes, setup) pair into a small feature matrix whose columns are in seconds or
dimensionless, fits non-negative coefficients to measured step times by minimising relative error (so small
and large steps count alike), and predicts vectorised over a ShapeBatch.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import ClassVar, Iterable, Sequence

import numpy as np

from timelaw.devices.profile import DeviceSpec
from timelaw.devices.system import System
from timelaw.config import TrainSetup, TransformerConfig
from timelaw.errors import NotFittedError
from timelaw.ledger import Ledger, ledger
from timelaw.provenance import provenance
from timelaw.shapes import ShapeBatch
from timelaw.timing.network import check_layout

__all__ = ["StepTimeEstimator", "Measurement", "UNSEEN_COEFFICIENT", "as_shapes", "step_ledger", "grouped_shapes",
           "measured_seconds", "nnls_relative"]

Measurement = tuple  # (TransformerConfig, TrainSetup, seconds per step)
# A feature that is zero in every fitted step (no data-parallel runs, no network) was not seen: its
# coefficient is not identified, so it stays at this, the feature priced as modelled, rather than at the 0 a
# solver leaves (which would make that cost vanish from every prediction).
UNSEEN_COEFFICIENT = 1.0


def as_shapes(cfg: TransformerConfig | ShapeBatch, setup: TrainSetup) -> ShapeBatch:
    return cfg if isinstance(cfg, ShapeBatch) else ShapeBatch.from_config(cfg, setup)


def step_ledger(cfg: TransformerConfig | ShapeBatch, setup: TrainSetup, step: Ledger | None = None) -> Ledger:
    """`step` if the caller built the step's ledger already (once per prediction), else the ledger of it."""
    return step if step is not None else ledger(as_shapes(cfg, setup), setup)


def grouped_shapes(measurements: Sequence[Measurement]) -> list[tuple[TrainSetup, list[int], ShapeBatch]]:
    """The measurements' shapes stacked into one ShapeBatch per setup (and per choice of the categorical
    fields): (setup, row indices, batch), so that their features cost one vectorised pass per group. Every
    number equals what the shape gives alone (the ledger and the estimators are elementwise)."""
    categorical = [f.name for f in fields(ShapeBatch) if f.name not in ShapeBatch.NUMERIC]
    groups: dict = {}
    for i, (cfg, setup, *_) in enumerate(measurements):
        one = as_shapes(cfg, setup)
        key = (setup, tuple(getattr(one, f) if f != "explicit_head_dim" else getattr(one, f) is None
                            for f in categorical))
        groups.setdefault(key, []).append((i, one))
    out = []
    for (setup, _), members in groups.items():
        first = members[0][1]
        stacked = {n: np.array([getattr(s, n) for _, s in members]) for n in ShapeBatch.NUMERIC}
        if first.explicit_head_dim is not None:
            stacked["explicit_head_dim"] = np.array([s.explicit_head_dim for _, s in members])
        out.append((setup, [i for i, _ in members], replace(first, **stacked)))
    return out


def measured_seconds(measurements: Sequence[Measurement]) -> np.ndarray:
    """The seconds column of (cfg, setup, seconds) measurements, checked."""
    seconds = np.array([float(s) for _, _, s in measurements])
    if np.any(~np.isfinite(seconds)) or np.any(seconds <= 0):
        raise ValueError("measured seconds must be positive and finite")
    return seconds


def nnls_relative(X: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative coefficients minimising the squared relative error of X @ coef against seconds;
    returns (coef, that residual norm)."""
    # Columns are scaled to a common size first: they span many orders of magnitude (seconds vs constant).
    scale = np.max(np.abs(X), axis=0)
    scale[scale == 0] = 1.0
    from scipy.optimize import nnls  # imported on first fit: scipy.optimize is slow to import

    coef, residual = nnls(X / scale / seconds[:, None], np.ones_like(seconds))
    return coef / scale, float(residual)


class StepTimeEstimator:
    """Base class: subclasses define `name`, `feature_names` and `features`."""

    name: ClassVar[str]
    feature_names: ClassVar[tuple[str, ...]]

    system: System | None = None  # the nodes and network of a multi-node run; None: one node (the profile's link)
    # Coefficients a stored profile may lack (features added later), and the value that stands in for them.
    default_coefficients: ClassVar[dict[str, float]] = {}

    def __init__(self, profile: DeviceSpec | System, coefficients: dict[str, float] | None = None):
        if isinstance(profile, System):  # a System: its device's facts, and the network for the collectives
            self.system, profile = profile, profile.device
        self.profile = profile  # the device's facts (a DeviceSpec; a DeviceProfile is one)
        if coefficients is not None:
            coefficients = {**self.default_coefficients, **coefficients}
            missing = [f for f in self.feature_names if f not in coefficients]
            if missing:  # a term read as 0 would silently vanish from every prediction
                raise ValueError(
                    f"{self.name} coefficients for {getattr(profile, 'name', 'this device')!r} lack "
                    f"{', '.join(missing)} (fitted with an older feature set?); recalibrate the device "
                    f"(timelaw calibrate) or refit with fit_time_model. Given: {', '.join(sorted(coefficients))}")
            self.coef_ = np.array([float(coefficients[f]) for f in self.feature_names])

    def features(self, cfg: TransformerConfig | ShapeBatch, setup: TrainSetup, step: Ledger | None = None
                 ) -> np.ndarray:
        """Feature matrix, shape (..., n_features), for one config or a ShapeBatch. `step`: the ledger of
        (cfg, setup), if the caller has built it already; otherwise it is built here."""
        raise NotImplementedError

    def _feature_rows(self, measurements: Sequence[Measurement]) -> tuple[np.ndarray, np.ndarray]:
        """The feature matrix of the measurements (one ledger per group of shapes, not per step) and their
        seconds."""
        seconds = measured_seconds(measurements)
        X = np.empty((len(measurements), len(self.feature_names)))
        for setup, rows, shapes in grouped_shapes(measurements):
            check_layout(setup, self.system)
            X[rows] = self.features(shapes, setup)
        return X, seconds

    def fit(self, measurements: Iterable[Measurement]) -> "StepTimeEstimator":
        """Non-negative least squares on relative error over (cfg, setup, seconds) measurements."""
        measurements = list(measurements)
        if len(measurements) < self.required_measurements:
            raise ValueError(f"{self.name} needs at least {self.required_measurements} measurements to fit, "
                             f"got {len(measurements)}")
        return self._fit_rows(*self._feature_rows(measurements))

    @property
    def required_measurements(self) -> int:
        """One measured step per coefficient the fit can see (features that are zero by construction, as
        the network without a System, are not counted)."""
        return len(self.feature_names) - len(self.never_seen_features)

    @property
    def never_seen_features(self) -> tuple[str, ...]:
        return ()

    def _fit_rows(self, X: np.ndarray, seconds: np.ndarray) -> "StepTimeEstimator":
        self.coef_, _ = nnls_relative(X, seconds)
        unseen = ~np.any(X != 0, axis=0)
        self.coef_ = np.where(unseen, UNSEEN_COEFFICIENT, self.coef_)
        self.residuals_ = self.predict_features(X) / seconds - 1.0
        names = [f for f, u in zip(self.feature_names, unseen) if u]
        self.provenance_ = provenance(
            method=f"{self.name}: non-negative least squares on relative error"
                   + (f"; not seen in the fit, kept at 1: {', '.join(names)}" if names else ""),
            data=f"{len(seconds)} measured steps", source="fitted")
        return self

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        # An elementwise sum, not X @ coef_: a BLAS product can round a row of a large batch differently
        # from the same row alone, and the planner promises identical answers for both.
        return np.sum(X * self.coef_, axis=-1)

    def predict(self, cfg: TransformerConfig | ShapeBatch, setup: TrainSetup, step: Ledger | None = None
                ) -> np.ndarray:
        """Seconds per optimizer step (an array for a ShapeBatch, a 0-d array for one config); `step` as in
        `features`."""
        if not hasattr(self, "coef_"):
            raise NotFittedError(f"{self.name} estimator is not fitted and its profile has no coefficients")
        check_layout(setup, self.system)
        step = step_ledger(cfg, setup, step)
        seconds = self.predict_features(self.features(cfg, setup, step))
        # Never faster than the device computes the step's flops at its peak: fitted coefficients below the
        # roofline (or a utilisation above 1) could otherwise promise an MFU above 100%.
        return np.maximum(seconds, np.asarray(step.total("flops")) / self.profile.peak(setup.precision))

    def mape(self, measurements: Iterable[Measurement]) -> float:
        """Mean absolute percentage error on measurements (use ones not fitted on)."""
        X, seconds = self._feature_rows(list(measurements))
        return float(np.mean(np.abs(self.predict_features(X) / seconds - 1.0)) * 100)

    @property
    def coefficients(self) -> dict[str, float]:
        return {f: float(c) for f, c in zip(self.feature_names, self.coef_)}
