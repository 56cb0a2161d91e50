import pytest

from timelaw.config import TrainSetup, TransformerConfig

torch = pytest.importorskip("torch")
from timelaw.reference import build_model, time_training_steps  # noqa: E402


def test_forward_returns_logits_and_training_reduces_loss():
    cfg = TransformerConfig(d_model=32, n_layers=2, n_heads=4, vocab_size=50, seq_len=16, positions="rotary")
    torch.manual_seed(0)
    model = build_model(cfg)
    tokens = torch.randint(0, 50, (2, 16))
    assert model(tokens).shape == (2, 16, 50)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):  # memorise one batch
        loss = torch.nn.functional.cross_entropy(model(tokens[:, :-1]).reshape(-1, 50), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_causal_model_does_not_look_ahead():
    for attention in ("math", "flash"):
        cfg = TransformerConfig(d_model=32, n_layers=2, n_heads=4, vocab_size=50, seq_len=16)
        model = build_model(cfg, TrainSetup(attention=attention)).eval()
        tokens = torch.randint(0, 50, (1, 16))
        changed = tokens.clone()
        changed[0, 10:] = (changed[0, 10:] + 1) % 50
        assert torch.allclose(model(tokens)[0, :10], model(changed)[0, :10], atol=1e-5)


def test_time_training_steps_excludes_warmup_and_reports_median():
    cfg = TransformerConfig(d_model=32, n_layers=1, n_heads=4, vocab_size=50, seq_len=16)
    timing = time_training_steps(cfg, TrainSetup(micro_batch_size=2), steps=3, warmup_steps=1)
    assert len(timing.all_seconds) == 3 and timing.warmup_steps == 1
    assert timing.seconds == sorted(timing.all_seconds)[1] and timing.seconds > 0
