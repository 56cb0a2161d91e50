"""The ledger as text and rows: where one step's flops, bytes, kernels and messages go, op by op.

Kept apart from the inventory (timelaw/ledger.py), which the estimators read and which never needs it.
"""
from __future__ import annotations

from timelaw.ledger import Ledger, _as_number

__all__ = ["op_rows", "render"]


def op_rows(step: Ledger) -> list[dict]:
    """One dict per operation with per-step totals (count x per-occurrence values)."""
    return [
        {"name": op.name, "class": op.cls, "phase": op.phase, "count": _as_number(op.count),
         "flops": _as_number(op.flops * op.count), "bytes_read": _as_number(op.bytes_read * op.count),
         "bytes_written": _as_number(op.bytes_written * op.count),
         "kernels": _as_number(op.kernels * op.count),
         "message_bytes": _as_number(op.message_bytes * op.count)}
        for op in step.ops
    ]


def render(step: Ledger) -> str:
    """A readable per-operation table of one config's step: GFLOP, MB of memory traffic, kernels, and the
    MB each collective sends over links (not memory traffic)."""
    lines = [f"{'op':28s} {'class':13s} {'phase':13s} {'GFLOP':>10s} {'MB moved':>10s} {'kernels':>8s} "
             f"{'MB sent':>9s}"]
    for r in op_rows(step):
        lines.append(f"{r['name']:28s} {r['class']:13s} {r['phase']:13s} {r['flops'] / 1e9:10.3f} "
                     f"{(r['bytes_read'] + r['bytes_written']) / 1e6:10.2f} {r['kernels']:8.0f} "
                     f"{r['message_bytes'] / 1e6:9.2f}")
    t = step.totals
    lines.append(f"{'total':56s} {t['flops'] / 1e9:10.3f} "
                 f"{(t['bytes_read'] + t['bytes_written']) / 1e6:10.2f} {t['kernels']:8.0f} "
                 f"{t['message_bytes'] / 1e6:9.2f}")
    return "\n".join(lines)
