"""The vTrain A100 set: 1,440 measured Megatron-DeepSpeed iterations on 2-8 A100s of one node, read as
timelaw measurements, with the nccl-tests all-reduce tables measured beside them.

vTrain (Bang et al., MICRO 2024) trained GPT models with tensor, pipeline and data parallelism and logged
each iteration's time; its own profiling-based simulator reports 8.37% mean absolute percentage error on
this set. The files live in shared/reference/ (see tests/data/vtrain/README.md); nothing here downloads.
`evaluate` fits each estimator on a random part of the rows and scores it on the others: what
benchmarks/vtrain_accuracy.py reports and tests/test_parallel.py checks.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.devices import AllReduceTable, DeviceProfile, load_profile
from timelaw.timing import ESTIMATORS
from timelaw.timing.base import grouped_shapes

__all__ = ["load_measurements", "load_allreduce_table", "a100_profile", "gpt_config", "megatron_setup", "split",
           "predict_seconds", "evaluate", "REFERENCE_CSV", "ALLREDUCE_DIR", "VTRAIN_MAPE_PERCENT", "SOURCE"]

REFERENCE_CSV = "vtrain_a100_single_node.csv"
ALLREDUCE_DIR = "vtrain_a100_allreduce"
VTRAIN_MAPE_PERCENT = 8.37  # reported by vTrain's authors for their simulator on this set
SOURCE = ("vTrain (Bang et al., MICRO 2024), github.com/VIA-Research/vTrain: data/ground_truth_single.csv "
          "and trace/a100/AR_GPU{2,4,8}_1M_1024M_LUT (MIT-style license, LICENSE.vtrain)")


def gpt_config(hidden: int, heads: int, layers: int, seq_len: int) -> TransformerConfig:
    """A GPT-2-style model as Megatron builds it: GPT-2's 50257-token vocabulary, learned positions, GELU,
    LayerNorm and linear layers with biases, tied input and output embeddings."""
    return TransformerConfig(d_model=hidden, n_heads=heads, n_layers=layers, seq_len=seq_len, vocab_size=50257,
                             positions="learned", mlp="gelu", norm="layernorm", bias=True, tied_embeddings=True)


def megatron_setup(row: dict) -> TrainSetup:
    """fp16 mixed precision with Megatron's 16-bit weights (fp32 master copies in the optimizer), full
    activation recomputation, unfused (non-flash) attention, Adam; Megatron's global batch is micro batch x
    data parallel x accumulation steps."""
    return TrainSetup(
        micro_batch_size=int(row["micro batch"]), global_batch_size=int(row["global batch"]), precision="fp16",
        weights_in_16_bits=True, optimizer="adamw", activation_checkpointing="full", attention="math",
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
    predicted = np.empty(len(measurements))
    for setup, rows, shapes in grouped_shapes(measurements):
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
