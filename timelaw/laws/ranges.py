"""Where a law holds: the ranges of N, D, tokens per parameter, shape and batch it was fitted on.

A fitted law takes its ranges from its runs; a preset states those of the paper's data. Predictions outside
them are extrapolations: `FitRange.excursions` says which quantity is outside and by how many decades, and
the planner turns that into a note and a wider band.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

QUANTITIES = {
    "N": "parameters",
    "D": "tokens",
    "tokens_per_param": "tokens per parameter",
    "aspect_ratio": "aspect ratio d_model / n_layers",
    "n_layers": "layers",
    "batch_tokens": "batch (tokens per step)",
}


@dataclass(frozen=True)
class Excursion:
    """One quantity outside its fitted range."""

    name: str
    value: float
    low: float
    high: float
    decades: float  # |log10(value / nearest end)|

    @property
    def text(self) -> str:
        side = "below" if self.value < self.low else "above"
        return (f"{QUANTITIES[self.name]} = {self.value:.3g} is {self.decades:.2g} decades {side} the range the "
                f"law was fitted on ({self.low:.3g} .. {self.high:.3g})")


class FitRange:
    """Ranges (low, high) by quantity name (see QUANTITIES); a missing quantity is not checked."""

    def __init__(self, ranges: Mapping[str, tuple[float, float]], source: str = "") -> None:
        unknown = set(ranges) - set(QUANTITIES)
        if unknown:
            raise ValueError(f"unknown range quantities {sorted(unknown)}; known: {list(QUANTITIES)}")
        checked = {}
        for name, pair in ranges.items():
            low, high = (float(v) for v in pair)
            if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
                raise ValueError(f"range of {name} must be finite with 0 < low <= high, got {pair!r}")
            checked[name] = (low, high)
        self.ranges = checked
        self.source = source

    @classmethod
    def of_runs(cls, n_params, tokens, aspect_ratio=None, n_layers=None, batch_tokens=None,
                source: str = "the fitted runs") -> "FitRange":
        values = {"N": n_params, "D": tokens, "tokens_per_param": np.asarray(tokens) / np.asarray(n_params),
                  "aspect_ratio": aspect_ratio, "n_layers": n_layers, "batch_tokens": batch_tokens}
        return cls({k: (float(np.min(v)), float(np.max(v))) for k, v in values.items() if v is not None}, source)

    def excursions(self, N, D, aspect_ratio=None, n_layers=None, batch_tokens=None) -> list[Excursion]:
        """Every quantity of one prediction that lies outside its range (scalars)."""
        values = {"N": N, "D": D, "tokens_per_param": float(D) / float(N), "aspect_ratio": aspect_ratio,
                  "n_layers": n_layers, "batch_tokens": batch_tokens}
        found = []
        for name, value in values.items():
            if value is None or name not in self.ranges:
                continue
            value, (low, high) = float(value), self.ranges[name]
            if value < low or value > high:
                end = low if value < low else high
                found.append(Excursion(name, value, low, high, abs(float(np.log10(value / end)))))
        return found

    def to_dict(self) -> dict:
        return {"ranges": {k: list(v) for k, v in self.ranges.items()}, "source": self.source}

    @classmethod
    def from_dict(cls, record: Optional[Mapping]) -> Optional["FitRange"]:
        if record is None:
            return None
        return cls({k: tuple(v) for k, v in record["ranges"].items()}, record.get("source", ""))

    def __repr__(self) -> str:
        return f"FitRange({self.ranges})"
