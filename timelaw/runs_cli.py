"""`timelaw fit --from-trainer-state run1/ run2/ ...` and `timelaw calibrate --from-logs ...`: the user's own
training logs on the command line (see timelaw.runs).

`register(subparsers)` runs after the laws and devices CLIs have added `fit` and `calibrate`; it adds the
log options to those two parsers and routes a command that uses them here, leaving the others unchanged.

    timelaw fit --from-trainer-state out/run-a out/run-b out/run-c --global-batch-size 32
    timelaw calibrate --from-logs train.log --config config/train_small.py --global-batch-size 32 --name my-gpu
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register"]


def _add(parser, *flags, **options) -> None:
    """add_argument, unless the command already has the option (its own CLI may add --json one day)."""
    if not any(flag in parser._option_string_actions for flag in flags):
        parser.add_argument(*flags, **options)


def _log_arguments(parser) -> None:
    group = parser.add_argument_group("reading training logs (timelaw.runs)")
    group.add_argument = lambda *flags, **options: _add(parser, *flags, **options)  # noqa: E731
    group.add_argument("--config", metavar="PATH",
                       help="the runs' model: Hugging Face config.json, litgpt model_config.yaml or nanoGPT "
                            "config .py (default: the config.json in each run's folder)")
    group.add_argument("--global-batch-size", type=int, metavar="SEQUENCES",
                       help="sequences per optimizer step, all devices and accumulation included (required)")
    group.add_argument("--micro-batch-size", type=int, metavar="SEQUENCES",
                       help="sequences per forward pass on one device (default: the global batch)")
    group.add_argument("--data-parallel", type=int, default=1, help="data-parallel devices (default: 1)")
    group.add_argument("--seq-len", type=int, help="context the runs trained at (default: the config's)")
    group.add_argument("--precision", choices=("bf16", "fp16", "fp32"), default="bf16",
                       help="training precision (default: bf16)")
    group.add_argument("--loss-column", help="the loss column of a W&B CSV export, e.g. train/loss")
    group.add_argument("--step-column", default="_step", help="the step column of a W&B export (default: _step)")
    group.add_argument("--warmup-steps", type=int, metavar="STEPS",
                       help="first optimizer steps left out of timing (default: 10; trainer_state.json has "
                            "only the run's mean)")
    group.add_argument("--save-table", metavar="FILE", help="also write the runs table (CSV or JSONL) here")


def register(subparsers: argparse._SubParsersAction) -> None:
    fit, calibrate = subparsers.choices.get("fit"), subparsers.choices.get("calibrate")
    if fit is not None:
        # `fit runs.csv` keeps its positional table; with --from-trainer-state / --from-logs it is not needed
        for action in fit._actions:
            if action.dest == "runs":
                action.nargs, action.required, action.default = "?", False, None
        fit.add_argument("--from-trainer-state", nargs="+", metavar="RUN",
                         help="fit to Hugging Face Trainer runs: output folders or trainer_state.json files")
        fit.add_argument("--from-logs", nargs="+", metavar="LOG",
                         help="fit to training logs: trainer_state.json (or its folder), W&B CSV export "
                              "(with --loss-column), nanoGPT log")
        _log_arguments(fit)
        fit.set_defaults(func=_routed(fit.get_default("func"), _fit_from_logs, ("from_trainer_state", "from_logs")))
    if calibrate is not None:
        calibrate.add_argument("--from-logs", nargs="+", metavar="LOG",
                               help="fit a step-time model to your own runs' logged step times instead of "
                                    "running microbenchmarks, and save it as a profile (no torch needed)")
        _add(calibrate, "--method", choices=("flops", "memcopy", "roofline"), default="flops",
                               help="with --from-logs: the step-time model to fit (default: flops, one "
                                    "utilisation; roofline needs at least 10 distinct runs)")
        _add(calibrate, "--base-profile", metavar="NAME|PATH",
                               help="with --from-logs: the device whose peaks and bandwidths the model "
                                    "scales, a profile or a system (its device) (default: this machine's "
                                    "profile)")
        _add(calibrate, "--json", action="store_true", help="print the result as JSON")
        _log_arguments(calibrate)
        calibrate.set_defaults(func=_routed(calibrate.get_default("func"), _calibrate_from_logs, ("from_logs",)))


def _routed(original, from_logs, flags):
    def run(args):
        if any(getattr(args, f, None) for f in flags):
            return from_logs(args)
        if getattr(args, "runs", "") is None and original.__module__.endswith("laws.cli"):
            print("timelaw fit: error: give a runs table, or --from-trainer-state / --from-logs", file=sys.stderr)
            return 2
        return original(args)
    return run


def _table(args, paths):
    from timelaw.config import TrainSetup
    from timelaw.runs import read_log, concat

    if args.global_batch_size is None:
        raise ValueError("--global-batch-size is required with training logs: the tokens per step come from it")
    setup = TrainSetup(global_batch_size=args.global_batch_size,
                       micro_batch_size=args.micro_batch_size or args.global_batch_size // args.data_parallel,
                       data_parallel=args.data_parallel, precision=args.precision)
    options = dict(seq_len=args.seq_len, loss_column=args.loss_column)
    if args.step_column != "_step":
        options["step_column"] = args.step_column
    if args.warmup_steps is not None:
        options["warmup_steps"] = args.warmup_steps
    tables = []
    for path in paths:
        p = Path(path)
        opts = dict(options)
        if p.suffix.lower() != ".csv":
            opts.pop("step_column", None)
        tables.append(read_log(p, args.config, setup, **opts))
    table = concat(tables)
    if args.save_table:
        print(f"wrote {table.save(args.save_table)}", file=sys.stderr)
    return table


def _report(command: str, err) -> int:
    from timelaw.cli_errors import report_error

    return report_error(command, err)


def _fit_from_logs(args) -> int:
    from pydantic import ValidationError

    from timelaw.laws.cli import format_law
    from timelaw.laws.forms import fit_loss_law

    paths = list(args.from_trainer_state or []) + list(args.from_logs or [])
    try:
        table = _table(args, paths)
        law = fit_loss_law(table, form=args.form, n_bootstrap=args.bootstrap, grid=args.grid, seed=args.seed,
                           ci_level=args.level)
    except (ValueError, TypeError, ValidationError) as err:
        return _report("fit", err)
    out = Path(args.out) if args.out else Path(f"runs.{args.form}.json")
    law.to_json(out)
    if getattr(args, "json", False):
        print(json.dumps({"law": json.loads(out.read_text()), "points": len(table), "runs": list(table.runs),
                          "out": str(out)}, indent=1))
    else:
        print(f"read {len(table)} logged points of {len(table.runs)} run(s): {', '.join(table.runs)}")
        print(format_law(law))
        print(f"wrote {out}")
    return 0


def _calibrate_from_logs(args) -> int:
    from pydantic import ValidationError

    from timelaw.devices.registry import save_profile
    from timelaw.runs import profile_from_runs
    from timelaw.timing import get_estimator

    try:
        table = _table(args, args.from_logs)
        profile = profile_from_runs(table, method=args.method, base_profile=args.base_profile, name=args.name,
                                    data=", ".join(map(str, args.from_logs)))
        path = save_profile(profile, args.out)
    except (ValueError, TypeError, ValidationError) as err:
        return _report("calibrate", err)
    model = get_estimator(profile, args.method)
    runs = [{"run": run, "measured_seconds": t, "fitted_seconds": float(model.predict(c, s))}
            for run, (c, s, t) in table.step_times().items()]
    if args.json:
        print(json.dumps({"profile": profile.name, "path": str(path), "method": args.method,
                          "coefficients": profile.coefficients[args.method], "runs": runs}, indent=1))
        return 0
    print(f"{args.method} step-time model fitted to {len(runs)} run(s) from training logs "
          f"(device constants: {profile.provenance['base_profile']})")
    for r in runs:
        error = r["fitted_seconds"] / r["measured_seconds"] - 1
        print(f"  {r['run']:24s} measured {r['measured_seconds']:9.4f} s/step   fitted {r['fitted_seconds']:9.4f} "
              f"({error:+.1%})")
    print(f"wrote profile {profile.name!r} to {path} (use it as --profile {path if args.out else profile.name})")
    return 0
