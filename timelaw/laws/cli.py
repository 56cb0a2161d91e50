"""`timelaw fit runs.csv --form chinchilla`: fit a loss law, print it with intervals, write it as JSON.

The top-level CLI calls `register(subparsers)`; the parsed arguments' `func` runs the command and returns
the exit code.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from timelaw.laws.allocation import compute_optimal_exponents
from timelaw.laws.base import LossLaw
from timelaw.laws.fitting import DEFAULT_GRID, DegenerateFitWarning
from timelaw.laws.forms import FORMS, fit_loss_law


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `fit` subcommand."""
    parser = subparsers.add_parser(
        "fit",
        help="fit a loss law to training runs",
        description=(
            "Fit a loss law to a table of runs (CSV or JSONL with columns N, D or C, loss, and optionally "
            "U): Huber loss (delta 1e-3) on log loss, L-BFGS-B from many starts, bootstrap intervals."
        ),
    )
    parser.add_argument("runs", help="CSV or JSONL file of runs: N, D (or C = training flops), loss [, U]")
    parser.add_argument("--form", choices=sorted(FORMS), default="chinchilla", help="law to fit (default: chinchilla)")
    parser.add_argument("--out", help="JSON file to write the law to (default: <runs name>.<form>.json)")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples for intervals (default: 100)")
    parser.add_argument("--grid", type=int, default=DEFAULT_GRID, help=f"starting points (default: {DEFAULT_GRID})")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default: 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the fitted law as JSON instead of a table")
    parser.set_defaults(func=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown as plain lines below, not with a source line
            warnings.simplefilter("always", DegenerateFitWarning)
            law = fit_loss_law(
                args.runs, form=args.form, n_bootstrap=args.bootstrap, grid=args.grid, seed=args.seed,
                ci_level=args.level,
            )
    except (ValueError, TypeError) as err:
        from timelaw.cli_errors import report_error

        return report_error("fit", err)
    for warning in caught:
        if issubclass(warning.category, DegenerateFitWarning):
            print(f"timelaw fit: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    out = Path(args.out) if args.out else Path(f"{Path(args.runs).stem}.{args.form}.json")
    law.to_json(out)
    if getattr(args, "json", False):
        import json

        print(json.dumps({"law": json.loads(out.read_text()), "out": str(out)}, indent=1))
        return 0
    print(format_law(law))
    print(f"wrote {out}")
    return 0


def format_law(law: LossLaw) -> str:
    """A readable table of the constants with their intervals, and what the fit implies."""
    level = f"{law.ci_level_:.0%} interval" if law.ci_ else "interval"
    lines = [f"{law.form} law: {law.equation}", f"  {'constant':<10} {'value':>12}   {level}"]
    for name, value in law.params_.items():
        if not law.ci_:
            interval = "(none)"
        elif name not in law.ci_ or not all(np.isfinite(law.ci_[name])):
            interval = "(none: not identified by these runs)"
        else:
            interval = f"[{law.ci_[name][0]:.5g}, {law.ci_[name][1]:.5g}]"
        lines.append(f"  {name:<10} {value:>12.5g}   {interval}")
    if law.provenance_:
        lines.append(f"  fitted to {law.provenance_.get('data')}")
    if law.residuals_ is not None:
        rms = float(np.sqrt(np.mean(law.residuals_**2)))
        lines.append(f"  RMS of log residuals: {rms:.4f} (about {rms:.1%} of the loss)")
    if law.separates_n_and_d:
        a, b = compute_optimal_exponents(law)
        lines.append(f"  compute-optimal allocation: N* ~ C^{a:.3f}, D* ~ C^{b:.3f}")
    return "\n".join(lines)
