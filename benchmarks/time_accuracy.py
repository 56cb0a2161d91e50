"""Step-time accuracy on real reference-model steps of this machine, on shapes the fit never saw.

Calibrates the device (microbenchmarks + timed fit steps), times a held-out set (equal-parameter families
at different depth/width, batch and context changes, >= 10x span in parameters), and reports each
estimator's mean absolute percentage error there. Writes JSON and a predicted-vs-measured figure, and can
save the measured profile as the shipped profile of this machine.

    python benchmarks/time_accuracy.py --device cpu --threads 1 --save-profile
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.devices.calibrate import calibrate
from timelaw.devices.registry import save_profile, shipped_dir
from timelaw.params import count_params
from timelaw.timing import ESTIMATORS, get_estimator

RESULTS = Path(__file__).resolve().parent / "results"


def _steps(records):
    return [(TransformerConfig(**r["config"]), TrainSetup(**r["setup"]), r["seconds"]) for r in records]


def evaluate(profile) -> dict:
    """Per-estimator predictions on the held-out steps, with MAPE and the span of the held-out set."""
    holdout = _steps(profile.measurements["holdout_steps"])
    params = [count_params(c).total for c, _, _ in holdout]
    result = {"held_out": [
        {"d_model": c.d_model, "n_layers": c.n_layers, "seq_len": c.seq_len, "micro_batch": s.micro_batch_size,
         "params": n, "measured_seconds": t} for (c, s, t), n in zip(holdout, params)],
        "param_span": max(params) / min(params), "estimators": {}}
    for method in ESTIMATORS:
        estimator = get_estimator(profile, method)
        predicted = [float(estimator.predict(c, s)) for c, s, _ in holdout]
        ape = [abs(p / t - 1) * 100 for p, (_, _, t) in zip(predicted, holdout)]
        result["estimators"][method] = {
            "mape_percent": float(np.mean(ape)), "median_ape_percent": float(np.median(ape)),
            "max_ape_percent": float(np.max(ape)), "predicted_seconds": predicted,
            "coefficients": profile.coefficients[method],
            "fit_mape_percent": profile.validation[method]["fit_mape_percent"],
        }
    e = result["estimators"]
    result["flops_over_roofline_mape"] = e["flops"]["mape_percent"] / e["roofline"]["mape_percent"]
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r["measured_seconds"] for r in result["held_out"]]
    fig, axes = plt.subplots(1, len(result["estimators"]), figsize=(12, 4), sharey=True)
    lo, hi = min(measured) / 2, max(measured) * 2
    for ax, (method, e) in zip(axes, result["estimators"].items()):
        ax.loglog(measured, e["predicted_seconds"], "o")
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(title=f"{method}: MAPE {e['mape_percent']:.1f}%", xlabel="measured s/step", xlim=(lo, hi),
               ylim=(lo, hi))
    axes[0].set_ylabel("predicted s/step")
    fig.suptitle(f"held-out reference steps on {result['profile']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-profile", action="store_true",
                        help="also write the measured profile into the shipped profiles (timelaw/data/profiles)")
    args = parser.parse_args(argv)

    profile = calibrate(device=args.device, quick=args.quick, seed=args.seed, threads=args.threads, save=False)
    result = {"profile": profile.name, "device": profile.provenance.get("device", {}), "quick": args.quick,
              "threads": args.threads, "seed": args.seed, **evaluate(profile)}
    RESULTS.mkdir(exist_ok=True)
    stem = f"time_accuracy_{args.device.split(':')[0]}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1))
    plot(result, RESULTS / f"{stem}.png")
    if args.save_profile:
        print("profile saved to", save_profile(profile, shipped_dir() / f"{profile.name}.json"))
    for method, e in result["estimators"].items():
        print(f"{method:9s} held-out MAPE {e['mape_percent']:6.1f}%  median {e['median_ape_percent']:5.1f}%")
    print(f"flops / roofline MAPE ratio: {result['flops_over_roofline_mape']:.2f}; "
          f"held-out span {result['param_span']:.1f}x in parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
