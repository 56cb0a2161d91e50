"""Megatron's interleaved 1F1B schedule (TrainSetup.pipeline_interleave): bubble, sends, memory, validation.

Expected values by hand from Narayanan et al. 2021 (the bubble of p - 1 micro-batch times shrinks v-fold
with v model chunks per stage, and each micro-batch crosses v chunk boundaries per stage) and Korthikanti et
al. 2022 (the first stage holds 1 + (p - 1) / (p v) times the activations of plain 1F1B).
"""
import numpy as np
import pytest
from pydantic import ValidationError

import timelaw
from timelaw import TrainSetup, TransformerConfig
from timelaw.config import check_compatible
from timelaw.devices import load_profile
from timelaw.timing import RooflineEstimator
from timelaw.timing.parallel import critical_path_factor, pipeline_factor

CFG = TransformerConfig(d_model=512, n_layers=24, n_heads=8, seq_len=256)


def setup(v: int, micro_batches: int = 8, pp: int = 4) -> TrainSetup:
    return TrainSetup(micro_batch_size=2, global_batch_size=2 * micro_batches, pipeline_parallel=pp,
                      pipeline_interleave=v)


def test_the_bubble_shrinks_by_the_interleave():
    assert float(pipeline_factor(4, 8)) == 11 / 8                        # (m + p - 1) / m
    assert float(pipeline_factor(4, 8, interleave=2)) == 9.5 / 8         # (8 + 3 / 2) / 8
    assert float(pipeline_factor(4, 8, interleave=3)) == pytest.approx(9 / 8)  # (8 + 3 / 3) / 8
    block = next(op for op in timelaw.ledger(CFG, setup(2)).ops if op.name == "mlp.fc")
    embedding = next(op for op in timelaw.ledger(CFG, setup(2)).ops if op.name == "embed.tokens")
    assert float(critical_path_factor(block, 4, 8, 2)) == 9.5 / 8
    assert float(critical_path_factor(embedding, 4, 8, 2)) == 1 / 8     # still once per step, on the fill


def test_each_stage_sends_once_per_chunk_and_micro_batch_each_way():
    # one exchange per micro-batch and chunk each way: the send rides with the opposite receive (full duplex)
    for v in (1, 2, 3):
        sends = [op for op in timelaw.ledger(CFG, setup(v)).ops if op.name == "pipeline.p2p"]
        assert [(op.phase, float(op.count)) for op in sends] == [("forward", 8 * v), ("backward", 8 * v)]
        # micro x seq x d_model x 4 bytes: under autocast the residual stream between blocks is fp32
        assert all(float(op.message_bytes) == 2 * 256 * 512 * 4 for op in sends)


def test_tensor_parallel_ranks_send_a_slice_and_gather_it_inside_the_node():
    # Megatron's scatter/gather of pipeline tensors: each of the tp ranks sends 1 / tp of the activation
    # and the receiving group all-gathers it; under sequence parallelism it is split already
    split = TrainSetup(micro_batch_size=2, global_batch_size=16, pipeline_parallel=4, tensor_parallel=4)
    ops = timelaw.ledger(CFG, split).ops
    sends = [op for op in ops if op.name == "pipeline.p2p"]
    gathers = [op for op in ops if op.name == "pipeline.tp_all_gather"]
    assert all(float(op.message_bytes) == 2 * 256 * 512 * 4 / 4 for op in sends)
    assert [(op.phase, op.collective, op.group_size, float(op.message_bytes), float(op.count)) for op in gathers] == [
        ("forward", "all_gather", 4, 2 * 256 * 512 * 4, 8.0), ("backward", "all_gather", 4, 2 * 256 * 512 * 4, 8.0)]
    sp = split.model_copy(update={"sequence_parallel": True})
    ops = timelaw.ledger(CFG, sp).ops
    assert not any(op.name == "pipeline.tp_all_gather" for op in ops)
    assert all(float(op.message_bytes) == 2 * 256 * 512 * 4 / 4 for op in ops if op.name == "pipeline.p2p")
    # with 16-bit weights (Megatron) the stream, and so each send, is 16-bit
    megatron = split.model_copy(update={"weights_in_16_bits": True})
    assert all(float(op.message_bytes) == 2 * 256 * 512 * 2 / 4
               for op in timelaw.ledger(CFG, megatron).ops if op.name == "pipeline.p2p")


def test_the_roofline_prices_the_blocks_with_the_smaller_bubble():
    profile = load_profile("a100-sxm-80gb")
    model = RooflineEstimator(profile, profile.coefficients["roofline"])
    plain = {op.name + op.phase: (s, f) for op, s, f in model.op_times(CFG, setup(1))}
    interleaved = {op.name + op.phase: (s, f) for op, s, f in model.op_times(CFG, setup(2))}
    seconds, factor = interleaved["mlp.fcforward"]
    assert float(factor) == 9.5 / 8
    assert float(seconds) == pytest.approx(float(plain["mlp.fcforward"][0]) * 9.5 / 11, rel=1e-12)
    assert float(interleaved["headforward"][0]) == float(plain["headforward"][0])  # the last stage's own work
    assert timelaw.predict_step_time(CFG, setup(2), profile) < timelaw.predict_step_time(CFG, setup(1), profile)


def test_the_first_stage_holds_more_micro_batches_in_flight():
    memory = {v: timelaw.ledger(CFG, setup(v)).memory.activation_bytes_no_checkpointing for v in (1, 2, 3)}
    # in flight: 4 (plain), 4 + 3/2 = 5.5 (v = 2), 4 + 3/3 = 5 (v = 3), each in micro-batches of layers / p
    assert (memory[2] - memory[1]) / (memory[3] - memory[1]) == pytest.approx(1.5 / 1.0, rel=1e-12)
    few = {v: timelaw.ledger(CFG, setup(v, micro_batches=2)).memory.activation_bytes for v in (1, 2)}
    assert few[1] == few[2]  # two micro-batches: both are in flight either way


def test_interleaving_is_refused_where_it_cannot_apply():
    with pytest.raises(ValidationError) as error:
        TrainSetup(pipeline_interleave=2)
    assert error.value.errors()[0]["loc"] == ("pipeline_interleave",)
    with pytest.raises(ValidationError) as error:  # 20 layers do not split into 4 stages x 2 chunks
        check_compatible(TransformerConfig(d_model=512, n_layers=20, n_heads=8), setup(2))
    assert error.value.errors()[0]["loc"] == ("pipeline_interleave",)
    with pytest.raises(ValidationError):
        TrainSetup(pipeline_parallel=2, pipeline_interleave=0)


def test_a_plain_setup_dumps_as_before_the_field_existed():
    assert "pipeline_interleave" not in TrainSetup(pipeline_parallel=4).model_dump()
    dumped = setup(2).model_dump()
    assert dumped["pipeline_interleave"] == 2 and TrainSetup(**dumped) == setup(2)
    assert np.isfinite(timelaw.predict_step_time(CFG, setup(2), "dgx-a100-80gb"))
