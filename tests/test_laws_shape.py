"""The shape-aware law, the batch term, the bounds of a possible loss and the ranges a law was fitted on."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from timelaw import TrainSetup, TransformerConfig, frontier, optimize, predict_loss
from timelaw.laws import (CriticalBatch, FitRange, PRESET_NAMES, fit_critical_batch, fit_loss_law, load_law, make_law,
                          preset)
from timelaw.plan.search import optimum_bounds
from timelaw.plan.space import SearchSpace

GEMSTONES = Path(__file__).parent / "data" / "gemstones" / "gemstones_under_600m.jsonl"


def gemstones() -> dict:
    rows = [json.loads(line) for line in GEMSTONES.read_text().splitlines() if line.strip()]
    names = {"N": "params_active_precise", "D": "tokens", "loss": "final_loss", "d_model": "width",
             "n_layers": "depth"}
    return {ours: np.array([float(r[theirs]) for r in rows]) for ours, theirs in names.items()}


def _measured(runs, width, depth):
    row = (runs["d_model"] == width) & (runs["n_layers"] == depth)
    return runs["N"][row][0], runs["loss"][row][np.argmax(runs["D"][row])]


# --- the shape form on independent data -------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::timelaw.laws.DegenerateFitWarning")
def test_shape_law_fitted_small_predicts_larger_gemstones_better_than_n_only():
    runs = gemstones()
    small = runs["N"] < 200e6
    train = {k: v[small] for k, v in runs.items()}
    test = {k: v[~small] for k, v in runs.items()}
    errors = {}
    for form in ("chinchilla", "shape"):
        law = fit_loss_law(train, form=form, n_bootstrap=0, grid=16)
        predicted = law.predict(test["N"], test["D"], d_model=test["d_model"], n_layers=test["n_layers"])
        errors[form] = float(np.mean(np.abs(predicted / test["loss"] - 1)))
        if form == "shape":
            # 1792x7 and 1024x28 (both ~0.5B, neither fitted): the shallow one measured worse; so predicted.
            n_shallow, _ = _measured(runs, 1792, 7)
            n_deep, _ = _measured(runs, 1024, 28)
            assert law.predict(n_shallow, 1e11, d_model=1792, n_layers=7) > law.predict(n_deep, 1e11, d_model=1024,
                                                                                        n_layers=28)
    assert errors["shape"] < errors["chinchilla"]
    assert errors["shape"] < 0.025  # measured 1.9% (benchmarks/shape_law.py); N-only 2.7%


def test_shape_law_is_chinchilla_for_typical_shapes_and_without_a_shape():
    shape, chin = preset("composite2026"), preset("epoch2024")
    n, d = np.array([1e8, 1e9, 1e10]), np.array([2e9, 2e10, 2e11])
    np.testing.assert_array_equal(shape.predict(n, d), chin.predict(n, d))
    # aspect ratio 4 is far below R0 ~ 1000: the penalty (4/995)^1.48 is 3e-4 of the parameter term
    typical = shape.predict(n, d, d_model=np.array([256, 512, 1024]), n_layers=np.array([64, 128, 256]))
    np.testing.assert_allclose(typical, chin.predict(n, d), rtol=2e-4)
    wide = shape.predict(1e9, 2e10, d_model=8192, n_layers=2)
    assert wide > chin.predict(1e9, 2e10) * 1.05


def test_shape_fit_needs_the_shape_columns():
    runs = gemstones()
    with pytest.raises(ValueError, match="d_model.*n_layers"):
        fit_loss_law({k: runs[k] for k in ("N", "D", "loss")}, form="shape", n_bootstrap=0, grid=2)
    with pytest.raises(ValueError, match="only one of 'd_model' and 'n_layers'"):
        fit_loss_law({k: runs[k] for k in ("N", "D", "loss", "d_model")}, form="shape", n_bootstrap=0, grid=2)


# --- the batch term ---------------------------------------------------------------------------------------

def test_critical_batch_is_kaplans_by_hand():
    # B_crit(L) = 2e8 / L^(1/0.21): at L = 2.5, 2.5^4.7619 = exp(4.7619 x 0.916291) = 78.53
    assert CriticalBatch().tokens(2.5) == pytest.approx(2e8 / 78.53, rel=1e-3)


def test_batch_term_satisfies_mccandlish_at_the_loss_it_predicts():
    law, plain = preset("composite2026"), preset("composite2026")
    plain.critical_batch_ = None
    n, d = 1e9, 2e10
    for batch in (2 ** 14, 2 ** 19, 2 ** 22):
        loss = float(law.predict(n, d, batch_tokens=batch))
        effective = d / (1 + batch / float(CriticalBatch().tokens(loss)))
        assert loss == pytest.approx(float(plain.predict(n, effective)), rel=2e-3)
    losses = law.predict(n, d, batch_tokens=np.array([2.0 ** k for k in range(12, 25)]))
    assert np.all(np.diff(losses) > 0)  # at fixed tokens, larger batches never help


def test_fit_with_batch_column_uses_the_batch_term_and_records_its_range():
    law = preset("epoch2024")
    rng = np.random.default_rng(0)
    n = np.repeat([1e8, 3e8, 1e9], 6)
    d = np.tile([2e9, 5e9, 2e10], 6)
    batch = np.tile(np.repeat([2.0 ** 16, 2.0 ** 21], 3), 3)
    truth = make_law("chinchilla", law.params_, critical_batch=CriticalBatch())
    loss = truth.predict(n, d, batch_tokens=batch) * np.exp(rng.normal(0, 1e-4, n.size))
    fitted = fit_loss_law({"N": n, "D": d, "loss": loss, "batch_tokens": batch}, n_bootstrap=0, grid=16)
    assert fitted.critical_batch_ is not None
    assert fitted.range_.ranges["batch_tokens"] == (2.0 ** 16, 2.0 ** 21)
    assert fitted.params_["alpha"] == pytest.approx(law.params_["alpha"], rel=0.05)


# --- never a loss no model could have -------------------------------------------------------------------

@pytest.mark.parametrize("name", PRESET_NAMES)
def test_no_preset_predicts_above_a_uniform_guess_or_below_its_floor(name):
    law = preset(name)
    n = np.geomspace(1e3, 1e13, 21)[:, None, None]
    d = np.geomspace(1.0, 1e14, 29)[None, :, None]
    vocab = np.array([256, 2048, 50257, 131072])[None, None, :]
    loss = law.predict(n, d, d_model=np.sqrt(n / 12), n_layers=np.full_like(n, 4.0), batch_tokens=2.0 ** 20,
                       vocab_size=vocab)
    assert np.all(np.isfinite(loss))
    assert np.all(loss <= np.log(vocab)) and np.all(loss >= law.floor())


def test_bound_leaves_fitted_regime_unchanged():
    law = preset("epoch2024")
    n, d = np.geomspace(1e8, 1e10, 5), np.geomspace(2e9, 2e11, 5)
    np.testing.assert_allclose(law.predict(n, d, vocab_size=50257), law.predict(n, d), rtol=1e-6)


@pytest.mark.parametrize("d_model, n_layers, seq_len, vocab, seconds", [
    (64, 1, 16, 256, 1.0), (2048, 32, 8192, 131072, 3.6e6), (768, 12, 1024, 50257, 10.0), (128, 2, 64, 256, 3.6e6),
])
def test_predictions_stay_between_floor_and_uniform_guess(d_model, n_layers, seq_len, vocab, seconds):
    cfg = TransformerConfig(d_model=d_model, n_layers=n_layers, n_heads=max(1, d_model // 64), vocab_size=vocab,
                            seq_len=seq_len)
    setup = TrainSetup(micro_batch_size=1, global_batch_size=8)
    p = predict_loss(cfg, seconds=seconds, profile="h100-sxm", setup=setup)
    assert preset("composite2026").floor() <= p.loss_low <= p.loss <= p.loss_high <= math.log(vocab)
    assert 0 < p.mfu <= 1


# --- the range a law holds in ---------------------------------------------------------------------------

def test_excursions_by_hand():
    r = FitRange({"N": (1e8, 1e10), "D": (1e9, 1e12), "n_layers": (3, 80)})
    found = {e.name: e for e in r.excursions(1e7, 1e13, n_layers=2)}
    assert found["N"].decades == pytest.approx(1.0)
    assert found["D"].decades == pytest.approx(1.0)
    assert found["n_layers"].decades == pytest.approx(math.log10(3 / 2))
    assert "below" in found["N"].text and "above" in found["D"].text
    assert r.excursions(1e9, 1e10, n_layers=12) == []


def test_fitted_law_knows_its_runs_range_and_round_trips():
    runs = gemstones()
    law = fit_loss_law(runs, form="shape", n_bootstrap=0, grid=8)
    assert law.range_.ranges["N"] == (runs["N"].min(), runs["N"].max())
    assert law.range_.ranges["aspect_ratio"] == pytest.approx((256 / 80, 256.0))
    again = load_law(law.to_json())
    assert again.range_.ranges == law.range_.ranges
    composite = load_law(preset("composite2026").to_json())
    assert composite.critical_batch_ == CriticalBatch()
    assert composite.predict(1e9, 2e10, d_model=2048, n_layers=24, batch_tokens=2 ** 20) == \
        preset("composite2026").predict(1e9, 2e10, d_model=2048, n_layers=24, batch_tokens=2 ** 20)


def test_prediction_outside_the_range_says_so_and_widens_its_band():
    cfg = TransformerConfig(d_model=768, n_layers=12, n_heads=12)
    inside = predict_loss(cfg, hours=24, profile="h100-sxm")
    outside = predict_loss(cfg, seconds=30, profile="h100-sxm")
    assert not any("outside the law's fitted range" in n for n in inside.notes)
    assert any("tokens = " in n and "decades below" in n for n in outside.notes)
    assert "outside the law's fitted range" in outside.band
    # the law's part of the band, relative to the loss, is wider outside (time part is the same +-50%)
    assert (outside.loss_high - outside.loss_low) / outside.loss > 0  # a real band
    widened = [float(s.split("x")[-1].split(" ")[0]) for s in outside.band.split(",") if "outside" in s]
    assert widened and widened[0] > 1.5


# --- the planner: interior optima, bounds, tables -----------------------------------------------------------

OPEN = dict(aspect_ratio_min=1, aspect_ratio_max=4096, tokens_per_step=tuple(2 ** k for k in range(12, 25)),
            min_steps=1)


def test_open_search_optimum_is_interior_and_its_batch_does_not_shrink():
    front = frontier(hours=[1, 24, 168], profile="h100-sxm", **OPEN)
    space = SearchSpace().updated(**OPEN)
    batches = [p.tokens_per_step for p in front.best]
    for p in front.best:
        assert p.config.n_layers > 2
        assert optimum_bounds(space, p) == ()
    assert batches == sorted(batches)


def test_plan_names_the_bound_it_sits_on():
    plan = optimize(hours=4, profile="h100-sxm", aspect_ratio_max=24)
    assert any(b.startswith("aspect_ratio_max") for b in plan.bounds)
    assert any("aspect_ratio_max = 24" in n for n in plan.notes) and "aspect_ratio_max = 24" in plan.text


def test_optimize_table_lists_distinct_shapes():
    plan = optimize(hours=1, profile="h100-sxm", top=10)
    shapes = [(r["d_model"], r["n_layers"], r["mlp"], r["seq_len"]) for r in plan.table]
    assert len(shapes) == len(set(shapes)) == 10
    assert [r["loss"] for r in plan.table] == sorted(r["loss"] for r in plan.table)
    assert plan.table[0]["loss"] == pytest.approx(plan.best.loss, rel=1e-12)


def test_fit_critical_batch_recovers_the_batch_scale_of_a_sweep():
    # A sweep computed by hand with B_* = 5e7 (a quarter of Kaplan's): Chinchilla's equation with
    # D_eff = D / (1 + B / B_crit(L)), B_crit(L) = 5e7 / L^(1/0.21), solved by plain fixed-point iteration.
    c = preset("epoch2024").params_
    n, d = 3e8, 6e9
    batch = np.array([2.0 ** k for k in range(14, 21)])  # larger batches have no finite fixed point here
    loss = np.full(batch.size, 3.0)
    for _ in range(5000):
        d_eff = d / (1 + batch / (5e7 / loss ** (1 / 0.21)))
        loss = c["E"] + c["A"] / n ** c["alpha"] + c["B"] / d_eff ** c["beta"]
    law = make_law("chinchilla", c, critical_batch=CriticalBatch())
    runs = {"N": np.full(batch.size, n), "D": np.full(batch.size, d), "batch_tokens": batch, "loss": loss}
    fitted = fit_critical_batch(law, runs)
    assert fitted.b_star_tokens == pytest.approx(5e7, rel=1e-3)
    assert law.critical_batch_ == CriticalBatch()  # the law itself is left as it was
    # it knows the fewest steps of the sweep: 6e9 tokens / 2^20 tokens per step = 5722.0
    assert fitted.min_steps == pytest.approx(6e9 / 2 ** 20, rel=1e-12)
    with pytest.raises(ValueError, match="batch_tokens"):
        fit_critical_batch(law, {k: v for k, v in runs.items() if k != "batch_tokens"})


def test_a_run_shorter_than_the_batch_terms_runs_says_so():
    # Kaplan's B_crit was measured on runs of 2.5e5 steps after a 3,000-step warmup
    assert CriticalBatch().min_steps == 3000
    assert CriticalBatch.from_dict({"b_star_tokens": 1e8, "alpha_b": 0.21, "source": "old file"}).min_steps is None
    cfg = TransformerConfig(d_model=1024, n_layers=16, n_heads=16)
    setup = TrainSetup(micro_batch_size=8, global_batch_size=64)
    short = predict_loss(cfg, minutes=10, profile="h100-sxm", setup=setup)
    long = predict_loss(cfg, hours=10, profile="h100-sxm", setup=setup)
    assert short.steps < 3000 < long.steps
    said = [n for n in short.notes if "below the 3,000 of the runs the batch term was measured on" in n]
    assert said and said[0].startswith(f"{short.steps:,} optimizer steps")
    assert not any("batch term was measured on" in n for n in long.notes)
