"""Step-time accuracy on multi-GPU A100 training: the vTrain set (1,440 Megatron-DeepSpeed iterations).

Reads the measured iteration times of GPT models trained with tensor, pipeline and data parallelism on 2-8
A100s in one node (vTrain, Bang et al., MICRO 2024) and the nccl-tests all-reduce tables measured beside
them, fits each estimator on a random 20% of the rows (seed 0) and reports its error on the other 80%.
vTrain's own profiling-based simulator reports 8.37% mean absolute percentage error on this set.

    python benchmarks/vtrain_accuracy.py [REFERENCE_CSV] [--seed 0] [--train-fraction 0.2]

The CSV defaults to $TIMELAW_REFERENCE_DIR/vtrain_a100_single_node.csv, else ../shared/reference/ beside the
repository; the all-reduce tables are read from vtrain_a100_allreduce/ next to it. Writes
benchmarks/results/vtrain_accuracy.json and vtrain_accuracy.png.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from timelaw.datasets.vtrain import (
    ALLREDUCE_DIR, REFERENCE_CSV, SOURCE, VTRAIN_MAPE_PERCENT, a100_profile, evaluate, load_allreduce_table,
    load_measurements,
)
from timelaw.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"


def default_reference_csv() -> Path:
    root = os.environ.get("TIMELAW_REFERENCE_DIR")
    if root is None:
        root = Path(__file__).resolve().parents[2] / "shared" / "reference"
    return Path(root) / REFERENCE_CSV


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test, measured = result["test"], result["measured_seconds"] * 1000
    methods = list(result["estimators"])
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.2), sharex=True, sharey=True)
    lo, hi = measured.min() / 2, measured.max() * 2
    for ax, method in zip(np.atleast_1d(axes), methods):
        r = result["estimators"][method]
        ax.loglog(measured[test], np.array(r["predicted_seconds"])[test] * 1000, ".", ms=3, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_title(f"{method}: MAPE {r['mape_percent']:.1f}% (vTrain {VTRAIN_MAPE_PERCENT}%)", fontsize=9)
        ax.set_xlabel("measured iteration time (ms)")
    np.atleast_1d(axes)[0].set_ylabel("predicted (ms)")
    fig.suptitle(f"vTrain A100 set: {len(test)} held-out Megatron iterations, 2-8 GPUs (tp/pp/dp)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference_csv", nargs="?", type=Path, default=default_reference_csv())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-fraction", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    measurements = load_measurements(args.reference_csv)
    profile = a100_profile(load_allreduce_table(args.reference_csv.parent / ALLREDUCE_DIR))
    result = evaluate(measurements, profile, args.train_fraction, args.seed)

    summary = {
        "data": {"source": SOURCE, "file": args.reference_csv.name, "rows": len(measurements),
                 "gpus": "2-8 A100 (one node)", "framework": "Megatron-DeepSpeed, fp16, full recomputation"},
        "split": {"seed": args.seed, "train_fraction": args.train_fraction, "n_train": len(result["train"]),
                  "n_test": len(result["test"])},
        "profile": profile.name, "vtrain_mape_percent": VTRAIN_MAPE_PERCENT,
        "flops_over_roofline_mape": result["estimators"]["flops"]["mape_percent"]
        / result["estimators"]["roofline"]["mape_percent"],
        "provenance": provenance(method="fit on the training rows (each estimator's own NNLS fit), MAPE on the "
                                 "others", data=args.reference_csv.name, source="measured",
                                 command="python benchmarks/vtrain_accuracy.py"),
        "estimators": {m: {k: v for k, v in r.items() if k != "predicted_seconds"}
                       for m, r in result["estimators"].items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vtrain_accuracy.json").write_text(json.dumps(summary, indent=1))
    plot(result, args.out / "vtrain_accuracy.png")
    for method, r in summary["estimators"].items():
        print(f"{method:9s} held-out MAPE {r['mape_percent']:6.2f}%  median {r['median_ape_percent']:6.2f}%  "
              f"(fit {r['fit_mape_percent']:.2f}%)")
    print(f"vTrain    reported MAPE {VTRAIN_MAPE_PERCENT:6.2f}%")
    return summary


if __name__ == "__main__":
    main()
