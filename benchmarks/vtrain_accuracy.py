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
import csv
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.devices import AllReduceTable, DeviceProfile, load_profile
from timelaw.provenance import provenance
from timelaw.shapes import ShapeBatch
from timelaw.timing import ESTIMATORS

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_CSV = "vtrain_a100_single_node.csv"
ALLREDUCE_DIR = "vtrain_a100_allreduce"
VTRAIN_MAPE_PERCENT = 8.37  # reported by vTrain's authors for their simulator on this set
SOURCE = ("vTrain (Bang et al., MICRO 2024), github.com/VIA-Research/vTrain: data/ground_truth_single.csv "
          "and trace/a100/AR_GPU{2,4,8}_1M_1024M_LUT (MIT-style license, LICENSE.vtrain)")
SHAPE_FIELDS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "vocab_size", "seq_len")
CATEGORICAL_FIELDS = ("mlp", "norm", "positions", "tied_embeddings", "bias")  # the same for every row


def default_reference_csv() -> Path:
    root = os.environ.get("TIMELAW_REFERENCE_DIR")
    if root is None:
        root = Path(__file__).resolve().parents[2] / "shared" / "reference"
    return Path(root) / REFERENCE_CSV


def gpt_config(hidden: int, heads: int, layers: int, seq_len: int) -> TransformerConfig:
    """A GPT-2-style model as Megatron builds it: GPT-2's 50257-token vocabulary, learned positions, GELU,
    LayerNorm and linear layers with biases, tied input and output embeddings."""
    return TransformerConfig(d_model=hidden, n_heads=heads, n_layers=layers, seq_len=seq_len, vocab_size=50257,
                             positions="learned", mlp="gelu", norm="layernorm", bias=True, tied_embeddings=True)


def megatron_setup(row: dict) -> TrainSetup:
    """fp16 mixed precision, full activation recomputation, unfused (non-flash) attention, Adam; Megatron's
    global batch is micro batch x data parallel x accumulation steps."""
    return TrainSetup(
        micro_batch_size=int(row["micro batch"]), global_batch_size=int(row["global batch"]), precision="fp16",
        optimizer="adamw", activation_checkpointing="full", attention="math",
        tensor_parallel=int(row["tensor parallelism"]), pipeline_parallel=int(row["pipeline parallelism"]),
        data_parallel=int(row["data parallelism"]),
    )


def load_measurements(path: Path) -> list[tuple[TransformerConfig, TrainSetup, float]]:
    """(config, setup, seconds per iteration) for every row of the vTrain CSV."""
    with open(path, newline="") as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    out = []
    for r in rows:
        setup = megatron_setup(r)
        cfg = gpt_config(int(r["hidden size"]), int(r["attention heads"]), int(r["# layers"]),
                         int(r["sequence length"]))
        out.append((cfg, setup, float(r["iteration time (ms)"]) / 1000))
    return out


def load_allreduce_table(directory: Path, group_sizes=(2, 4, 8)) -> AllReduceTable:
    """nccl-tests all_reduce_perf tables: bytes, count, type, then out-of-place and in-place (time in ns,
    bus bandwidth in GB/s). Megatron's all-reduces are in place, so the in-place times are used."""
    table = {}
    for g in group_sizes:
        with open(directory / f"allreduce_{g}gpu.csv", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            in_place_ns = len(header) - 2  # the in-place time column: the second "time(ns)"
            rows = [(float(r[0]), float(r[in_place_ns]) * 1e-9) for r in reader if r]
        rows.sort()
        table[g] = ([b for b, _ in rows], [s for _, s in rows])
    return AllReduceTable(by_group_size=table)


def a100_profile(allreduce: AllReduceTable) -> DeviceProfile:
    """The shipped A100 spec sheet with the all-reduce table measured on the vTrain machine."""
    base = load_profile("a100-sxm-80gb")
    return base.model_copy(update={"name": "a100-sxm-80gb+vtrain-allreduce", "allreduce": allreduce})


def split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(train_fraction * n))
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def predict_seconds(estimator, measurements) -> np.ndarray:
    """Predicted seconds for every row: one vectorised call per distinct TrainSetup."""
    rows_of_setup = defaultdict(list)
    for i, (_, setup, _) in enumerate(measurements):
        rows_of_setup[setup].append(i)
    predicted = np.empty(len(measurements))
    for setup, rows in rows_of_setup.items():
        cfgs = [measurements[i][0] for i in rows]
        shapes = ShapeBatch.from_arrays(
            **{f: np.array([getattr(c, f) for c in cfgs]) for f in SHAPE_FIELDS},
            micro_batch_size=setup.micro_batch_size, grad_accum_steps=setup.grad_accum_steps,
            **{f: getattr(cfgs[0], f) for f in CATEGORICAL_FIELDS})
        predicted[rows] = estimator.predict(shapes, setup)
    return predicted


def evaluate(measurements, profile: DeviceProfile, train_fraction: float = 0.2, seed: int = 0,
             methods=tuple(ESTIMATORS)) -> dict:
    """Fit each estimator on the training rows only; its errors on the held-out rows."""
    train, test = split(len(measurements), train_fraction, seed)
    measured = np.array([s for _, _, s in measurements])
    results = {}
    for method in methods:
        estimator = ESTIMATORS[method](profile).fit([measurements[i] for i in train])
        predicted = predict_seconds(estimator, measurements)
        ape = np.abs(predicted / measured - 1) * 100
        results[method] = {
            "mape_percent": float(ape[test].mean()), "median_ape_percent": float(np.median(ape[test])),
            "p90_ape_percent": float(np.percentile(ape[test], 90)), "fit_mape_percent": float(ape[train].mean()),
            "coefficients": estimator.coefficients, "predicted_seconds": predicted.tolist(),
        }
    return {"train": train, "test": test, "measured_seconds": measured, "estimators": results}


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
