"""`timelaw pilot --data PATH --budget 2m --sizes 64x2 128x4 --out runs.csv`: pilot runs from the shell.

The top-level CLI calls `register(subparsers)`; the parsed arguments' `func` runs the command and returns
the exit code. Ctrl-C stops after the last complete run (exit code 130): run the same command to resume.
"""
from __future__ import annotations

import argparse
import sys

from timelaw.laws.forms import FORMS
from timelaw.training.budget import parse_budget
from timelaw.training.table import read_rows
from timelaw.training.run import DEFAULT_SIZES
from timelaw.training.schedule import SCHEDULES
from timelaw.training.tokenizer import TOKENIZERS
from timelaw.training.trainer import TrainOptions


# `timelaw fit` fits a Chinchilla law by default: it needs more runs than the law has constants
FIT_MIN_RUNS = len(FORMS["chinchilla"].param_names)


def _budget(text: str) -> float:
    try:
        return parse_budget(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `pilot` subcommand."""
    p = subparsers.add_parser(
        "pilot", help="train small models for wall-clock budgets on your data (a runs table to fit)",
        description="Train the reference model on your text for fixed wall-clock budgets (training steps only; "
                    "evaluation is excluded and reported), over a grid of shapes, and append one row per run "
                    "to a CSV/JSONL table that `timelaw fit` reads. Finished runs are not repeated.")
    p.add_argument("--data", required=True, help="a text file or a folder of text files")
    p.add_argument("--budget", required=True, nargs="+", type=_budget,
                   help="training budget per run: 30s, 2m, 1h30m, ... One budget B also trains every size for "
                        "B/4 and B/2 (1.75 B of training per size), so that `timelaw fit` can tell N from D "
                        "(see --no-ladder); several: exactly those budgets")
    p.add_argument("--no-ladder", dest="ladder", action="store_false",
                   help="with one budget, train only that budget (the runs then cannot be fitted alone)")
    p.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES),
                   help=f"shapes WIDTHxDEPTH[xHEADS] (default: {' '.join(DEFAULT_SIZES)})")
    p.add_argument("--out", default="runs.csv", help="runs table, .csv or .jsonl (default: runs.csv)")
    p.add_argument("--pattern", default="*", help="file name pattern inside a data folder (default: *)")
    p.add_argument("--tokenizer", choices=TOKENIZERS, default="byte",
                   help="byte-level, or a BPE trained on the data (needs `tokenizers`) (default: byte)")
    p.add_argument("--bpe-vocab", type=int, default=4096, help="BPE vocabulary size (default: 4096)")
    p.add_argument("--max-train-tokens", type=int, help="cap the training split (a finite-data setting)")
    p.add_argument("--seq-len", type=int, default=128, help="context length (default: 128)")
    p.add_argument("--batch", type=int, default=16, help="sequences per step (default: 16)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="LR decay (default: cosine)")
    p.add_argument("--lr", type=float, help="peak LR (default: 3e-3 x min(1, sqrt(64 / d_model)))")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds per shape and budget (default: 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads per run (default: torch's)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--json", action="store_true", help="print the new runs' rows as JSON instead of a table")
    p.set_defaults(func=run_pilot)


def run_pilot(args: argparse.Namespace) -> int:
    from timelaw.training.run import pilot

    options = TrainOptions(schedule=args.schedule, lr=args.lr)
    try:
        rows = pilot(args.data, args.budget, args.sizes, out=args.out, seeds=args.seeds, seq_len=args.seq_len,
                     micro_batch_size=args.batch, precision=args.precision, tokenizer=args.tokenizer,
                     bpe_vocab_size=args.bpe_vocab, max_train_tokens=args.max_train_tokens,
                     pattern=args.pattern, options=options, threads=args.threads, device=args.device,
                     ladder=args.ladder)
    except (ImportError, ValueError) as err:  # torch, or tokenizers for --tokenizer bpe; bad input
        from timelaw.cli_errors import report_error

        return report_error("pilot", err)
    except KeyboardInterrupt:
        print(f"\ninterrupted: complete runs are in {args.out}; run the same command to resume",
              file=sys.stderr)
        return 130
    total = len(read_rows(args.out))
    if getattr(args, "json", False):
        import json

        print(json.dumps({"runs": rows, "out": str(args.out), "runs_in_table": total}, indent=1, default=str))
        return 0
    print(format_rows(rows))
    if total > FIT_MIN_RUNS:
        print(f"{len(rows)} runs ({total} in {args.out}); fit them with: timelaw fit {args.out}")
    else:
        print(f"{len(rows)} runs ({total} in {args.out}); a law fit needs more than {FIT_MIN_RUNS} runs over "
              f"several sizes and budgets: add budgets or sizes (or drop --no-ladder) before `timelaw fit`")
    return 0


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'shape':>10} {'params':>10} {'budget s':>9} {'steps':>7} {'tokens':>12} {'epochs':>7} "
             f"{'s/step':>8} {'eval s':>7} {'loss':>7}"]
    for r in rows:
        lines.append(f"{int(r['d_model']):>5}x{int(r['n_layers']):<4} {int(r['N']):>10,} {r['budget_seconds']:>9g} "
                     f"{int(r['steps']):>7} {int(r['D']):>12,} {r['epochs']:>7.2f} {r['seconds_per_step']:>8.4f} "
                     f"{r['eval_seconds']:>7.2f} {r['loss']:>7.4f}")
    return "\n".join(lines)
