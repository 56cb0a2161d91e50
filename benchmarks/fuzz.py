"""Fuzz the planner: random configs, setups, budgets and shipped profiles through predict_loss.

Counts what may never happen (issue 14): a crash (any exception but the ValueError / ValidationError that
refuses bad input), a NaN, a loss above ln(vocab) (a uniform guess) or below the law's floor E, and an MFU
outside (0, 1]. Refusals are counted too, by reason, since a fuzz that refuses everything proves nothing.
Writes benchmarks/results/fuzz.json (counts, refusal reasons, the first failing cases of each kind).

    python benchmarks/fuzz.py [--cases 3000] [--seed 0] [--laws default|presets]
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import ValidationError

import timelaw
from timelaw.plan.inputs import resolve_law

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
KEEP = 5  # failing cases kept per kind


def draw_case(rng: np.random.Generator, profiles: list[str], laws: list) -> dict:
    """One random case: log-uniform sizes and budgets over what people train, and some that nobody does."""
    n_heads = int(rng.integers(1, 65))
    head_dim = int(rng.choice([8, 16, 32, 64, 80, 96, 128, 256]))
    micro = int(rng.choice([1, 2, 4, 8, 16, 32, 128]))
    return {
        "config": dict(
            d_model=n_heads * head_dim, n_heads=n_heads,
            n_layers=int(np.exp(rng.uniform(0, np.log(160)))),
            vocab_size=int(np.exp(rng.uniform(np.log(256), np.log(262_144)))),
            seq_len=int(rng.choice([32, 128, 512, 1024, 2048, 4096, 8192, 32768])),
            mlp=str(rng.choice(["gelu", "swiglu"])),
        ),
        "setup": dict(
            micro_batch_size=micro, global_batch_size=micro * int(rng.choice([1, 2, 4, 16, 64, 512])),
            precision=str(rng.choice(["bf16", "fp16", "fp32"])),
            activation_checkpointing=str(rng.choice(["none", "full"])),
        ),
        "hours": float(np.exp(rng.uniform(np.log(1e-4), np.log(1e4)))),
        "profile": str(rng.choice(profiles)),
        "law": laws[int(rng.integers(len(laws)))],
    }


def reason(error: Exception) -> str:
    """A refusal's message without its numbers, so that refusals group by kind."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, ValidationError):
        text = "; ".join(f"{e['loc'][0] if e['loc'] else 'config'}: {e['msg']}" for e in error.errors())
    return re.sub(r"[-+]?\d[\d,.]*(e[-+]?\d+)?", "#", text)[:90]


def run(cases: int, seed: int, law_mode: str) -> dict:
    rng = np.random.default_rng(seed)
    profiles = sorted(timelaw.list_profiles())
    laws = [None] if law_mode == "default" else [None, *timelaw.laws.PRESET_NAMES]
    floors = {law: float(resolve_law(law).law.params_.get("E", 0.0)) for law in laws}
    counts = Counter()
    refusals = Counter()
    failures: dict[str, list] = {}
    start = time.perf_counter()
    for _ in range(cases):
        case = draw_case(rng, profiles, laws)
        kinds = []
        try:
            cfg = timelaw.TransformerConfig(**case["config"])
            setup = timelaw.TrainSetup(**case["setup"])
            unique = 1e9 if case["law"] == "muennighoff2023" else None
            prediction = timelaw.predict_loss(cfg, hours=case["hours"], setup=setup, profile=case["profile"],
                                              law=case["law"], unique_tokens=unique)
        except (ValueError, ValidationError) as error:  # refused: bad input, or it does not fit the device
            counts["refused"] += 1
            refusals[reason(error)] += 1
            continue
        except Exception as error:  # noqa: BLE001 - a crash is what this looks for
            kinds.append("crash")
            case["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
        else:
            counts["predicted"] += 1
            loss, mfu, ceiling = prediction.loss, prediction.mfu, math.log(cfg.vocab_size)
            case["loss"], case["mfu"], case["ln_vocab"] = loss, mfu, ceiling
            if not (math.isfinite(loss) and math.isfinite(mfu)):
                kinds.append("nan")
            else:
                if loss > ceiling * (1 + 1e-9):
                    kinds.append("loss_above_ln_vocab")
                if loss < floors[case["law"]] * (1 - 1e-9):
                    kinds.append("loss_below_floor")
                if not 0 < mfu <= 1:
                    kinds.append("mfu_outside_0_1")
        for kind in kinds:
            counts[kind] += 1
            failures.setdefault(kind, [])
            if len(failures[kind]) < KEEP:
                failures[kind].append(case)
    seconds = time.perf_counter() - start
    return {
        "command": f"python benchmarks/fuzz.py --cases {cases} --seed {seed} --laws {law_mode}",
        "cases": cases, "seed": seed, "laws": [law or "default" for law in laws], "profiles": profiles,
        "counts": {kind: counts.get(kind, 0) for kind in ("predicted", "refused", "crash", "nan",
                                                           "loss_above_ln_vocab", "loss_below_floor",
                                                           "mfu_outside_0_1")},
        "refusal_reasons": dict(refusals.most_common(15)),
        "failures": failures,
        "seconds": round(seconds, 1),
        "timelaw_version": timelaw.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--laws", choices=("default", "presets"), default="default",
                        help="the default law only, or every preset drawn at random (default: default)")
    args = parser.parse_args()
    record = run(args.cases, args.seed, args.laws)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("fuzz.json" if args.laws == "default" else f"fuzz_{args.laws}.json")
    out.write_text(json.dumps(record, indent=1, default=float) + "\n")
    for kind, count in record["counts"].items():
        print(f"{kind:<22} {count:>6}")
    print(f"{record['seconds']} s; wrote {out}")


if __name__ == "__main__":
    main()
