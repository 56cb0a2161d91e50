"""ZeRO / FSDP (TrainSetup.zero_stage): what each stage shards, the collectives it adds, their prices.

Expected counts and bytes by hand from the ZeRO paper's stages (Rajbhandari et al. 2020): 1 shards the
optimizer state, 2 also the gradients, 3 also the weights; a ring reduce-scatter or all-gather moves
(g - 1) / g of the message in g - 1 steps, half of a ring all-reduce.
"""
import pytest
from pydantic import ValidationError

import timelaw
from timelaw import TrainSetup, TransformerConfig
from timelaw.devices import load_profile
from timelaw.params import layer_params, n_param_tensors
from timelaw.shapes import ShapeBatch
from timelaw.timing import RooflineEstimator
from timelaw.timing.network import collective_seconds as tiered_seconds
from timelaw.timing.parallel import collective_seconds

CFG = TransformerConfig(d_model=256, n_layers=4, n_heads=4, seq_len=128)
P = timelaw.count_params(CFG).total


def setup(stage: int, dp: int = 4, micro_batches: int = 2) -> TrainSetup:
    return TrainSetup(micro_batch_size=2, global_batch_size=2 * dp * micro_batches, data_parallel=dp,
                      zero_stage=stage)


def comms(stage: int, **kw):
    return [(op.name, op.collective, op.phase, float(op.count), float(op.message_bytes))
            for op in timelaw.ledger(CFG, setup(stage, **kw)).ops if op.cls == "communication"]


def test_each_stage_adds_its_collectives():
    m = 4 * P  # fp32 gradients or weights
    assert comms(0) == [("grads.dp_all_reduce", "all_reduce", "communication", 1.0, m)]
    assert comms(1) == [("grads.dp_reduce_scatter", "reduce_scatter", "communication", 1.0, m),
                        ("params.dp_all_gather", "all_gather", "communication", 1.0, m)]
    assert comms(2) == [("grads.dp_reduce_scatter", "reduce_scatter", "backward", 2.0, m),  # per micro-batch
                        ("params.dp_all_gather", "all_gather", "communication", 1.0, m)]
    assert comms(3) == [("params.dp_all_gather", "all_gather", "forward", 2.0, m),
                        ("params.dp_all_gather.bwd", "all_gather", "backward", 2.0, m),
                        ("grads.dp_reduce_scatter", "reduce_scatter", "backward", 2.0, m)]
    assert comms(3, dp=1) == []  # nothing to shard over


def test_sharded_updates_and_memory():
    ops = {s: {op.name: op for op in timelaw.ledger(CFG, setup(s)).ops} for s in (0, 1, 2, 3)}
    assert float(ops[0]["optimizer.adamw"].flops) == 16 * P
    assert float(ops[1]["optimizer.adamw"].flops) == 16 * P / 4
    assert float(ops[1]["grads.accumulate"].flops) == P and float(ops[2]["grads.accumulate"].flops) == P / 4
    tensors = float(n_param_tensors(ShapeBatch.from_config(CFG, setup(0))))
    memory = {s: timelaw.ledger(CFG, setup(s)).memory for s in (0, 1, 2, 3)}
    adamw = 2 * 4 * P + 4 * tensors  # two fp32 moments, a step counter per tensor
    assert [float(memory[s].optimizer_bytes) for s in (0, 1, 2, 3)] == [adamw, adamw / 4, adamw / 4, adamw / 4]
    assert [float(memory[s].gradient_bytes) for s in (0, 1, 2, 3)] == [4 * P, 4 * P, P, P]
    # stage 3 keeps a quarter of the fp32 weights, plus two whole blocks: the one computing, the one prefetched
    block = float(layer_params(ShapeBatch.from_config(CFG, setup(0))))
    assert [float(memory[s].weights_bytes) for s in (0, 1, 2, 3)] == [4 * P, 4 * P, 4 * P, P + 2 * 4 * block]


def test_a_reduce_scatter_is_half_a_ring_all_reduce():
    profile = load_profile("a100-sxm-80gb")  # 300 GB/s, 10 us, no table
    scatter = next(op for op in timelaw.ledger(CFG, setup(1)).ops if op.name == "grads.dp_reduce_scatter")
    assert float(collective_seconds(scatter, profile)) == pytest.approx(3 / 4 * 4 * P / 300e9 + 3 * 10e-6,
                                                                        rel=1e-12)
    # stage 1 moves what stage 0 moves: its data-parallel time equals the all-reduce's
    model = RooflineEstimator(profile, profile.coefficients["roofline"])
    parts = {s: model.breakdown(CFG, setup(s)) for s in (0, 1, 2, 3)}
    dp = {s: parts[s]["data_parallel"] for s in parts}
    assert dp[1] == pytest.approx(dp[0], rel=1e-12)
    # stage 2: a scatter per micro-batch (2) and one gather, 3 halves; stage 3: 2 + 2 gathers and 2 scatters
    assert dp[2] == pytest.approx(1.5 * dp[0], rel=1e-12) and dp[3] == pytest.approx(3 * dp[0], rel=1e-12)
    # the sharded update reads and writes a quarter of the state
    assert parts[1]["optimizer"] == pytest.approx(parts[0]["optimizer"] / 4, rel=1e-12)


def test_on_two_nodes_each_tier_is_halved():
    system = timelaw.load_system("dgx-a100-80gb")
    layout = setup(3, dp=16)
    gather = next(op for op in timelaw.ledger(CFG, layout).ops if op.name == "params.dp_all_gather")
    m = 4 * P
    # half of NCCL's ring through the 16 ranks, bounded by each node's 8 x 22.5 GB/s of network, 30 steps
    expected = 0.5 * (2 * 15 / 16 * m / (8 * 22.5e9) + 30 * 10e-6)
    assert float(tiered_seconds(gather, system, layout)) == pytest.approx(expected, rel=1e-12)


def test_zero_stage_is_checked_and_left_out_of_default_dumps():
    for bad in (-1, 4):
        with pytest.raises(ValidationError) as error:
            TrainSetup(zero_stage=bad)
        assert error.value.errors()[0]["loc"] == ("zero_stage",)
    assert "zero_stage" not in TrainSetup(data_parallel=4).model_dump()
    assert TrainSetup(**setup(3).model_dump()) == setup(3)
