"""TrainSetup.weights_in_16_bits: Megatron-LM's mixed precision (16-bit weights and residual stream, fp32
master weights in the optimizer) beside torch autocast's (fp32 weights cast op by op)."""
import pytest

import timelaw
from timelaw import TrainSetup, TransformerConfig
from timelaw.memory import memory_footprint
from timelaw.shapes import ShapeBatch

CFG = TransformerConfig(d_model=256, n_layers=2, n_heads=4, seq_len=128, vocab_size=1000)
P = timelaw.count_params(CFG).total


def setups(**fields):
    return TrainSetup(micro_batch_size=2, **fields), TrainSetup(micro_batch_size=2, weights_in_16_bits=True, **fields)


def test_weights_are_16_bit_and_their_fp32_masters_sit_in_the_optimizer():
    autocast, megatron = (memory_footprint(ShapeBatch.from_config(CFG, s), s) for s in setups())
    assert float(autocast.weights_bytes) == 4 * P and float(megatron.weights_bytes) == 2 * P
    assert float(megatron.gradient_bytes) == float(autocast.gradient_bytes) == 4 * P  # fp32 main gradients
    assert float(megatron.optimizer_bytes) == pytest.approx(float(autocast.optimizer_bytes) + 4 * P, rel=1e-12)
    # per parameter: 2 + 4 + (8 + 4) = 18 bytes against autocast's 4 + 4 + 8 = 16
    assert float(megatron.weights_bytes + megatron.gradient_bytes + megatron.optimizer_bytes) == pytest.approx(
        float(autocast.weights_bytes + autocast.gradient_bytes + autocast.optimizer_bytes) + 2 * P, rel=1e-12)


def test_no_autocast_copies_are_saved_or_cast():
    autocast, megatron = setups()
    a = {op.name: op for op in timelaw.ledger(CFG, autocast).ops}
    m = {op.name: op for op in timelaw.ledger(CFG, megatron).ops}
    assert "weights.cast" in a and "attn.norm.cast" in a
    assert not any(name.endswith(".cast") or name.startswith("weights.cast") for name in m)
    # the updated fp32 masters are copied to the 16-bit model once per step: read 4, write 2 bytes each
    copy = m["weights.copy_to_model"]
    assert (float(copy.bytes_read), float(copy.bytes_written)) == (4 * P, 2 * P) and copy.phase == "optimizer"
    # the residual stream is 16-bit: the residual add reads two 16-bit tensors and writes one
    tokens = 2 * 128
    assert float(m["attn.residual"].bytes_read) == tokens * 256 * 4
    assert float(a["attn.residual"].bytes_read) == tokens * 256 * 6
    # activations: the 16-bit estimate alone (Korthikanti et al. 2022), without autocast's additions
    act = {s.weights_in_16_bits: float(memory_footprint(ShapeBatch.from_config(CFG, s), s).activation_bytes)
           for s in setups()}
    assert act[True] < act[False]


def test_it_changes_nothing_in_fp32_and_is_left_out_of_default_dumps():
    plain, flagged = setups(precision="fp32")
    assert timelaw.ledger(CFG, plain).totals == timelaw.ledger(CFG, flagged).totals
    assert (memory_footprint(ShapeBatch.from_config(CFG, plain), plain).total_bytes
            == memory_footprint(ShapeBatch.from_config(CFG, flagged), flagged).total_bytes)
    assert "weights_in_16_bits" not in TrainSetup().model_dump()
    assert TrainSetup(weights_in_16_bits=True).model_dump()["weights_in_16_bits"] is True


def test_zero_gathers_16_bit_weights():
    megatron = TrainSetup(micro_batch_size=2, data_parallel=4, zero_stage=1, weights_in_16_bits=True)
    autocast = megatron.model_copy(update={"weights_in_16_bits": False})
    gather = {s.weights_in_16_bits: next(op for op in timelaw.ledger(CFG, s).ops
                                         if op.name == "params.dp_all_gather") for s in (megatron, autocast)}
    assert float(gather[True].message_bytes) == 2 * P and float(gather[False].message_bytes) == 4 * P


def test_full_checkpointing_keeps_block_inputs_in_the_streams_precision():
    autocast, megatron = setups(activation_checkpointing="full")
    keep = {s.weights_in_16_bits: memory_footprint(ShapeBatch.from_config(CFG, s), s) for s in (autocast, megatron)}
    inputs = 2 * 2 * 128 * 256  # 2 blocks x (2 sequences x 128 tokens) x d_model, one micro-batch in flight
    # the kept inputs (and the embeddings' output, the final norm's input) are fp32 under autocast, 16-bit else;
    # the one block alive again while recomputed differs by autocast's additions
    from timelaw.memory import _saved_per_layer

    block = {k: float(_saved_per_layer(ShapeBatch.from_config(CFG, s), s))
             for k, s in ((False, autocast), (True, megatron))}
    diff = float(keep[False].activation_bytes - keep[True].activation_bytes)
    assert diff == pytest.approx((inputs + 2 * 2 * 128 * 256) * 2 + block[False] - block[True], rel=1e-12)
