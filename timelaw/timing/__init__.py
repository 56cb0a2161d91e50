"""Step-time estimators behind one interface, selectable by name."""
from __future__ import annotations

from timelaw.devices.profile import DeviceProfile
from timelaw.config import TrainSetup, TransformerConfig
from timelaw.timing.base import StepTimeEstimator
from timelaw.timing.flops import FlopsEstimator
from timelaw.timing.memcopy import MemcopyEstimator
from timelaw.timing.roofline import RooflineEstimator

__all__ = ["ESTIMATORS", "StepTimeEstimator", "FlopsEstimator", "MemcopyEstimator", "RooflineEstimator",
           "get_estimator", "resolve_estimator", "predict_step_time", "fit_time_model"]

ESTIMATORS = {e.name: e for e in (FlopsEstimator, MemcopyEstimator, RooflineEstimator)}


def _estimator_class(method: str):
    if method not in ESTIMATORS:
        raise ValueError(f"method must be one of {sorted(ESTIMATORS)}, got {method!r}")
    return ESTIMATORS[method]


def get_estimator(profile: DeviceProfile, method: str = "roofline") -> StepTimeEstimator:
    """The estimator `method` with the coefficients stored in `profile`."""
    cls = _estimator_class(method)
    if method not in profile.coefficients:
        raise ValueError(f"profile {profile.name!r} has no fitted {method!r} coefficients; "
                         f"it has {sorted(profile.coefficients)}")
    return cls(profile, profile.coefficients[method])


def resolve_estimator(profile=None, method: str = "roofline") -> StepTimeEstimator:
    """An estimator from a fitted estimator, a DeviceProfile, a profile name or path, or None (the default
    profile of this machine: its calibration if there is one, else the shipped spec sheet)."""
    from timelaw.devices.registry import resolve_profile

    if isinstance(profile, StepTimeEstimator):
        return profile
    return get_estimator(resolve_profile(profile), method)


def predict_step_time(cfg: TransformerConfig, setup: TrainSetup | None = None, profile=None,
                      method: str = "roofline"):
    """Seconds per optimizer step of `cfg` under `setup` on the device described by `profile`.

    `profile` is a DeviceProfile, a profile name or path, an estimator from fit_time_model, or None for
    this machine's default. `cfg` may be a ShapeBatch, giving an array of seconds.
    """
    seconds = resolve_estimator(profile, method).predict(cfg, setup or TrainSetup())
    return float(seconds) if seconds.ndim == 0 else seconds


def fit_time_model(measurements, method: str = "roofline", profile: DeviceProfile | str | None = None):
    """Fit an estimator to a user's own (TransformerConfig, TrainSetup, seconds per step) table, or to a
    timelaw.runs.RunsTable read from training logs (one measurement per run).

    The profile supplies device constants (peaks, bandwidths, matmul sweep); its own fitted coefficients are
    ignored. The result predicts with `.predict(cfg, setup)`, reports `.residuals_`, and can be passed
    wherever a profile is accepted.
    """
    from timelaw.devices.registry import resolve_profile

    if hasattr(measurements, "time_measurements"):  # a timelaw.runs.RunsTable read from training logs
        measurements = measurements.time_measurements()
    return _estimator_class(method)(resolve_profile(profile)).fit(measurements)
