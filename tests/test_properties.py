"""Property-based: on any config, setup, budget and shipped profile, the pipeline either refuses the input
(ValueError / ValidationError) or returns something physically possible: a finite loss between the law's
irreducible term and ln(vocab) (a uniform guess), and an MFU in (0, 1].

Kept small (a few seconds): few examples per property, no deadline (the first call loads profiles).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import timelaw
from timelaw.plan.inputs import resolve_law

PROFILES = sorted(timelaw.list_profiles())
REFUSALS = (ValueError, ValidationError)  # ValidationError is a ValueError; named for the reader
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def configs(draw):
    head_dim = draw(st.sampled_from([8, 16, 32, 64, 128, 256]))
    n_heads = draw(st.integers(1, 64))
    return dict(
        d_model=head_dim * n_heads, n_heads=n_heads,
        n_layers=draw(st.integers(1, 128)),
        # from a byte-level vocabulary up: below e^E (~6 tokens) [E, ln(vocab)] is empty (see the xfail below)
        vocab_size=draw(st.integers(256, 300_000)),
        seq_len=draw(st.sampled_from([16, 128, 512, 1024, 2048, 8192, 32768])),
        mlp=draw(st.sampled_from(["gelu", "swiglu"])),
    )


@st.composite
def setups(draw):
    micro = draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 256]))
    return dict(
        micro_batch_size=micro,
        global_batch_size=micro * draw(st.sampled_from([1, 2, 8, 64])),
        precision=draw(st.sampled_from(["bf16", "fp16", "fp32"])),
        activation_checkpointing=draw(st.sampled_from(["none", "full"])),
    )


hours = st.floats(min_value=1e-5, max_value=1e4, allow_nan=False, allow_infinity=False)


def irreducible(law=None) -> float:
    """The law's floor E (0 for a form without one, e.g. Kaplan's)."""
    return float(resolve_law(law).law.params_.get("E", 0.0))


def assert_possible(prediction, vocab_size: int, floor: float) -> None:
    loss, mfu = prediction.loss, prediction.mfu
    assert math.isfinite(loss), prediction
    assert floor <= loss <= math.log(vocab_size) * (1 + 1e-9), (loss, floor, math.log(vocab_size))
    assert 0 < mfu <= 1, mfu


def build(config: dict, setup: dict):
    """The config and setup, or None where their own validation refuses them (the refusal is the answer)."""
    try:
        return timelaw.TransformerConfig(**config), timelaw.TrainSetup(**setup)
    except REFUSALS:
        return None


@settings(max_examples=40, **SETTINGS)
@given(config=configs(), setup=setups())
def test_ledger_refuses_or_counts_positive_finite_work(config, setup):
    built = build(config, setup)
    if built is None:
        return
    try:
        totals = timelaw.ledger(*built).totals
    except REFUSALS:
        return
    for name in ("flops", "bytes_read", "bytes_written", "kernels"):
        assert math.isfinite(totals[name]) and totals[name] > 0, (name, totals)


@settings(max_examples=60, **SETTINGS)
@given(config=configs(), setup=setups(), budget=hours, profile=st.sampled_from(PROFILES))
def test_predict_loss_refuses_or_is_physically_possible(config, setup, budget, profile):
    built = build(config, setup)
    if built is None:
        return
    cfg, train_setup = built
    try:
        prediction = timelaw.predict_loss(cfg, hours=budget, setup=train_setup, profile=profile)
    except REFUSALS:
        return
    assert_possible(prediction, cfg.vocab_size, irreducible())


@settings(max_examples=12, **SETTINGS)
@given(budget=hours, profile=st.sampled_from(PROFILES),
       vocab_size=st.integers(256, 300_000), precision=st.sampled_from(["bf16", "fp32"]),
       seq_len=st.sampled_from([128, 1024, 4096]))
def test_optimize_refuses_or_is_physically_possible(budget, profile, vocab_size, precision, seq_len):
    # a small search space keeps each search to ~0.1 s; the properties do not depend on its size
    space = dict(d_model_max=2048, n_layers=(1, 2, 4, 8, 16, 32), tokens_per_step=(2**12, 2**16, 2**20),
                 micro_batch_sizes=(1, 4, 16), seq_lens=(seq_len,), vocab_size=vocab_size)
    try:
        plan = timelaw.optimize(hours=budget, profile=profile, setup=timelaw.TrainSetup(precision=precision),
                                **space)
    except REFUSALS:
        return
    assert_possible(plan.best, vocab_size, irreducible())
    losses = np.array([row["loss"] for row in plan.table], dtype=float)
    assert np.all(np.isfinite(losses)) and np.all(losses <= math.log(vocab_size) * (1 + 1e-9))


@pytest.mark.parametrize("law", ["hoffmann2022", "epoch2024", "muennighoff2023", "kaplan2020"])
@settings(max_examples=8, **SETTINGS)
@given(config=configs(), budget=hours, profile=st.sampled_from(PROFILES))
def test_every_preset_law_stays_below_a_uniform_guess(law, config, budget, profile):
    built = build(config, dict(micro_batch_size=8))
    if built is None:
        return
    cfg, setup = built
    try:
        prediction = timelaw.predict_loss(cfg, hours=budget, setup=setup, profile=profile, law=law,
                                          unique_tokens=1e9 if law == "muennighoff2023" else None)
    except REFUSALS:
        return
    assert_possible(prediction, cfg.vocab_size, irreducible(law))


def test_a_vocabulary_below_the_laws_floor_is_refused():
    # ln(2) = 0.69 nats is below the default law's E = 1.82: no loss in [E, ln(vocab)] exists
    cfg = timelaw.TransformerConfig(d_model=8, n_heads=1, n_layers=1, vocab_size=2, seq_len=16)
    with pytest.raises(ValueError, match="vocab_size 2: .* below this shape law's irreducible loss"):
        timelaw.predict_loss(cfg, hours=1, profile="a100-sxm-40gb")
