"""Selective activation recomputation (activation_checkpointing="selective", Korthikanti et al. 2022): only
the attention core runs again in the backward; its softmax output is not kept."""
import pytest

import timelaw
from timelaw import ShapeBatch, TrainSetup, TransformerConfig
from timelaw.memory import _saved_per_layer

try:
    import torch
    from torch.utils import flop_counter

    from timelaw.reference import build_model, make_optimizer, random_batches, train_step
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


def _setup(attention="math", checkpointing="selective", **kw) -> TrainSetup:
    return TrainSetup(micro_batch_size=2, global_batch_size=4, attention=attention,
                      activation_checkpointing=checkpointing, precision="fp32", **kw)


@needs_torch
@pytest.mark.parametrize("positions, kv_heads, mlp", [("learned", 4, "gelu"), ("rotary", 2, "swiglu")])
@pytest.mark.parametrize("attention", ["math", "flash"])
def test_recomputed_flops_match_torch(positions, kv_heads, mlp, attention):
    from tests.test_ledger import _register_cpu_sdpa_flops

    _register_cpu_sdpa_flops()
    cfg = TransformerConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=kv_heads, vocab_size=97, seq_len=24,
                            positions=positions, mlp=mlp)
    setup = _setup(attention)
    torch.manual_seed(0)
    model = build_model(cfg, setup)
    optimizer = make_optimizer(model, setup)
    with flop_counter.FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, random_batches(cfg, setup, "cpu"), setup)
    step = timelaw.ledger(cfg, setup)
    assert counter.get_total_flops() == step.total("flops", cls="matmul") + step.total("flops", cls="attention")


def test_only_the_unfused_core_is_recomputed():
    cfg = TransformerConfig(d_model=64, n_layers=2, n_heads=4, seq_len=24)
    recomputed = [op for op in timelaw.ledger(cfg, _setup()).ops if op.phase == "recompute"]
    # the scores product and the scale / mask / softmax, once per layer and micro-batch (2 x 2)
    assert [(op.name, float(op.count)) for op in recomputed] == [("attn.scores", 4.0), ("attn.softmax", 4.0)]
    # scores: 2 x batch 2 x heads 4 x 24 x 24 x head_dim 16 flops
    assert float(recomputed[0].flops) == 2 * 2 * 4 * 24 * 24 * 16
    assert not [op for op in timelaw.ledger(cfg, _setup("flash")).ops if op.phase == "recompute"]


def test_selective_keeps_everything_but_the_softmax_output():
    cfg = TransformerConfig(d_model=256, n_layers=8, n_heads=4, seq_len=512)
    setup = TrainSetup(micro_batch_size=2, global_batch_size=8, attention="math", precision="bf16",
                       activation_checkpointing="selective", pipeline_parallel=2)
    memory = timelaw.ledger(cfg, setup).memory
    # softmax output per block: batch 2 x heads 4 x 512 x 512 x 2 bytes = 4 MiB; 2 micro-batches in flight
    # on the first of 2 stages x 4 layers keep all else; one block's scores live again while recomputed
    scores = 2 * 4 * 512 * 512 * 2
    assert scores == 4 * 2 ** 20
    assert memory.activation_bytes == memory.activation_bytes_selective_checkpointing
    assert memory.activation_bytes_no_checkpointing - memory.activation_bytes == 2 * 4 * scores - scores
    per_layer = float(_saved_per_layer(ShapeBatch.from_config(cfg, setup), setup))
    assert per_layer > scores  # q, k, v, the norms' and MLP's tensors stay
    assert memory.activation_bytes_full_checkpointing < memory.activation_bytes < memory.activation_bytes_no_checkpointing
    flash = TrainSetup(**{**setup.model_dump(), "attention": "flash"})
    flash_memory = timelaw.ledger(cfg, flash).memory
    assert flash_memory.activation_bytes == flash_memory.activation_bytes_no_checkpointing


def test_selective_costs_less_time_than_full_and_more_than_none():
    cfg = TransformerConfig(d_model=512, n_layers=4, n_heads=8, seq_len=1024)
    times = {c: timelaw.predict_step_time(cfg, TrainSetup(micro_batch_size=4, attention="math",
                                                          activation_checkpointing=c), "a100-sxm-80gb")
             for c in ("none", "selective", "full")}
    assert times["none"] < times["selective"] < times["full"]
