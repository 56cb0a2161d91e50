"""The ledger as a GPU runs the reference step: autocast's fp32 activations and the foreach optimizer.

Expected bytes are worked out by hand from what autocast does (the residual stream, norms and embeddings
stay fp32; each linear layer casts its input to 16 bits); fp32 steps must be exactly as before.
"""
import numpy as np
import pytest

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.ledger import ADAMW_FOREACH_OPS, ledger
from timelaw.params import n_param_tensors
from timelaw.shapes import ShapeBatch

CFG = TransformerConfig(d_model=256, n_layers=2, n_heads=4, vocab_size=1000, seq_len=128)
TOKENS, D = 4 * 128, 256


def _op(step, name):
    (op,) = [o for o in step.ops if o.name == name]
    return op


def test_bf16_autocast_keeps_norms_residuals_and_embeddings_in_fp32():
    step = ledger(CFG, TrainSetup(micro_batch_size=4, precision="bf16"))
    norm = _op(step, "attn.norm")
    assert norm.bytes_written == TOKENS * D * 4 and norm.bytes_read == TOKENS * D * 4 + 4 * D  # + fp32 weight
    residual = _op(step, "attn.residual")
    assert residual.bytes_read == TOKENS * D * (4 + 2) and residual.bytes_written == TOKENS * D * 4
    cast = _op(step, "attn.norm.cast")
    assert cast.bytes_read == TOKENS * D * 4 and cast.bytes_written == TOKENS * D * 2 and cast.kernels == 1
    embed = _op(step, "embed.tokens")
    assert embed.bytes_written == TOKENS * D * 4
    qkv = _op(step, "attn.qkv")
    assert qkv.bytes_written == TOKENS * 3 * D * 2  # the matmuls themselves stay 16-bit
    # a gated MLP's two input projections each cast the norm's output
    gated = TransformerConfig(d_model=256, n_layers=2, n_heads=4, vocab_size=1000, seq_len=128, mlp="swiglu")
    swiglu = ledger(gated, TrainSetup(micro_batch_size=4, precision="bf16"))
    assert sum(op.name == "mlp.norm.cast" for op in swiglu.ops) == 2
    assert sum(op.name == "mlp.norm.cast" for op in step.ops) == 1


def test_fp32_steps_have_no_casts_and_the_old_byte_counts():
    step = ledger(CFG, TrainSetup(micro_batch_size=4, precision="fp32"))
    assert not [op for op in step.ops if op.name.endswith(".cast")]
    residual = _op(step, "mlp.residual")
    assert residual.bytes_read == 2 * TOKENS * D * 4 and residual.bytes_written == TOKENS * D * 4
    assert residual.flops == 2 * TOKENS * D
    assert _op(step, "final.norm").bytes_written == TOKENS * D * 4


def test_gpu_optimizer_launches_a_few_foreach_kernels_and_the_cpu_one_per_tensor():
    setup = TrainSetup(micro_batch_size=4, precision="bf16")
    adamw = _op(ledger(CFG, setup), "optimizer.adamw")
    tensors = float(n_param_tensors(ShapeBatch.from_config(CFG, setup)))
    assert adamw.kernels == 12 * tensors  # per tensor, torch's default on a CPU
    assert adamw.foreach_kernels == ADAMW_FOREACH_OPS  # < 64 tensors, < 21M parameters: one list per op
    assert adamw.foreach_kernels < adamw.kernels / 10


def test_foreach_op_count_is_torchs():
    """torch's foreach AdamW step runs ADAMW_FOREACH_OPS multi-tensor ops on the parameters' device, plus
    one on the step counters, which stay on the CPU when the parameters are on a GPU."""
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile

    params = [torch.nn.Parameter(torch.randn(16, 16)) for _ in range(5)]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1, foreach=True)
    optimizer.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        optimizer.step()
    top = [e for e in prof.events() if e.name.startswith("aten::_foreach")
           and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::_foreach"))]
    assert len(top) == ADAMW_FOREACH_OPS + 1


def test_gpu_roofline_prices_the_foreach_launches(monkeypatch):
    from timelaw.devices.registry import load_profile
    from timelaw.timing import RooflineEstimator

    profile = load_profile("h100-sxm")
    setup = TrainSetup(micro_batch_size=4, precision="bf16")
    step = ledger(CFG, setup)
    launches = RooflineEstimator(profile, profile.coefficients["roofline"]).features(CFG, setup)[..., -3]
    expected = sum(float(np.sum((op.foreach_kernels if op.foreach_kernels is not None else op.kernels) * op.count))
                   for op in step.ops) * profile.kernel_seconds
    assert float(launches) == pytest.approx(expected)
