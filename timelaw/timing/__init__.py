"""Step-time estimators behind one interface, selectable by name."""
from __future__ import annotations

from timelaw.devices.profile import DeviceProfile
from timelaw.devices.system import System
from timelaw.config import TrainSetup, TransformerConfig
from timelaw.timing.base import StepTimeEstimator
from timelaw.timing.flops import FlopsEstimator
from timelaw.timing.memcopy import MemcopyEstimator
from timelaw.timing.roofline import RooflineEstimator

__all__ = ["ESTIMATORS", "StepTimeEstimator", "FlopsEstimator", "MemcopyEstimator", "RooflineEstimator",
           "get_estimator", "resolve_estimator", "resolve_profile_or_system", "predict_step_time", "fit_time_model"]

ESTIMATORS = {e.name: e for e in (FlopsEstimator, MemcopyEstimator, RooflineEstimator)}


def _estimator_class(method: str):
    if method not in ESTIMATORS:
        raise ValueError(f"method must be one of {sorted(ESTIMATORS)}, got {method!r}")
    return ESTIMATORS[method]


def get_estimator(profile, method: str = "roofline") -> StepTimeEstimator:
    """The estimator `method` with the coefficients stored in `profile` (a DeviceProfile, or a System: those
    of its device, with its network for the collectives)."""
    cls = _estimator_class(method)
    device = profile.device if isinstance(profile, System) else profile
    if method not in device.coefficients:
        raise ValueError(f"profile {device.name!r} has no fitted {method!r} coefficients; "
                         f"it has {sorted(device.coefficients)}")
    return cls(profile, device.coefficients[method])


def resolve_estimator(profile=None, method: str = "roofline") -> StepTimeEstimator:
    """An estimator from a fitted estimator, a System, a DeviceProfile, a system or profile name or path, or
    None (the default profile of this machine: its calibration if there is one, else the shipped spec
    sheet; a one-node system)."""
    if isinstance(profile, StepTimeEstimator):
        return profile
    return get_estimator(resolve_profile_or_system(profile), method)


def resolve_profile_or_system(profile=None):
    """A System as given or by name or path; else the DeviceProfile resolve_profile gives (a one-node system)."""
    from timelaw.devices.system import resolve_device_or_system

    device, system = resolve_device_or_system(profile)
    return device if system is None else system


def predict_step_time(cfg: TransformerConfig, setup: TrainSetup | None = None, profile=None,
                      method: str = "roofline"):
    """Seconds per optimizer step of `cfg` under `setup` on the device described by `profile`.

    `profile` is a System or a DeviceProfile (a one-node system), a system or profile name or path, an
    estimator from fit_time_model, or None for this machine's default. `cfg` may be a ShapeBatch, giving
    an array of seconds.
    """
    seconds = resolve_estimator(profile, method).predict(cfg, setup or TrainSetup())
    return float(seconds) if seconds.ndim == 0 else seconds


def fit_time_model(measurements, method: str = "roofline", profile: DeviceProfile | str | None = None):
    """Fit an estimator to a user's own (TransformerConfig, TrainSetup, seconds per step) table, or to a
    timelaw.runs.RunsTable read from training logs (one measurement per run).

    The profile (a DeviceProfile or a System, by object, name or path) supplies device constants (peaks,
    bandwidths, matmul sweep) and, for a System, the network; its own fitted coefficients are ignored.
    The result predicts with `.predict(cfg, setup)`, reports `.residuals_`, and can be passed
    wherever a profile is accepted.
    """
    if hasattr(measurements, "time_measurements"):  # a timelaw.runs.RunsTable read from training logs
        measurements = measurements.time_measurements()
    return _estimator_class(method)(resolve_profile_or_system(profile)).fit(measurements)
