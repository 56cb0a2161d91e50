"""Multi-device step time: collectives, the pipeline's critical path, the ledger's communication ops, the
estimators' fits, and accuracy on measured Megatron iterations (the vTrain A100 set)."""
import itertools
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.datasets import vtrain
from timelaw.devices import AllReduceTable, load_profile
from timelaw.ledger import Op, ledger
from timelaw.timing import ESTIMATORS
from timelaw.timing.parallel import collective_seconds, critical_path_factor, pipeline_factor
from timelaw.timing.roofline import HOST_SECONDS_GRID

VTRAIN_DATA = Path(__file__).resolve().parent / "data" / "vtrain"
A100 = load_profile("a100-sxm-80gb")


def link_profile(bandwidth=100e9, latency=10e-6, allreduce=None):
    """The A100 spec sheet with a round link bandwidth and latency, so that expected times are easy sums."""
    return A100.model_copy(update={"interconnect_bandwidth": bandwidth, "interconnect_latency_seconds": latency,
                                   "allreduce": allreduce})


def collective(kind, message_bytes, group_size):
    return Op("test", "communication", "forward", flops=0.0, bytes_read=0.0, bytes_written=0.0, kernels=1.0,
              message_bytes=message_bytes, collective=kind, group_size=group_size, axis="data")


# --- collectives -------------------------------------------------------------------------------------------

def test_ring_all_reduce_without_a_table():
    # 1 GB over 4 ranks at 100 GB/s: 2 x 3/4 x 1e9 / 1e11 = 15 ms, plus 2 x 3 steps x 10 us of latency.
    seconds = collective_seconds(collective("all_reduce", 1e9, 4), link_profile())
    assert seconds == pytest.approx(0.015 + 60e-6, rel=1e-12)
    # two ranks: 2 x 1/2 x 1e9 / 1e11 = 10 ms, plus 2 x 1 x 10 us
    assert collective_seconds(collective("all_reduce", 1e9, 2), link_profile()) == pytest.approx(0.01002)


def test_point_to_point_is_bytes_over_bandwidth_plus_latency():
    assert collective_seconds(collective("p2p", 1e9, 2), link_profile()) == pytest.approx(0.01 + 10e-6)


def test_all_reduce_table_interpolates_in_log_log_space():
    table = AllReduceTable(by_group_size={4: ([1e6, 1e8], [1e-4, 1e-3])})
    profile = link_profile(allreduce=table)
    # 1e7 bytes is halfway between the two points in log(bytes), so its time is their geometric mean.
    assert collective_seconds(collective("all_reduce", 1e7, 4), profile) == pytest.approx(10 ** -3.5, rel=1e-12)
    # beyond the largest message: linear in bytes from the last point (twice the bytes, twice the time)
    assert collective_seconds(collective("all_reduce", 2e8, 4), profile) == pytest.approx(2e-3, rel=1e-12)
    # below the smallest: the smallest message's time (a latency floor)
    assert collective_seconds(collective("all_reduce", 1e3, 4), profile) == pytest.approx(1e-4, rel=1e-12)
    # a group size the table does not have falls back to the ring model
    assert collective_seconds(collective("all_reduce", 1e9, 2), profile) == pytest.approx(0.01002)


def test_vtrain_all_reduce_table_reads_the_in_place_times():
    table = vtrain.load_allreduce_table(_vtrain_csv().parent / vtrain.ALLREDUCE_DIR)
    assert sorted(table.by_group_size) == [2, 4, 8]
    # first row of allreduce_2gpu.csv: 1048576 bytes, in-place 45100 ns (out-of-place 44210 ns)
    assert float(table.seconds(2, 1048576)) == pytest.approx(45.1e-6, rel=1e-12)
    # last row of allreduce_8gpu.csv: 1 GiB in 8196400 ns in place
    assert float(table.seconds(8, 2 ** 30)) == pytest.approx(8.1964e-3, rel=1e-12)


# --- the pipeline ------------------------------------------------------------------------------------------

def test_pipeline_bubble_factor():
    assert float(pipeline_factor(4, 8)) == pytest.approx(11 / 8)  # (m + p - 1) / m
    assert float(pipeline_factor(2, 1)) == pytest.approx(2.0)
    assert np.all(pipeline_factor(1, np.array([1, 4, 16])) == 1.0)


def test_critical_path_factor_follows_where_each_op_runs():
    layer = Op("block", "matmul", "forward", flops=1.0, bytes_read=1.0, bytes_written=1.0, kernels=1.0)
    head, embedding = replace(layer, stage="last"), replace(layer, stage="first")
    update = replace(layer, phase="optimizer")
    # 4 stages, 8 micro-batches: blocks wait for fill and drain, the last stage's head is on the path for
    # every micro-batch, the first stage's embedding only once, the weight update once
    assert float(critical_path_factor(layer, 4, 8)) == pytest.approx(11 / 8)
    assert float(critical_path_factor(replace(layer, phase="recompute"), 4, 8)) == pytest.approx(11 / 8)
    assert float(critical_path_factor(head, 4, 8)) == 1.0
    assert float(critical_path_factor(embedding, 4, 8)) == pytest.approx(1 / 8)
    assert float(critical_path_factor(update, 4, 8)) == 1.0
    # one stage is both first and last: everything once per micro-batch
    assert [float(critical_path_factor(op, 1, 8)) for op in (layer, head, embedding)] == [1.0, 1.0, 1.0]


# --- communication in the ledger ---------------------------------------------------------------------------

CFG = TransformerConfig(d_model=64, n_layers=4, n_heads=4, vocab_size=96, seq_len=16)
# 2 micro-batches of 2 sequences per data-parallel rank: 8 = 2 (micro) x 2 (dp) x 2 (accumulation)
PARALLEL = TrainSetup(micro_batch_size=2, global_batch_size=8, precision="bf16",
                      tensor_parallel=2, pipeline_parallel=2, data_parallel=2)


def _comm(setup, cfg=CFG):
    return {op.name: op for op in ledger(cfg, setup).ops if op.cls == "communication"}


def test_a_single_device_step_has_no_communication():
    assert _comm(TrainSetup(micro_batch_size=2, global_batch_size=8)) == {}


def test_tensor_parallel_all_reduces_per_layer_and_around_the_head():
    ops = _comm(PARALLEL)
    activation = 2 * 16 * 64 * 2  # micro batch x seq x d_model x 2 bytes (bf16)
    # per step on one stage: 4 layers / 2 stages x 2 micro-batches = 4 block passes
    for name, phase in [("attn.tp_all_reduce", "forward"), ("mlp.tp_all_reduce", "forward"),
                        ("attn.tp_all_reduce.grad", "backward"), ("mlp.tp_all_reduce.grad", "backward")]:
        op = ops[name]
        assert (op.axis, op.collective, op.group_size, op.phase) == ("tensor", "all_reduce", 2, phase)
        assert float(op.message_bytes) == activation and float(op.count) == 4
        assert float(op.bytes) == 0  # link traffic, not memory traffic
    # the vocabulary-parallel embedding sums its shards once per micro-batch (backward: identity) ...
    assert float(ops["embed.tp_all_reduce"].count) == 2 and "embed.tp_all_reduce.grad" not in ops
    assert ops["embed.tp_all_reduce"].stage == "first"
    # ... the head's input gradient is summed in the backward, and the vocabulary-parallel loss reduces three
    # fp32 numbers per token (max logit, target logit, sum of exps)
    head = ops["head.tp_all_reduce"]
    assert float(head.message_bytes) == activation and (head.phase, head.stage) == ("backward", "last")
    loss = ops["loss.tp_all_reduce"]
    assert float(loss.message_bytes) == 2 * 16 * 4 and float(loss.count) == 3 * 2


def test_pipeline_sends_activations_and_syncs_the_tied_embedding():
    ops = _comm(PARALLEL)
    p2p = [op for op in ledger(CFG, PARALLEL).ops if op.name == "pipeline.p2p"]
    # one exchange per micro-batch each way (each send rides with the opposite receive on a full-duplex
    # link), each tensor rank sending its half of the activation (Megatron's scatter/gather) ...
    assert [(op.phase, float(op.count)) for op in p2p] == [("forward", 2.0), ("backward", 2.0)]
    # (the residual stream is fp32 under autocast: 4 bytes an element)
    assert all(float(op.message_bytes) == 2 * 16 * 64 * 4 / 2 and op.axis == "pipeline" for op in p2p)
    # ... and the receiving tensor group all-gathering the whole of it
    gathers = [op for op in ledger(CFG, PARALLEL).ops if op.name == "pipeline.tp_all_gather"]
    assert [(op.phase, float(op.count), float(op.message_bytes)) for op in gathers] == [
        ("forward", 2.0, 2 * 16 * 64 * 4), ("backward", 2.0, 2 * 16 * 64 * 4)]
    # the first and last stages each hold the tied embedding (its vocabulary half on this tensor rank) and
    # all-reduce its fp32 gradient once per step: 96 / 2 x 64 x 4 bytes
    tied = ops["embed.pipeline_tied_all_reduce"]
    assert (float(tied.message_bytes), tied.group_size, float(tied.count)) == (96 / 2 * 64 * 4, 2, 1.0)


def test_data_parallel_all_reduces_this_devices_fp32_gradients_once():
    dp = _comm(PARALLEL)["grads.dp_all_reduce"]
    # Parameters of one block: attention 4 x 64^2 = 16384, MLP 2 x 64 x 256 = 32768, two norms 128 -> 49280.
    # Non-embedding: 4 blocks + final norm = 197184; embeddings (96 + 16) x 64 = 7168. On one device:
    # (197184 / 2 stages + 7168) / 2 tensor ranks = 52880 parameters, 4 bytes each.
    assert float(dp.message_bytes) == 52880 * 4
    assert (dp.group_size, float(dp.count), dp.axis, dp.phase) == (2, 1.0, "data", "communication")
    single = TrainSetup(**{**PARALLEL.model_dump(), "data_parallel": 1, "global_batch_size": 4})
    assert "grads.dp_all_reduce" not in _comm(single)


def test_a_data_parallel_all_reduce_is_link_traffic_not_memory_traffic():
    """Each rank of a data-parallel step does the work of a single-device step plus a gradient all-reduce;
    the all-reduce's message is sent over links, so it adds no memory-traffic bytes and the memcopy
    estimator (bytes / HBM bandwidth) prices both steps alike."""
    one = TrainSetup(micro_batch_size=2, global_batch_size=4, precision="bf16")
    two = TrainSetup(micro_batch_size=2, global_batch_size=8, precision="bf16", data_parallel=2)
    alone, ranked = ledger(CFG, one), ledger(CFG, two)
    assert ranked.total("bytes") == alone.total("bytes")
    assert ranked.total("bytes_read") == alone.total("bytes_read")
    assert alone.total("message_bytes") == 0
    assert ranked.total("message_bytes") == float(_comm(two)["grads.dp_all_reduce"].message_bytes) > 0
    memcopy = ESTIMATORS["memcopy"](A100, {"bytes_at_bandwidth_seconds": 1.0, "constant_seconds": 0.0})
    assert float(memcopy.predict(CFG, two)) == float(memcopy.predict(CFG, one))
    # the step's memory traffic over the profile's bandwidth, nothing for the message
    assert float(memcopy.predict(CFG, two)) == pytest.approx(alone.total("bytes") / A100.memory_bandwidth)


# --- estimators ------------------------------------------------------------------------------------------

def synthetic_steps(n=48, seed=0):
    """Varied shapes and parallel layouts, small enough to be launch-bound and large enough not to be."""
    rng = np.random.default_rng(seed)
    grid = list(itertools.product((256, 512, 1024, 2048), (4, 8, 24), (256, 1024), (1, 4), (1, 4),
                                  ((1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 2, 2), (4, 1, 2))))
    steps = []
    for i in rng.choice(len(grid), size=n, replace=False):
        d, layers, seq, micro, accum, (tp, pp, dp) = grid[i]
        cfg = TransformerConfig(d_model=d, n_layers=layers, n_heads=d // 64, seq_len=seq, vocab_size=32768)
        setup = TrainSetup(micro_batch_size=micro, global_batch_size=micro * dp * accum, precision="bf16",
                           tensor_parallel=tp, pipeline_parallel=pp, data_parallel=dp)
        steps.append((cfg, setup))
    return steps


# Round coefficients for the tests that need some estimator (how its parts add up), not a fitted one.
SOME_COEFFICIENTS = {
    "flops": {"flops_at_peak_seconds": 2.5},
    "memcopy": {"bytes_at_bandwidth_seconds": 1.7, "constant_seconds": 0.01},
    "roofline": {"matmul_seconds": 0.8, "attention_seconds": 1.3, "memory_bound_seconds": 1.5,
                 "optimizer_seconds": 0.5, "tensor_parallel_seconds": 1.2, "pipeline_parallel_seconds": 3.0,
                 "data_parallel_seconds": 0.6, "kernel_launch_seconds": 0.9, "host_bound_seconds": 1.1,
                 "constant_seconds": 0.02, "host_seconds_per_kernel": float(HOST_SECONDS_GRID[20])},
}


def test_the_one_coefficient_fit_is_the_closed_form_least_relative_error():
    """With one feature x and measured seconds y, minimising sum (c x / y - 1)^2 gives
    c = sum(x / y) / sum((x / y)^2): the fit must land there, on measured vTrain iterations."""
    rows = vtrain.load_measurements(_vtrain_csv())[::40]
    fitted = ESTIMATORS["flops"](A100).fit(rows)
    ratio = np.array([float(fitted.features(cfg, setup)[0]) / seconds for cfg, setup, seconds in rows])
    assert fitted.coefficients["flops_at_peak_seconds"] == pytest.approx(
        ratio.sum() / (ratio ** 2).sum(), rel=1e-9)
    assert fitted.residuals_ == pytest.approx(fitted.coef_[0] * ratio - 1, abs=1e-12)


def test_a_fit_refuses_fewer_steps_than_coefficients():
    steps = [(cfg, setup, 1.0) for cfg, setup in synthetic_steps(n=5)]  # 7 group terms, launches, host, constant
    with pytest.raises(ValueError, match="at least 10 measurements"):
        ESTIMATORS["roofline"](A100).fit(steps)


def test_a_fit_on_one_device_keeps_the_collectives_it_never_saw_at_one():
    # single-device steps: no collective column is ever nonzero, so no coefficient of one is identified;
    # they stay at 1 (priced as modelled), not at the solver's 0, which would make them free
    truth = ESTIMATORS["roofline"](A100, SOME_COEFFICIENTS["roofline"])
    alone = [(cfg, setup) for cfg, setup in synthetic_steps(n=150) if setup.n_devices == 1]
    assert len(alone) >= 12
    fitted = ESTIMATORS["roofline"](A100).fit([(c, s, float(truth.predict(c, s))) for c, s in alone])
    for name in ("tensor_parallel_seconds", "pipeline_parallel_seconds", "data_parallel_seconds",
                 "network_seconds"):
        assert fitted.coefficients[name] == 1.0 and name in fitted.provenance_["method"]
    split = TrainSetup(micro_batch_size=4, global_batch_size=8, data_parallel=2)
    assert fitted.breakdown(TransformerConfig(d_model=512, n_layers=4, n_heads=8), split)["data_parallel"] > 0


def test_roofline_breakdown_sums_to_the_prediction_and_names_each_axis():
    truth = ESTIMATORS["roofline"](A100, SOME_COEFFICIENTS["roofline"])
    cfg = TransformerConfig(d_model=512, n_layers=8, n_heads=8, seq_len=256)
    setup = TrainSetup(micro_batch_size=1, global_batch_size=8, tensor_parallel=2, pipeline_parallel=2,
                       data_parallel=2)
    parts = truth.breakdown(cfg, setup)
    assert sum(parts.values()) == pytest.approx(float(truth.predict(cfg, setup)), rel=1e-12)
    assert {"tensor_parallel", "pipeline_parallel", "data_parallel", "host_bound"} <= set(parts)
    assert parts["host_bound"] > 0  # a small model: the host cannot queue kernels as fast as they run


def test_roofline_on_a_cpu_adds_launches_instead_of_overlapping_them():
    cpu = A100.model_copy(update={"device_type": "cpu"})
    cfg, setup = synthetic_steps(n=1)[0]
    features = ESTIMATORS["roofline"](cpu, SOME_COEFFICIENTS["roofline"]).features(cfg, setup)
    names = ESTIMATORS["roofline"].feature_names
    assert features[names.index("host_bound_seconds")] == 0 and features[names.index("kernel_launch_seconds")] > 0


# --- the vTrain A100 set -----------------------------------------------------------------------------------

def _vtrain_csv() -> Path:
    for directory in (VTRAIN_DATA, Path(os.environ.get("TIMELAW_REFERENCE_DIR", VTRAIN_DATA))):
        if (directory / "vtrain_a100_single_node.csv").is_file():
            return directory / "vtrain_a100_single_node.csv"
    pytest.skip(f"vTrain reference data not found in {VTRAIN_DATA} (copy it from shared/reference/, see "
                "tests/data/vtrain/README.md) nor in $TIMELAW_REFERENCE_DIR")


def test_vtrain_rows_map_to_megatron_configs():
    measurements = vtrain.load_measurements(_vtrain_csv())
    assert len(measurements) == 1440
    # first data row: 2 GPUs, global batch 16, micro batch 8, hidden 1024, 16 heads, 24 layers, seq 1024,
    # tp 1, dp 1, pp 2, 372.160408 ms
    cfg, setup, seconds = measurements[0]
    assert (cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.seq_len, cfg.vocab_size) == (1024, 16, 24, 1024, 50257)
    assert cfg.bias and cfg.positions == "learned" and cfg.mlp == "gelu" and cfg.norm == "layernorm"
    assert (setup.tensor_parallel, setup.pipeline_parallel, setup.data_parallel) == (1, 2, 1)
    assert (setup.micro_batch_size, setup.grad_accum_steps, setup.precision) == (8, 2, "fp16")
    assert setup.activation_checkpointing == "full" and seconds == pytest.approx(0.372160408)
    assert all(s.n_devices in (2, 4, 8) for _, s, _ in measurements)


def test_roofline_beats_the_flops_rule_on_held_out_vtrain_iterations():
    """Fit on a random 20% (seed 0), score the other 80%: vTrain's simulator reports 8.37% on this set."""
    csv = _vtrain_csv()
    profile = vtrain.a100_profile(vtrain.load_allreduce_table(csv.parent / vtrain.ALLREDUCE_DIR))
    result = vtrain.evaluate(vtrain.load_measurements(csv), profile, train_fraction=0.2, seed=0,
                             methods=("flops", "roofline"))
    assert (len(result["train"]), len(result["test"])) == (288, 1152)
    assert not set(result["train"]) & set(result["test"])
    roofline = result["estimators"]["roofline"]["mape_percent"]
    flops = result["estimators"]["flops"]["mape_percent"]
    assert roofline < 10.0, roofline
    assert flops >= 2 * roofline, (flops, roofline)


def test_memory_of_one_device_under_tensor_and_pipeline_parallelism():
    mem = ledger(CFG, PARALLEL).memory
    # fp32 weights and gradients of the 52880 parameters one device holds (counted by hand above)
    assert float(mem.weights_bytes) == float(mem.gradient_bytes) == 52880 * 4
    # AdamW: two fp32 moments per parameter and a 4-byte step counter per tensor; 27 tensors (4 blocks x (two
    # norm weights, qkv, out, fc, proj), the final norm, token and position embeddings) over 2 stages
    assert float(mem.optimizer_bytes) == 8 * 52880 + 4 * 27 / 2
    # 1F1B: the first stage keeps min(p, m) = 2 micro-batches of its 4 / 2 blocks in flight, as much as one
    # device running all 4 blocks for one micro-batch
    one_stage = TrainSetup(**{**PARALLEL.model_dump(), "pipeline_parallel": 1})
    assert float(mem.activation_bytes) == float(ledger(CFG, one_stage).memory.activation_bytes)
    # tensor parallelism splits the heads and the MLP, not the residual stream and the norms
    no_tp = TrainSetup(**{**PARALLEL.model_dump(), "tensor_parallel": 1})
    whole = float(ledger(CFG, no_tp).memory.activation_bytes)
    assert whole / 2 < float(mem.activation_bytes) < whole


def test_an_estimator_without_coefficients_says_it_is_not_fitted():
    from timelaw.errors import NotFittedError

    cfg, setup = synthetic_steps(n=1)[0]
    for method in ESTIMATORS:
        with pytest.raises(NotFittedError, match="not fitted"):
            ESTIMATORS[method](A100).predict(cfg, setup)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, RuntimeError)


def test_the_roofline_fit_chooses_its_host_cost_as_fitted_state():
    rows = vtrain.load_measurements(_vtrain_csv())[::60]
    unfitted = ESTIMATORS["roofline"](A100)
    assert unfitted.host_seconds_per_kernel_ == A100.kernel_seconds  # the launch benchmark, until fitted
    fitted = unfitted.fit(rows)
    assert fitted.host_seconds_per_kernel_ in HOST_SECONDS_GRID
    assert fitted.coefficients["host_seconds_per_kernel"] == fitted.host_seconds_per_kernel_


def test_fits_stack_the_steps_into_few_batches_with_every_number_unchanged():
    from timelaw.timing.base import grouped_shapes

    def swiglu(cfg):
        return TransformerConfig(**{**cfg.model_dump(exclude={"d_ff"}), "mlp": "swiglu"})

    steps = [(swiglu(cfg) if i % 3 == 0 else cfg, setup, 1.0) for i, (cfg, setup) in enumerate(synthetic_steps(n=24))]
    groups = grouped_shapes(steps)
    assert sorted(i for _, rows, _ in groups for i in rows) == list(range(24))
    assert len(groups) < 24  # several steps per batch
    for setup, rows, shapes in groups:
        assert all(steps[i][1] == setup and steps[i][0].mlp == shapes.mlp for i in rows)
    estimator = ESTIMATORS["roofline"](A100, SOME_COEFFICIENTS["roofline"])
    X, _ = estimator._feature_rows(steps)
    assert np.array_equal(X, np.array([estimator.features(cfg, setup) for cfg, setup, _ in steps]))


def test_no_fitted_coefficients_make_a_step_faster_than_the_peak():
    # a matmul coefficient far below the roofline would promise more flops than the device has; the
    # prediction stops at the step's flops at peak (MFU <= 100%)
    fast = dict(SOME_COEFFICIENTS["roofline"], matmul_seconds=0.01, attention_seconds=0.01,
                memory_bound_seconds=0.0, kernel_launch_seconds=0.0, host_bound_seconds=0.0, constant_seconds=0.0)
    model = ESTIMATORS["roofline"](A100, fast)
    cfg = TransformerConfig(d_model=4096, n_layers=4, n_heads=32, seq_len=2048)
    setup = TrainSetup(micro_batch_size=8, precision="bf16")
    step = ledger(cfg, setup)
    floor = float(step.total("flops")) / A100.peak("bf16")
    assert float(model.predict_features(model.features(cfg, setup))) < floor  # the raw fit would beat the peak
    assert float(model.predict(cfg, setup)) == floor
    from timelaw import predict_loss

    assert predict_loss(cfg, hours=1, setup=setup, profile=model).mfu <= 1.0
