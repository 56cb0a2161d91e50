"""Plain-text tables for the planner's results (the CLI and the objects' `.text` use them)."""
from __future__ import annotations

import math

__all__ = ["format_table", "format_number"]

# Columns shown by default, and how wide numbers print.
DEFAULT_COLUMNS = ("rank", "loss", "n_params", "tokens", "d_model", "n_layers", "n_heads", "mlp", "seq_len",
                   "micro_batch_size", "global_batch_size", "seconds_per_step", "tokens_per_second", "memory_gib")
SHORT_NAMES = {"micro_batch_size": "micro", "global_batch_size": "global", "seconds_per_step": "s/step",
               "tokens_per_second": "tok/s", "memory_gib": "GiB", "n_params": "params", "tokens_per_step": "tok/step"}


def format_number(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return f"{int(value):,}" if abs(value) >= 1e4 else str(int(value))
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e6:
        return f"{value:.3g}"
    return f"{value:.4g}" if abs(value) < 100 else f"{value:,.0f}"


def format_table(rows: list, columns=None) -> str:
    """Right-aligned columns; `columns` defaults to the ones optimize's table has."""
    if not rows:
        return "(no rows)"
    columns = [c for c in (columns or DEFAULT_COLUMNS) if c in rows[0]]
    cells = [[SHORT_NAMES.get(c, c) for c in columns]]
    cells += [[format_number(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in cells)
