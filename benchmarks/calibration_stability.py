"""Is a quick calibration the same every time it runs? (issue 14: "a calibration that is the same every time")

For each seed, a quick CPU calibration with one torch thread (`timelaw.calibrate(device="cpu", quick=True,
seed=s, threads=1)`, what `timelaw calibrate --device cpu --quick --seed s` does), then six fp32 reference-model training steps on shapes
neither the calibration nor the tests use (`step_design.CPU_BENCHMARK`), timed after it the way calibration
times its own (same thread count and clock, median of the timed steps over two passes). Reports each
estimator's MAPE per seed, the fitted coefficients, the calibration's noise estimate, and the largest MFU the
profile predicts over a grid of shapes. The stated target: roofline MAPE <= 12% for every seed, no matmul
coefficient at zero, no MFU above 100%.

    python benchmarks/calibration_stability.py --seeds 0 1 2 [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from timelaw.devices.calibrate import calibrate
from timelaw.devices.step_design import benchmark_steps
from timelaw.ledger import ledger
from timelaw.timing import ESTIMATORS, get_estimator

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MAPE = 12.0


def time_steps(steps, clock: str, passes: int = 2, timed: int = 3, warmup: int = 2) -> list[float]:
    """Median seconds per step over `passes` passes of `timed` steps each (as calibrate times its own)."""
    from timelaw.reference import time_training_steps

    seconds = [[] for _ in steps]
    for _ in range(passes):
        for i, (cfg, setup) in enumerate(steps):
            seconds[i] += time_training_steps(cfg, setup, steps=timed, warmup_steps=warmup, clock=clock).all_seconds
    return [float(np.median(s)) for s in seconds]


def max_mfu(profile, method: str) -> float:
    """Largest model-flops utilisation the profile predicts over a grid of fp32 shapes (should be <= 1)."""
    from timelaw.config import TrainSetup, TransformerConfig
    from timelaw.plan.predict import model_flops_per_step

    estimator = get_estimator(profile, method)
    worst = 0.0
    for d in (64, 256, 1024, 4096):
        for layers in (1, 4, 16):
            for batch in (1, 8, 64):
                cfg = TransformerConfig(d_model=d, n_layers=layers, n_heads=max(1, d // 64), vocab_size=2048,
                                        seq_len=256)
                setup = TrainSetup(micro_batch_size=batch, precision="fp32")
                seconds = float(estimator.predict(cfg, setup))
                worst = max(worst, model_flops_per_step(ledger(cfg, setup)) / (seconds * profile.peak("fp32")))
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the CLI on a CPU)")
    parser.add_argument("--out", default=str(RESULTS / "calibration_stability_cpu.json"))
    args = parser.parse_args(argv)
    import torch

    previous = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    clock = "process" if threads == 1 else "wall"
    steps = benchmark_steps("cpu", variants=False)
    runs = []
    try:
        for seed in args.seeds:
            began = time.perf_counter()
            profile = calibrate(device="cpu", quick=True, seed=seed, save=False, threads=threads,
                                max_holdout_mape_percent=None)
            calibration_seconds = time.perf_counter() - began
            measured = time_steps(steps, clock)
            run = {"seed": seed, "calibration_seconds": calibration_seconds,
                   "noise": profile.measurements["noise"], "measured_seconds": measured, "estimators": {}}
            for method in ESTIMATORS:
                estimator = get_estimator(profile, method)
                predicted = [float(estimator.predict(c, s)) for c, s in steps]
                ape = [abs(p / t - 1) * 100 for p, t in zip(predicted, measured)]
                run["estimators"][method] = {
                    "mape_percent": float(np.mean(ape)), "max_ape_percent": float(np.max(ape)),
                    "predicted_seconds": predicted, "coefficients": profile.coefficients[method],
                    "own_holdout_mape_percent": profile.validation[method]["holdout_mape_percent"],
                    "max_predicted_mfu": max_mfu(profile, method)}
            runs.append(run)
            r = run["estimators"]["roofline"]
            print(f"seed {seed}: calibration {calibration_seconds:5.1f} s ({run['noise']['passes']} passes), "
                  f"roofline MAPE {r['mape_percent']:5.1f}% (max {r['max_ape_percent']:5.1f}%), "
                  f"matmul coef {r['coefficients']['matmul_seconds']:.3f}, max MFU {r['max_predicted_mfu']:.1%}",
                  flush=True)
    finally:
        torch.set_num_threads(previous)
    roofline = [r["estimators"]["roofline"] for r in runs]
    result = {
        "benchmark": "quick CPU calibration, repeated over seeds, scored on six fresh fp32 steps",
        "threads": threads, "clock": clock, "target_mape_percent": TARGET_MAPE,
        "steps": [{"d_model": c.d_model, "n_layers": c.n_layers, "n_heads": c.n_heads, "seq_len": c.seq_len,
                   "micro_batch": s.micro_batch_size, "vocab_size": c.vocab_size} for c, s in steps],
        "runs": runs,
        "roofline_mape_percent_by_seed": [r["mape_percent"] for r in roofline],
        "all_within_target": all(r["mape_percent"] <= TARGET_MAPE for r in roofline),
        "any_zero_matmul_coefficient": any(
            run["estimators"][m]["coefficients"].get(k, 1.0) == 0.0 for run in runs for m, k in
            (("roofline", "matmul_seconds"), ("flops", "flops_at_peak_seconds"))),
        "max_predicted_mfu": {m: max(run["estimators"][m]["max_predicted_mfu"] for run in runs) for m in ESTIMATORS},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"roofline MAPE by seed {[round(x, 1) for x in result['roofline_mape_percent_by_seed']]}; "
          f"all within {TARGET_MAPE}%: {result['all_within_target']}; zero matmul coefficient: "
          f"{result['any_zero_matmul_coefficient']}; max MFU {result['max_predicted_mfu']}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
