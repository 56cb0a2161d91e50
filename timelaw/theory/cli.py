"""`timelaw phases`: the phase of (alpha, beta), its exponents, optionally measured and plotted."""
from __future__ import annotations

import argparse
import json

DEFAULT_FLOPS = (1e8, 1e12)


def register(subparsers) -> None:
    """Add the `phases` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "phases",
        help="compute-optimal phase of the power-law random features model",
        description="Which of the 4+3 phases (Paquette et al. 2024) (alpha, beta) lies in, with the exponents "
                    "d* ~ f^xi and loss ~ f^-eta. --measure fits them with the IsoFLOP procedure instead.",
    )
    parser.add_argument("--alpha", type=float, required=True, help="data complexity: x_j = j^-alpha z_j")
    parser.add_argument("--beta", type=float, required=True, help="target complexity: b_j = j^-beta")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--plot", metavar="FILE.png", help="save the phase diagram with (alpha, beta) marked")
    parser.add_argument("--measure", action="store_true",
                        help="also run the IsoFLOP procedure on the deterministic equivalent (a few seconds)")
    parser.add_argument("--flops", type=float, nargs=2, default=DEFAULT_FLOPS, metavar=("LOW", "HIGH"),
                        help="budget range for --measure, in units of d x batch x steps (default 1e8 1e12)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from timelaw._optional import require
    from timelaw.theory import compute_optimal, phase, phase_diagram

    if args.plot:  # before any work: one line naming the extra if matplotlib is missing
        require("matplotlib", "--plot")
    try:
        result = phase(args.alpha, args.beta)
        measured = None
        low, high = args.flops
        if not 0 < low < high < float("inf"):
            raise ValueError(f"--flops takes LOW HIGH with 0 < LOW < HIGH, got {low:g} {high:g}")
        if args.measure:
            measured = compute_optimal(args.alpha, args.beta, np.geomspace(low, high, 9))
    except ValueError as error:
        from timelaw.cli_errors import report_error

        return report_error("phases", error)
    record = result.to_dict()
    if measured is not None:
        record["measured"] = {"xi": measured.xi, "eta": measured.eta, "xi_stderr": measured.xi_stderr,
                              "eta_stderr": measured.eta_stderr, "flops": list(args.flops)}
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        print(_text(record))
    if args.plot:
        phase_diagram(mark=(result.alpha, result.beta), path=args.plot)
        if not args.json:
            print(f"phase diagram written to {args.plot}")
    return 0


def _text(record: dict) -> str:
    lines = [
        f"alpha={record['alpha']:g} beta={record['beta']:g}: phase {record['name']} ({record['region']})",
        f"  d* ~ f^{record['xi']:.4f}    loss ~ f^-{record['eta']:.4f}    (f = d x batch x steps)",
        f"  set by the balance of {' and '.join(record['terms'])}:",
    ]
    lines += [f"    {term}: {text}" for term, text in record["term_descriptions"].items()]
    if "measured" in record:
        m = record["measured"]
        lines.append(f"  IsoFLOP on the deterministic equivalent, f in [{m['flops'][0]:g}, {m['flops'][1]:g}]: "
                     f"xi = {m['xi']:.4f} +- {m['xi_stderr']:.4f}, eta = {m['eta']:.4f} +- {m['eta_stderr']:.4f}")
    return "\n".join(lines)
