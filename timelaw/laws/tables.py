"""Run tables: read and validate the training runs (N, D, loss, optional U) a loss law is fitted to.

A table is a pandas DataFrame, a dict of arrays, or a path to a CSV or JSONL file, with columns
`N` (parameters), `D` (tokens) or `C` (training flops; then D = C / (6 N)), `loss`, and optionally
`U` or `unique_tokens` (unique tokens, for data-constrained laws), `d_model` and `n_layers` (the shape, for
the shape-aware law) and `batch_tokens` (tokens per optimizer step, for the batch term). Bad tables fail here, with a message
naming the column, so nothing downstream re-checks them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from timelaw.files import TABLE_SUFFIXES, read_records
from timelaw.laws.allocation import FLOPS_PER_PARAM_TOKEN

EXPECTED_COLUMNS = (
    "N (parameters), D (tokens) or C (training flops, D = C / (6 N)), loss, "
    "and optionally U or unique_tokens, d_model and n_layers, batch_tokens"
)
OPTIONAL_COLUMNS = ("d_model", "n_layers", "batch_tokens")
UNIQUE_TOKEN_COLUMNS = ("U", "unique_tokens")


@dataclass(frozen=True)
class RunTable:
    """Validated runs: positive finite arrays of equal length."""

    n_params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    unique_tokens: np.ndarray | None
    source: str
    d_model: np.ndarray | None = None
    n_layers: np.ndarray | None = None
    batch_tokens: np.ndarray | None = None

    @property
    def aspect_ratio(self) -> np.ndarray | None:
        return None if self.d_model is None or self.n_layers is None else self.d_model / self.n_layers

    def __len__(self) -> int:
        return len(self.loss)


def read_runs(runs: Any) -> RunTable:
    """Read a table of runs from a DataFrame, a dict of arrays, or a CSV/JSONL path, and validate it."""
    if isinstance(runs, RunTable):
        return runs
    if isinstance(runs, (str, os.PathLike)):
        path = Path(runs)
        return _table_from_columns(_read_file(path), source=f"file {path}")
    if hasattr(runs, "columns") or isinstance(runs, Mapping):
        names = list(runs.columns) if hasattr(runs, "columns") else list(runs.keys())
        columns = {str(name): runs[name] for name in names}
        return _table_from_columns(columns, source=f"{type(runs).__name__} of runs")
    raise TypeError(
        f"runs must be a pandas DataFrame, a dict of arrays or a CSV/JSONL path, not {type(runs).__name__}"
    )


def _table_from_columns(columns: Mapping[str, Any], source: str) -> RunTable:
    n_params = _column(columns, "N")
    if "D" in columns:
        tokens = _column(columns, "D")
    elif "C" in columns:
        flops = _column(columns, "C")
        if len(flops) != len(n_params):
            raise ValueError(_length_message({"N": n_params, "C": flops}))
        tokens = flops / (FLOPS_PER_PARAM_TOKEN * n_params)
    else:
        raise ValueError(
            f"runs table has neither a 'D' (tokens) nor a 'C' (training flops) column; "
            f"expected {EXPECTED_COLUMNS}; got columns {sorted(columns)}"
        )
    loss = _column(columns, "loss")
    unique_name = next((name for name in UNIQUE_TOKEN_COLUMNS if name in columns), None)
    unique = _column(columns, unique_name) if unique_name else None

    optional = {name: _column(columns, name) for name in OPTIONAL_COLUMNS if name in columns}
    if ("d_model" in optional) != ("n_layers" in optional):
        raise ValueError("runs table has only one of 'd_model' and 'n_layers'; give both (the shape) or neither")

    named = {"N": n_params, "D": tokens, "loss": loss, **optional}
    if unique is not None:
        named[unique_name] = unique
    if len({len(values) for values in named.values()}) > 1:
        raise ValueError(_length_message(named))
    return RunTable(n_params, tokens, loss, unique, source=f"{source} ({len(loss)} runs)", **optional)


def _column(columns: Mapping[str, Any], name: str) -> np.ndarray:
    """One column as a float array; rejects missing, non-numeric, NaN, infinite and non-positive values."""
    if name not in columns:
        raise ValueError(
            f"runs table has no column {name!r}; expected {EXPECTED_COLUMNS}; got columns {sorted(columns)}"
        )
    try:
        values = np.asarray(columns[name], dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"column {name!r} must hold numbers > 0: {err}") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"column {name!r} must be a non-empty 1-D list of numbers > 0")
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"column {name!r} must hold finite numbers > 0 (no NaN, missing, zero or negative values); "
            f"row {row} (counting from 0) is {values[row]!r}, and {bad.size} row(s) are bad in all"
        )
    return values


def _length_message(named: Mapping[str, np.ndarray]) -> str:
    lengths = ", ".join(f"{name} has {len(values)}" for name, values in named.items())
    return f"runs table columns have different lengths: {lengths}"


def _read_file(path: Path) -> dict[str, list[Any]]:
    if not path.is_file():
        raise ValueError(f"runs file {str(path)!r} does not exist")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"runs file {str(path)!r} must end in {', '.join(TABLE_SUFFIXES)}")
    rows = read_records(path)
    if not rows:
        raise ValueError(f"runs file {str(path)!r} has no runs: no rows below its header, or no JSON lines")
    # An empty CSV cell becomes NaN, so that validation reports it as a missing value in its row.
    return _columns_from_rows(rows, empty="nan" if path.suffix.lower() == ".csv" else None)


def _columns_from_rows(rows: list[Mapping[str, Any]], empty: Any) -> dict[str, list[Any]]:
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: [_missing_as(row.get(name), empty) for row in rows] for name in names}


def _missing_as(value: Any, empty: Any) -> Any:
    return empty if value is None or value == "" else value
