"""Sequence parallelism (TrainSetup.sequence_parallel, Korthikanti et al. 2022): the tensor-parallel
all-reduces become reduce-scatters and all-gathers, the norms and residuals work on 1 / tp of the tokens.

Expected counts by hand: per block, forward g (all-gather) before each of the 2 column-parallel groups and
g-bar (reduce-scatter) after each of the 2 row-parallel ones; backward, each one's mirror plus a second
all-gather of the kept split input: 4 + 6 halves of an all-reduce against 4 whole all-reduces without it.
"""
import pytest
from pydantic import ValidationError

import timelaw
from timelaw import TrainSetup, TransformerConfig
from timelaw.config import check_compatible
from timelaw.devices import load_profile
from timelaw.timing.parallel import collective_seconds

CFG = TransformerConfig(d_model=256, n_layers=2, n_heads=4, seq_len=128)


def layout(sp: bool, tp: int = 4) -> TrainSetup:
    return TrainSetup(micro_batch_size=2, tensor_parallel=tp, sequence_parallel=sp)


def ops(sp: bool, tp: int = 4) -> dict:
    return {op.name: op for op in timelaw.ledger(CFG, layout(sp, tp)).ops}


def test_the_block_collectives_become_scatters_and_gathers():
    block = [(n, op.collective, op.phase, float(op.count)) for n, op in ops(True).items()
             if op.cls == "communication" and n.startswith(("attn.", "mlp."))]
    assert sorted(block) == sorted([
        ("attn.sp_all_gather", "all_gather", "forward", 2.0), ("mlp.sp_all_gather", "all_gather", "forward", 2.0),
        ("attn.sp_reduce_scatter", "reduce_scatter", "forward", 2.0),
        ("mlp.sp_reduce_scatter", "reduce_scatter", "forward", 2.0),
        ("attn.sp_all_gather.regather", "all_gather", "backward", 2.0),
        ("mlp.sp_all_gather.regather", "all_gather", "backward", 2.0),
        ("attn.sp_all_gather.grad", "reduce_scatter", "backward", 2.0),
        ("mlp.sp_all_gather.grad", "reduce_scatter", "backward", 2.0),
        ("attn.sp_reduce_scatter.grad", "all_gather", "backward", 2.0),
        ("mlp.sp_reduce_scatter.grad", "all_gather", "backward", 2.0)])
    message = 2 * 128 * 256 * 2  # micro batch x seq x d_model x 2 bytes (bf16), the whole activation
    assert {float(op.message_bytes) for n, op in ops(True).items() if op.cls == "communication"
            and n.startswith(("attn.", "mlp."))} == {message}


def test_the_blocks_send_five_all_reduces_worth_instead_of_four():
    profile = load_profile("a100-sxm-80gb")
    message = 2 * 128 * 256 * 2
    ring = 2 * 3 / 4 * message / 300e9 + 6 * 10e-6  # one all-reduce over 4 at 300 GB/s, 10 us
    totals = {}
    for sp in (False, True):
        totals[sp] = sum(float(op.count * collective_seconds(op, profile)) for n, op in ops(sp).items()
                         if op.cls == "communication" and n.startswith(("attn.", "mlp.")))
    layers_x_micro = 2
    assert totals[False] == pytest.approx(4 * ring * layers_x_micro, rel=1e-12)
    assert totals[True] == pytest.approx(5 * ring * layers_x_micro, rel=1e-12)


def test_norms_and_residuals_work_on_a_quarter_of_the_tokens():
    plain, split = ops(False), ops(True)
    assert float(split["attn.residual"].bytes_read) == float(plain["attn.residual"].bytes_read) / 4
    assert float(split["mlp.norm"].flops) == float(plain["mlp.norm"].flops) / 4
    assert float(split["attn.qkv"].flops) == float(plain["attn.qkv"].flops)  # the products see every token


def test_split_activations():
    memory = {sp: timelaw.ledger(CFG, layout(sp)).memory.activation_bytes_no_checkpointing for sp in (False, True)}
    # per block: the two norms' inputs and outputs, 4 x 256 tokens x 256 x 2 bytes = 524288, their fp32
    # mean and rstd, 2 x 2 x 4 x 256 = 4096, and autocast's fp32 residual (the norms' inputs are 4 bytes,
    # not 2), 2 x 256 x 256 x 2 = 262144: 790528; sequence parallelism keeps a quarter: 3/4 x 790528 saved
    # per block, 2 blocks, one micro-batch in flight
    assert memory[False] - memory[True] == pytest.approx(2 * 0.75 * 790528, rel=1e-12)


def test_without_tensor_parallelism_it_changes_nothing_and_bad_lengths_are_refused():
    one = timelaw.ledger(CFG, layout(True, tp=1))
    assert one.totals == timelaw.ledger(CFG, layout(False, tp=1)).totals
    with pytest.raises(ValidationError) as error:
        check_compatible(TransformerConfig(d_model=256, n_layers=2, n_heads=4, seq_len=130), layout(True))
    assert error.value.errors()[0]["loc"] == ("sequence_parallel",)
    assert "sequence_parallel" not in TrainSetup(tensor_parallel=4).model_dump()
    assert TrainSetup(**layout(True).model_dump()) == layout(True)


def test_on_a_system_a_gather_is_half_an_all_reduce_on_its_tier():
    from timelaw.timing.network import collective_seconds as tiered_seconds

    cfg = TransformerConfig(d_model=512, n_layers=2, n_heads=8, seq_len=128)
    setup = TrainSetup(micro_batch_size=2, tensor_parallel=8, sequence_parallel=True)
    gather = next(op for op in timelaw.ledger(cfg, setup).ops if op.name == "attn.sp_all_gather")
    m = 2 * 128 * 512 * 2
    # 8 GPUs of one dgx-a100-80gb node: (8 - 1) / 8 x M / 240 GB/s + 7 x 10 us
    expected = 7 / 8 * m / 240e9 + 7 * 10e-6
    assert float(tiered_seconds(gather, timelaw.load_system("dgx-a100-80gb"), setup)) == pytest.approx(expected,
                                                                                                     rel=1e-12)
