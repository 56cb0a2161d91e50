"""timelaw: what your GPU time buys.

Predict the step time of a transformer on a device, turn a time budget into tokens, and a loss law into the
final loss and the best shape for the budget. `timelaw.__all__` is the documented surface.
"""
from __future__ import annotations

import importlib

from timelaw._version import __version__
from timelaw.config import TrainSetup, TransformerConfig
from timelaw.ledger import Ledger, ledger
from timelaw.params import ParamCount, count_params
from timelaw.shapes import ShapeBatch
from timelaw.devices import DeviceProfile, list_profiles, load_profile, save_profile
from timelaw.devices.system import System, list_systems, load_system
from timelaw.timing import fit_time_model, predict_step_time


def pilot(*args, **kwargs):
    """Train small models for wall-clock budgets on your data and append them to a runs table (needs torch).

    See timelaw.training.pilot for the arguments; `timelaw pilot --help` for the command line.
    """
    from timelaw.training.run import pilot as _pilot

    return _pilot(*args, **kwargs)


def calibrate(device: str = "cpu", quick: bool = False, out=None, **kwargs) -> DeviceProfile:
    """Measure `device` (cpu, cuda, mps) and return its DeviceProfile, also saved to the cache directory.

    Needs torch. See timelaw.devices.calibrate.calibrate for every option.
    """
    from timelaw.devices.calibrate import calibrate as _calibrate

    return _calibrate(device=device, quick=quick, out=out, **kwargs)


from timelaw import laws
from timelaw.laws import DegenerateFitWarning, fit_loss_law, load_law
from timelaw.plan import (
    Frontier, Layout, Plan, Prediction, SearchSpace, best_layout, cheapest, frontier, optimize, predict_loss,
    wider_vs_deeper,
)

# Subpackages imported on first use: `reference` needs torch, the others are not needed to import timelaw.
_LAZY_SUBMODULES = ("reference", "theory", "training", "runs", "configs")

__all__ = [
    "__version__",
    "TransformerConfig", "TrainSetup", "ShapeBatch",
    "count_params", "ParamCount", "ledger", "Ledger",
    "DeviceProfile", "load_profile", "save_profile", "list_profiles", "predict_step_time", "fit_time_model",
    "System", "load_system", "list_systems",
    "calibrate", "pilot",
    "laws", "fit_loss_law", "load_law", "DegenerateFitWarning",
    "predict_loss", "optimize", "frontier", "wider_vs_deeper", "cheapest", "best_layout", "Layout", "Prediction", "Plan", "Frontier",
    "SearchSpace", *_LAZY_SUBMODULES,
]


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"timelaw.{name}")
    raise AttributeError(f"module 'timelaw' has no attribute {name!r}")
