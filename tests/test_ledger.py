"""The ledger against torch: parameter counts, flops (FlopCounterMode) and allocated state, exactly."""
import numpy as np
import pytest

from tests.conftest import option_grid
from timelaw.config import TrainSetup, TransformerConfig
from timelaw.ledger import ledger
from timelaw.params import count_params
from timelaw.shapes import ShapeBatch

try:  # the checks against torch skip one by one without it; the others still run
    import torch
    from torch.utils import flop_counter

    from timelaw.reference import build_model, make_optimizer, random_batches, train_step
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")

GRID = option_grid()


def _register_cpu_sdpa_flops():
    """FlopCounterMode has formulas for the GPU attention kernels but not the CPU one: reuse torch's own."""
    aten = torch.ops.aten
    registry = flop_counter.flop_registry
    if aten._scaled_dot_product_flash_attention_for_cpu in registry:
        return

    @flop_counter.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
    def _forward(query, key, value, *args, out_shape=None, **kwargs):
        return flop_counter.sdpa_flop_count(query, key, value)

    @flop_counter.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)
    def _backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


def test_grid_covers_every_option():
    assert len(GRID) >= 50
    cfgs = [p.values[0] for p in GRID]
    setups = [p.values[1] for p in GRID]
    for field in ("positions", "tied_embeddings"):
        assert len({getattr(c, field) for c in cfgs}) == 2, field
    for field in ("mlp", "norm", "bias"):
        assert len({getattr(c, field) for c in cfgs}) == 3, field
    assert {c.n_kv_heads < c.n_heads for c in cfgs} == {True, False}
    for field in ("attention", "activation_checkpointing", "precision", "optimizer"):
        assert len({getattr(s, field) for s in setups}) == 2, field


@needs_torch
@pytest.mark.parametrize("cfg, setup", GRID)
def test_param_count_matches_reference_model(cfg, setup):
    model = build_model(cfg, setup)
    assert sum(p.numel() for p in model.parameters()) == count_params(cfg).total


@needs_torch
@pytest.mark.parametrize("cfg, setup", GRID)
def test_matmul_and_attention_flops_match_flop_counter(cfg, setup):
    _register_cpu_sdpa_flops()
    torch.manual_seed(0)
    model = build_model(cfg, setup)
    optimizer = make_optimizer(model, setup)
    batches = random_batches(cfg, setup, "cpu")
    with flop_counter.FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, batches, setup)
    step = ledger(cfg, setup)
    assert counter.get_total_flops() == step.total("flops", cls="matmul") + step.total("flops", cls="attention")


@needs_torch
@pytest.mark.parametrize("cfg, setup", GRID[::8])
def test_weight_gradient_and_optimizer_bytes_match_torch(cfg, setup):
    model = build_model(cfg, setup)
    optimizer = make_optimizer(model, setup)
    tokens = torch.randint(0, cfg.vocab_size, (1, cfg.seq_len))
    logits = model(tokens)
    torch.nn.functional.cross_entropy(logits.view(-1, cfg.vocab_size), tokens.view(-1)).backward()
    optimizer.step()  # allocates the optimizer state
    params = list(model.parameters())
    nbytes = lambda t: t.numel() * t.element_size()  # noqa: E731
    state = sum(nbytes(t) for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
    memory = ledger(cfg, setup).memory
    assert memory.weights_bytes == sum(nbytes(p) for p in params)
    assert memory.gradient_bytes == sum(nbytes(p.grad) for p in params)
    assert memory.optimizer_bytes == state


def test_vectorised_totals_equal_one_config_at_a_time():
    setup = TrainSetup(micro_batch_size=4, global_batch_size=8)
    d_models = np.array([256, 512, 768, 1024])
    layers = np.array([4, 8, 12, 24])
    heads = d_models // 64
    batch = ShapeBatch.from_arrays(d_models, layers, heads, vocab_size=32000, seq_len=512,
                                   micro_batch_size=4, grad_accum_steps=2)
    many = ledger(batch, setup)
    for i in range(len(d_models)):
        cfg = TransformerConfig(d_model=int(d_models[i]), n_layers=int(layers[i]), n_heads=int(heads[i]),
                                vocab_size=32000, seq_len=512)
        one = ledger(cfg, setup)
        for field in ("flops", "bytes", "kernels"):
            assert many.total(field)[i] == pytest.approx(one.total(field), rel=1e-12)
        assert many.memory.total_bytes[i] == pytest.approx(one.memory.total_bytes, rel=1e-12)


def test_ledger_flops_follow_the_six_n_rule_for_a_large_model():
    # For a wide model with short context, matmul flops are close to 6 x params x tokens (Kaplan et al.).
    cfg = TransformerConfig(d_model=4096, n_layers=32, n_heads=32, seq_len=256, vocab_size=32000)
    setup = TrainSetup(micro_batch_size=1)
    tokens = setup.micro_batch_size * cfg.seq_len
    ratio = ledger(cfg, setup).total("flops", cls="matmul") / (6 * count_params(cfg).total * tokens)
    assert 0.97 < ratio < 1.03


def test_checkpointing_trades_memory_for_recompute():
    # a small vocabulary, so that the logits (not checkpointed) do not dominate
    cfg = TransformerConfig(d_model=512, n_layers=8, n_heads=8, seq_len=1024, vocab_size=1024)
    plain = ledger(cfg, TrainSetup(micro_batch_size=8))
    ckpt = ledger(cfg, TrainSetup(micro_batch_size=8, activation_checkpointing="full"))
    assert ckpt.memory.activation_bytes < 0.5 * plain.memory.activation_bytes
    assert ckpt.total("flops") > 1.2 * plain.total("flops")
    assert plain.total("flops", phase="recompute") == 0


def test_gradient_accumulation_repeats_the_micro_batch_work():
    cfg = TransformerConfig(d_model=256, n_layers=4, n_heads=4, seq_len=256)
    one = ledger(cfg, TrainSetup(micro_batch_size=4, global_batch_size=4))
    four = ledger(cfg, TrainSetup(micro_batch_size=4, global_batch_size=16))
    assert four.total("flops", cls="matmul") == pytest.approx(4 * one.total("flops", cls="matmul"))
    assert four.total("bytes", cls="optimizer") == one.total("bytes", cls="optimizer")


def test_table_lists_every_op_and_total():
    step = ledger(TransformerConfig(d_model=128, n_layers=2, n_heads=4), TrainSetup(micro_batch_size=2))
    text = step.table()
    assert "attn.qkv" in text and "optimizer.adamw" in text and text.splitlines()[-1].startswith("total")
    assert len(text.splitlines()) == len(step.ops) + 2


def test_the_inventory_does_not_compute_memory_until_asked(monkeypatch):
    import importlib

    ledger_module = importlib.import_module("timelaw.ledger")  # `timelaw.ledger` is also the function

    calls = []
    real = ledger_module.memory_footprint
    monkeypatch.setattr(ledger_module, "memory_footprint", lambda *a: calls.append(a) or real(*a))
    step = ledger(TransformerConfig(d_model=128, n_layers=2, n_heads=4), TrainSetup(micro_batch_size=2))
    assert step.total("flops") > 0 and calls == []
    assert step.memory.total_bytes > 0 and step.memory is step.memory and len(calls) == 1


def test_estimators_use_a_ledger_built_once_by_the_caller(monkeypatch):
    from timelaw.devices import load_profile
    from timelaw.timing import ESTIMATORS, base

    cfg = TransformerConfig(d_model=256, n_layers=2, n_heads=4)
    setup = TrainSetup(micro_batch_size=2, global_batch_size=8, data_parallel=2, tensor_parallel=2)
    profile = load_profile("h100-sxm")
    step = ledger(cfg, setup)
    expected = {m: float(ESTIMATORS[m](profile, profile.coefficients[m]).predict(cfg, setup)) for m in ESTIMATORS}
    monkeypatch.setattr(base, "ledger", lambda *a: pytest.fail("built a second ledger"))
    for method, seconds in expected.items():
        assert float(ESTIMATORS[method](profile, profile.coefficients[method]).predict(cfg, setup, step)) == seconds
    breakdown = ESTIMATORS["roofline"](profile, profile.coefficients["roofline"]).breakdown(cfg, setup, step)
    assert sum(breakdown.values()) == pytest.approx(expected["roofline"], rel=1e-12)


def test_table_shows_what_collectives_send_apart_from_memory_traffic():
    cfg = TransformerConfig(d_model=128, n_layers=2, n_heads=4)
    step = ledger(cfg, TrainSetup(micro_batch_size=2, global_batch_size=4, data_parallel=2))
    rows = {r["name"]: r for r in step.rows()}
    sent = rows["grads.dp_all_reduce"]
    # every fp32 gradient of the model, once per step: 4 bytes x parameters
    assert sent["message_bytes"] == 4 * count_params(cfg).total
    assert sent["bytes_read"] == sent["bytes_written"] == 0
    header, *_, total = step.table().splitlines()
    assert header.split()[-2:] == ["MB", "sent"]
    assert float(total.split()[-1]) == pytest.approx(4 * count_params(cfg).total / 1e6, abs=0.006)


def _saved_activation_bytes(cfg, setup) -> int:
    """Bytes of the distinct tensors autograd saves for the backward in one forward (parameters excluded)."""
    from timelaw.reference import autocast

    torch.manual_seed(0)
    model = build_model(cfg, setup)
    params = {p.data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        if t.data_ptr() not in params:
            saved[(t.data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    tokens = torch.randint(0, cfg.vocab_size, (setup.micro_batch_size, cfg.seq_len))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(torch.device("cpu"), setup.precision):
        model(tokens)
    return sum(saved.values())


CPU_FLASH_GAP = pytest.mark.xfail(strict=True, reason=(
    "known: torch's CPU flash-attention kernel saves more than the GPU kernel the estimate follows (10-25%)"))


@needs_torch
@pytest.mark.parametrize("attention, precision", [
    ("math", "fp32"), ("math", "bf16"),
    pytest.param("flash", "fp32", marks=CPU_FLASH_GAP)])
@pytest.mark.parametrize("mlp, positions, norm", [("gelu", "learned", "layernorm"), ("swiglu", "rotary", "rmsnorm")])
def test_activation_memory_per_block_against_what_autograd_saves(attention, precision, mlp, positions, norm):
    """One block's saved activations (a 4-block model minus a 2-block one, over two blocks), measured with
    saved-tensor hooks, against the estimate: within 6%. (Exactly: the estimate counts the attention output
    before its heads merge, which nothing saves, and omits the causal mask that masked_fill saves.)"""
    from timelaw.memory import _saved_per_layer

    def cfg(layers):
        return TransformerConfig(d_model=128, n_layers=layers, n_heads=4, vocab_size=256, seq_len=64, mlp=mlp,
                                 positions=positions, norm=norm)

    setup = TrainSetup(micro_batch_size=4, precision=precision, attention=attention)
    measured = (_saved_activation_bytes(cfg(4), setup) - _saved_activation_bytes(cfg(2), setup)) / 2
    estimated = float(_saved_per_layer(ShapeBatch.from_config(cfg(2), setup), setup))
    assert estimated == pytest.approx(measured, rel=0.06)


@pytest.mark.parametrize("field, value", [("mlp", "relu"), ("norm", "batchnorm"), ("positions", "alibi"),
                                          ("bias", "kv"), ("tied_embeddings", 1)])
def test_a_shape_batch_refuses_a_kind_it_cannot_count(field, value):
    # before: mlp="relu" was counted as GELU, norm="batchnorm" as LayerNorm
    with pytest.raises(ValueError, match=f"ShapeBatch.{field} must be one of"):
        ShapeBatch.from_arrays(64, 2, 2, vocab_size=100, seq_len=16, **{field: value})
    assert ShapeBatch.from_arrays(64, 2, 2, vocab_size=100, seq_len=16, tied_embeddings=np.bool_(False)).size == 1
