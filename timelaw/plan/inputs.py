"""The planner's inputs, checked once at the door: the time budget, the device (a step-time estimator) and the
loss law, with the defaults a bare `predict_loss(cfg, hours=4)` uses and the notes that say so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

__all__ = [
    "DEFAULT_LAW", "DEFAULT_DATA_LAW", "LawChoice", "budget_seconds", "resolve_law", "resolve_device",
    "resolve_setup", "single_budget",
]

DEFAULT_LAW = "composite2026"  # epoch2024's Chinchilla terms + a shape penalty + a batch term (laws/presets.py)
DEFAULT_DATA_LAW = "composite2026_data"  # used instead when unique_tokens is given: it prices repeated data
SECONDS_PER_UNIT = {"hours": 3600.0, "minutes": 60.0, "seconds": 1.0}

# Which parameter count each law form was fitted on. Hoffmann et al. (and Epoch's refit, and Muennighoff et
# al., who follow them) count every parameter; Kaplan et al. count non-embedding parameters only.
N_COUNT_OF_FORM = {"kaplan": "non_embedding"}
N_COUNTS = ("total", "non_embedding")


def budget_seconds(hours=None, minutes=None, seconds=None, *, at_least: int = 1) -> np.ndarray:
    """The budget in seconds, from exactly one of hours, minutes or seconds (a number or a sequence).

    Raises ValueError naming the argument when none or several are given, a value is not finite and > 0, or
    there are fewer than `at_least` different budgets, or a budget is a bool or text (hours=True is no budget).
    """
    given = {name: value for name, value in (("hours", hours), ("minutes", minutes), ("seconds", seconds))
             if value is not None}
    if len(given) != 1:
        names = ", ".join(given) or "none"
        raise ValueError(f"give exactly one budget: hours, minutes or seconds (got {names})")
    (name, value), = given.items()
    items = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if any(isinstance(item, (bool, np.bool_, str, bytes)) for item in np.ravel(np.asarray(items, dtype=object))):
        raise ValueError(f"{name} must be a number of {name} (or a sequence of them), got {value!r}")
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if values.size == 0:
        raise ValueError(f"{name} is empty: give {'a budget' if at_least <= 1 else f'at least {at_least} budgets'}")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    if np.unique(values).size < at_least:
        raise ValueError(f"give at least {at_least} different budgets here, got {name}={value!r}")
    return values * SECONDS_PER_UNIT[name]


def single_budget(hours=None, minutes=None, seconds=None) -> float:
    """One budget in seconds (budget_seconds, refusing a sequence)."""
    values = budget_seconds(hours=hours, minutes=minutes, seconds=seconds)
    if values.size != 1:
        raise ValueError("give a single budget here (frontier takes several)")
    return float(values.reshape(()))


@dataclass(frozen=True)
class LawChoice:
    """A loss law with the name predictions report and the parameter count it is evaluated on."""

    law: Any
    name: str
    is_default: bool
    n_count: str  # "total" or "non_embedding"

    @property
    def uses_unique_tokens(self) -> bool:
        return bool(getattr(self.law, "uses_unique_tokens", False))


def _law_name(law) -> str:
    record = getattr(law, "provenance_", None) or {}
    return f"{law.form} law ({record.get('source', 'user-supplied')})"


def resolve_law(law=None, unique_tokens=None, n_count: Optional[str] = None) -> LawChoice:
    """A LawChoice from a preset name, a JSON path, a law object, or None (the default preset)."""
    from timelaw.laws import PRESET_NAMES, load_law, preset

    if unique_tokens is not None:
        unique = float(unique_tokens)
        if not math.isfinite(unique) or unique <= 0:
            raise ValueError(f"unique_tokens must be finite and > 0, got {unique_tokens!r}")
    is_default = law is None
    if is_default:
        law = DEFAULT_DATA_LAW if unique_tokens is not None else DEFAULT_LAW
    if isinstance(law, (str, Path)):
        name = str(law)
        if name in PRESET_NAMES:
            law = preset(name)
        elif Path(name).is_file():
            law = load_law(Path(name))
        else:
            raise ValueError(f"law must be a preset ({', '.join(PRESET_NAMES)}), a law JSON file or a law "
                             f"object; got {name!r}")
    elif not (isinstance(getattr(law, "form", None), str) and callable(getattr(law, "predict", None))):
        raise TypeError(f"law must be a preset name ({', '.join(PRESET_NAMES)}), a law JSON path or a loss law "
                        f"(timelaw.fit_loss_law, timelaw.laws.preset), or None; got {type(law).__name__} {law!r}")
    else:
        name = _law_name(law)
    if not getattr(law, "separates_n_and_d", True):
        raise ValueError(f"a {law.form} law depends only on compute, so it cannot rank shapes by the tokens "
                         "they reach in a time budget; use a law with separate N and D terms")
    n_count = n_count or N_COUNT_OF_FORM.get(law.form, "total")
    if n_count not in N_COUNTS:
        raise ValueError(f"n_count must be one of {N_COUNTS}, got {n_count!r}")
    return LawChoice(law=law, name=name, is_default=is_default, n_count=n_count)


def resolve_device(profile=None, method: str = "roofline"):
    """The step-time estimator for `profile` (see timelaw.timing.resolve_estimator) and what it runs on: its
    System (which answers for one device's peak and memory, and labels the network), else its DeviceProfile."""
    from timelaw.timing import resolve_estimator

    estimator = resolve_estimator(profile, method)
    return estimator, getattr(estimator, "system", None) or estimator.profile


def resolve_setup(setup, device):
    """`setup`, or TrainSetup() in the default precision (bf16) if the device has a peak for it, else in the
    first precision its profile knows (a CPU profile may have measured fp32 only)."""
    from timelaw.config import TrainSetup

    if setup is not None:
        if not isinstance(setup, TrainSetup):
            raise TypeError(f"setup must be a timelaw.TrainSetup or None, got {type(setup).__name__} {setup!r}")
        return setup
    default = TrainSetup()
    try:
        device.peak(default.precision)
        return default
    except ValueError:
        return TrainSetup(precision=next(iter(device.peak_flops)))
