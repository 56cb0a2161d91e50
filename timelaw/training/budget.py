"""Wall-clock budgets written the way people say them: 30s, 2m, 1h, 1h30m, or a plain number of seconds."""
from __future__ import annotations

import math
import re

__all__ = ["parse_budget"]

_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(sec|min|hr|s|m|h)", re.IGNORECASE)
_FORMAT = "a number of seconds or amounts with units s, m, h (e.g. 30s, 2m, 1h30m, 1.5h)"


def parse_budget(budget) -> float:
    """Seconds in `budget`: a number (seconds) or a string like '30s', '2m', '1h30m', '90'."""
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        seconds = float(budget)
    elif isinstance(budget, str):
        seconds = _parse_text(budget)
    else:
        raise ValueError(f"budget must be {_FORMAT}; got {budget!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"budget must be finite and > 0 seconds; got {budget!r}")
    return seconds


def _parse_text(text: str) -> float:
    compact = text.strip().replace(" ", "")
    try:
        return float(compact)  # a plain number means seconds
    except ValueError:
        pass
    parts = _PART.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts).lower() != compact.lower():
        raise ValueError(f"budget must be {_FORMAT}; got {text!r}")
    return sum(float(number) * _UNIT_SECONDS[unit.lower()] for number, unit in parts)
