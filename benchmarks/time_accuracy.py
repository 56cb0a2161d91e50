"""Step-time accuracy on real reference-model steps of this machine, on shapes the fit never saw.

Calibrates the device (microbenchmarks + timed fit steps; the profile is written to --out as soon as it
exists), or takes a profile already measured (--profile). Then scores it twice:

- on the calibration's own held-out steps (equal-parameter families at different depth/width, batch and
  context changes, >= 10x span in parameters), timed with the fit;
- on benchmark steps timed now, after calibration, on shapes neither set uses (`step_design.benchmark_steps`:
  on a GPU in bf16 and fp32, with and without recomputation and gradient accumulation), and scores the
  profiles named by --compare (on a GPU by default the spec sheet of that GPU) on the same steps.

Writes time_accuracy_<device>.json (and a predicted-vs-measured figure when matplotlib is there) into --out.

    python benchmarks/time_accuracy.py --device cpu --threads 1 --save-profile
    python benchmarks/time_accuracy.py --device cuda --profile OUT/profile.json --out OUT --time-budget 90
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.devices.registry import load_profile, save_profile, shipped_dir
from timelaw.devices.step_design import benchmark_steps
from timelaw.params import count_params
from timelaw.timing import ESTIMATORS, get_estimator

RESULTS = Path(__file__).resolve().parent / "results"
SPEC_SHEETS = (("H200", "h200"), ("H100 PCIe", "h100-pcie"), ("H100", "h100-sxm"), ("A100-SXM4-40GB", "a100-sxm-40gb"),
               ("A100", "a100-sxm-80gb"), ("L4", "l4"), ("RTX 3090", "rtx-3090"), ("RTX 4090", "rtx-4090"))


def spec_sheet_for(device_name: str) -> str | None:
    """The shipped spec-sheet profile of a GPU, from torch's device name (None if there is none)."""
    for key, profile in SPEC_SHEETS:
        if key.lower() in device_name.lower():
            return profile
    return None


def _steps(records):
    return [(TransformerConfig(**r["config"]), TrainSetup(**r["setup"]), r["seconds"]) for r in records]


def _row(c, s, t):
    return {"d_model": c.d_model, "n_layers": c.n_layers, "n_heads": c.n_heads, "seq_len": c.seq_len,
            "vocab_size": c.vocab_size, "micro_batch": s.micro_batch_size, "grad_accum": s.grad_accum_steps,
            "precision": s.precision, "recompute": s.activation_checkpointing, "params": count_params(c).total,
            "measured_seconds": t}


def score(profile, steps, methods=None) -> dict:
    """Per-estimator predictions on (cfg, setup, seconds) steps, with MAPE (methods the profile has)."""
    out = {}
    for method in methods or ESTIMATORS:
        if method not in profile.coefficients:
            continue
        estimator = get_estimator(profile, method)
        predicted = [float(estimator.predict(c, s)) for c, s, _ in steps]
        ape = [abs(p / t - 1) * 100 for p, (_, _, t) in zip(predicted, steps)]
        out[method] = {"mape_percent": float(np.mean(ape)), "median_ape_percent": float(np.median(ape)),
                       "max_ape_percent": float(np.max(ape)), "predicted_seconds": predicted,
                       "coefficients": profile.coefficients[method]}
        by_precision = {}
        for (c, s, _), e in zip(steps, ape):
            by_precision.setdefault(s.precision, []).append(e)
        out[method]["mape_percent_by_precision"] = {k: float(np.mean(v)) for k, v in by_precision.items()}
    return out


def evaluate(profile) -> dict:
    """The profile's own held-out steps: predictions, MAPE and the span of the held-out set."""
    holdout = _steps(profile.measurements.get("holdout_steps", []))
    if not holdout:
        return {"held_out": [], "param_span": None, "estimators": {}, "flops_over_roofline_mape": None}
    params = [count_params(c).total for c, _, _ in holdout]
    result = {"held_out": [_row(c, s, t) for c, s, t in holdout],
              "param_span": max(params) / min(params), "estimators": score(profile, holdout)}
    for method, e in result["estimators"].items():
        e["fit_mape_percent"] = profile.validation[method]["fit_mape_percent"]
    e = result["estimators"]
    result["flops_over_roofline_mape"] = e["flops"]["mape_percent"] / e["roofline"]["mape_percent"]
    return result


def time_benchmark_steps(steps, device: str, clock: str, budget_seconds: float | None, timed: int, warmup: int,
                         log=print) -> list:
    """(cfg, setup, median seconds) of each step timed before the budget ran out; out-of-memory steps skipped."""
    import torch

    from timelaw.reference import time_training_steps

    oom = tuple({getattr(torch, "OutOfMemoryError", MemoryError), torch.cuda.OutOfMemoryError})
    began, done = time.perf_counter(), []
    for cfg, setup in steps:
        if budget_seconds is not None and time.perf_counter() - began > budget_seconds:
            log(f"time budget ({budget_seconds:g} s) spent: {len(steps) - len(done)} benchmark steps not timed")
            break
        try:
            timing = time_training_steps(cfg, setup, device=device, steps=timed, warmup_steps=warmup, clock=clock)
            done.append((cfg, setup, float(np.median(timing.all_seconds))))
            log(f"  timed d={cfg.d_model} L={cfg.n_layers} S={cfg.seq_len} B={setup.micro_batch_size} "
                f"x{setup.grad_accum_steps} {setup.precision} {setup.activation_checkpointing}: "
                f"{done[-1][2] * 1e3:.2f} ms")
        except oom:
            log(f"  out of memory: d={cfg.d_model} L={cfg.n_layers} skipped")
        finally:
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return done


def plot(result: dict, path: Path) -> bool:
    """Predicted vs measured on the benchmark steps (the held-out steps if none); False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = result["benchmark"] if result["benchmark"]["steps"] else result["own_held_out"]
    rows = part.get("steps", part.get("held_out"))
    if not rows:
        return False
    measured = [r["measured_seconds"] for r in rows]
    estimators = part["estimators"]
    fig, axes = plt.subplots(1, len(estimators), figsize=(4 * len(estimators), 4), sharey=True, squeeze=False)
    lo, hi = min(measured) / 2, max(measured) * 2
    for ax, (method, e) in zip(axes[0], estimators.items()):
        ax.loglog(measured, e["predicted_seconds"], "o")
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(title=f"{method}: MAPE {e['mape_percent']:.1f}%", xlabel="measured s/step", xlim=(lo, hi),
               ylim=(lo, hi))
    axes[0][0].set_ylabel("predicted s/step")
    fig.suptitle(f"held-out reference steps on {result['profile']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", help="score this measured profile (a path or name) instead of calibrating")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the result (and the profile measured)")
    parser.add_argument("--compare", nargs="*", default=None,
                        help="other profiles to score on the benchmark steps (default on a GPU: its spec sheet)")
    parser.add_argument("--no-benchmark-steps", action="store_true", help="score the own held-out steps only")
    parser.add_argument("--no-variants", action="store_true",
                        help="benchmark steps without recomputation and accumulation variants")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds for timing benchmark steps (the rest are left out and said so)")
    parser.add_argument("--calibration-budget", type=float, default=None, help="calibrate's time budget")
    parser.add_argument("--timed-steps", type=int, default=5)
    parser.add_argument("--max-holdout-mape", type=float, default=None,
                        help="passed to calibrate (default: never refuse, the benchmark reports the error)")
    parser.add_argument("--save-profile", action="store_true",
                        help="also write the measured profile into the shipped profiles (timelaw/data/profiles)")
    args = parser.parse_args(argv)
    import torch

    from timelaw.devices.calibrate import calibrate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kind = args.device.split(":")[0]
    previous_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = "process" if kind == "cpu" and torch.get_num_threads() == 1 else "wall"
    try:
        if args.profile:
            profile = load_profile(args.profile)
        else:
            profile = calibrate(device=args.device, quick=args.quick, seed=args.seed, threads=args.threads,
                                out=out / f"profile-{kind}.json", time_budget_seconds=args.calibration_budget,
                                max_holdout_mape_percent=args.max_holdout_mape)
        result = {"profile": profile.name, "device": profile.provenance.get("device", {}), "quick": args.quick,
                  "threads": torch.get_num_threads(), "clock": clock, "seed": args.seed,
                  "own_held_out": evaluate(profile), "benchmark": {"steps": [], "estimators": {}, "compare": {}}}
        if not args.no_benchmark_steps:
            memory = profile.memory_bytes if kind != "cpu" else None
            designed = benchmark_steps(kind, variants=not args.no_variants, memory_bytes=memory)
            print(f"timing {len(designed)} benchmark steps", flush=True)
            timed = time_benchmark_steps(designed, args.device, clock, args.time_budget, args.timed_steps, 2)
            compare = args.compare
            if compare is None:
                spec = spec_sheet_for(str(result["device"].get("name", ""))) if kind == "cuda" else None
                compare = [spec] if spec else []
            if timed:
                result["benchmark"] = {
                    "steps": [_row(c, s, t) for c, s, t in timed], "n_designed": len(designed),
                    "estimators": score(profile, timed),
                    "compare": {name: score(load_profile(name), timed) for name in compare}}
        stem = f"time_accuracy_{kind}"
        (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
        plotted = plot(result, out / f"{stem}.png")
    finally:
        torch.set_num_threads(previous_threads)
    if args.save_profile:
        print("profile saved to", save_profile(profile, shipped_dir() / f"{profile.name}.json"))
    print(f"{'':26s} {'flops':>8s} {'memcopy':>8s} {'roofline':>8s}   (MAPE %)")
    rows = [("own held-out steps", result["own_held_out"]["estimators"])] if result["own_held_out"]["held_out"] else []
    if result["benchmark"]["steps"]:
        rows.append((f"benchmark ({len(result['benchmark']['steps'])} steps)", result["benchmark"]["estimators"]))
        rows += [(f"  {name}", e) for name, e in result["benchmark"]["compare"].items()]
    for label, estimators in rows:
        cells = [f"{estimators[m]['mape_percent']:8.1f}" if m in estimators else f"{'-':>8s}"
                 for m in ("flops", "memcopy", "roofline")]
        print(f"{label:26s} {' '.join(cells)}")
    print(f"written to {out / (stem + '.json')}" + ("" if plotted else " (no figure: matplotlib is not installed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
