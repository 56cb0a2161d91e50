"""The planner: predict_loss, optimize, frontier, wider_vs_deeper, and the plan CLI."""
import argparse
import json
import math

import numpy as np
import pytest

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.devices import load_profile
from timelaw.laws import preset
from timelaw.plan import SearchSpace, frontier, optimize, predict_loss, wider_vs_deeper
from timelaw.params import count_params

A100 = "a100-sxm-80gb"
# A small search space keeps each optimize call well under a second.
SMALL = SearchSpace(d_model_max=2048, n_layers=(2, 3, 4, 6, 8, 12, 16, 24), tokens_per_step=(2 ** 17, 2 ** 19),
                    micro_batch_sizes=(4, 16, 64))
GPT2 = TransformerConfig(d_model=768, n_layers=12, n_heads=12)


@pytest.fixture(autouse=True)
def no_cached_profiles(tmp_path, monkeypatch):
    """The default profile must be the shipped spec sheet, whatever this machine has calibrated."""
    monkeypatch.setenv("TIMELAW_CACHE_DIR", str(tmp_path / "cache"))


def faster(profile_name: str, factor: float):
    """The profile of a device `factor` times faster at everything: every op's roofline time shrinks."""
    p = load_profile(profile_name)
    return p.model_copy(update={
        "name": f"{p.name}-x{factor:g}",
        "peak_flops": {k: v * factor for k, v in p.peak_flops.items()},
        "memory_bandwidth": p.memory_bandwidth * factor,
        "kernel_seconds": p.kernel_seconds / factor,
    })


def config_of(row: dict, vocab: int = 50257) -> tuple:
    cfg = TransformerConfig(d_model=row["d_model"], n_layers=row["n_layers"], n_heads=row["n_heads"], mlp=row["mlp"],
                            seq_len=row["seq_len"], vocab_size=vocab)
    setup = TrainSetup(micro_batch_size=row["micro_batch_size"], global_batch_size=row["global_batch_size"])
    return cfg, setup


# --- consistency -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("law, unique_tokens", [(None, None), ("kaplan2020", None), (None, 3e8)])
def test_predict_loss_on_optimized_config_equals_reported_loss(law, unique_tokens):
    plan = optimize(hours=2, profile=A100, law=law, unique_tokens=unique_tokens, space=SMALL, top=5)
    again = predict_loss(plan.best.config, hours=2, setup=plan.best.setup, profile=A100, law=law,
                         unique_tokens=unique_tokens)
    assert again.loss == plan.best.loss == plan.table[0]["loss"]
    assert again.tokens == plan.table[0]["tokens"]
    assert plan.best.config.d_model == plan.table[0]["d_model"]
    for row in plan.table:  # every ranked row, not only the best, is what predict_loss says
        cfg, setup = config_of(row)
        assert predict_loss(cfg, hours=2, setup=setup, profile=A100, law=law,
                            unique_tokens=unique_tokens).loss == row["loss"]
    losses = [r["loss"] for r in plan.table]
    assert losses == sorted(losses)


def test_optimize_beats_a_hand_picked_shape():
    plan = optimize(hours=1, profile=A100, space=SMALL)
    hand = predict_loss(GPT2, hours=1, setup=TrainSetup(micro_batch_size=16, global_batch_size=128), profile=A100)
    assert plan.best.loss <= hand.loss


# --- monotonicity ------------------------------------------------------------------------------------------

def test_more_hours_never_raises_the_loss():
    hours = np.geomspace(0.05, 200, 25)
    losses = [predict_loss(GPT2, hours=h, profile=A100).loss for h in hours]
    assert np.all(np.diff(losses) <= 0)
    assert losses[-1] < losses[0] - 0.5  # and it really falls
    best = [optimize(hours=h, profile=A100, space=SMALL).best.loss for h in (0.25, 1, 4, 16)]
    assert np.all(np.diff(best) < 0)


def test_a_faster_profile_never_gives_a_higher_loss():
    fast = faster(A100, 2.0)
    for cfg in (GPT2, TransformerConfig(d_model=256, n_layers=4, n_heads=4),
                TransformerConfig(d_model=2048, n_layers=24, n_heads=16)):
        slow_p, fast_p = predict_loss(cfg, hours=3, profile=A100), predict_loss(cfg, hours=3, profile=fast)
        assert fast_p.seconds_per_step == pytest.approx(slow_p.seconds_per_step / 2, rel=1e-9)
        assert fast_p.loss <= slow_p.loss
    fast_best = optimize(hours=3, profile=fast, space=SMALL).best.loss
    assert fast_best < optimize(hours=3, profile=A100, space=SMALL).best.loss


# --- the U-shape -------------------------------------------------------------------------------------------

def test_loss_against_model_size_is_u_shaped_at_a_fixed_budget():
    sizes = [(256, 4), (384, 6), (512, 8), (768, 12), (1024, 16), (1536, 24), (2048, 32)]
    setup = TrainSetup(micro_batch_size=8, global_batch_size=64)
    losses = np.array([predict_loss(TransformerConfig(d_model=d, n_layers=n, n_heads=d // 64), hours=1,
                                    setup=setup, profile=A100).loss for d, n in sizes])
    best = int(np.argmin(losses))
    assert 0 < best < len(sizes) - 1
    assert np.all(np.diff(losses[:best + 1]) < 0) and np.all(np.diff(losses[best:]) > 0)
    assert losses[0] - losses[best] > 0.1 and losses[-1] - losses[best] > 0.1


def test_optimize_u_curve_has_an_interior_minimum():
    n, loss = optimize(hours=1, profile=A100, space=SMALL).u_curve(bins=20)
    i = int(np.argmin(loss))
    assert 0 < i < len(loss) - 1
    assert loss[0] > loss[i] + 0.1 and loss[-1] > loss[i] + 0.1


# --- memory ------------------------------------------------------------------------------------------------

def test_a_config_that_does_not_fit_is_rejected_with_the_excess():
    huge = TransformerConfig(d_model=4096, n_layers=32, n_heads=32)
    with pytest.raises(ValueError, match=r"GiB too much") as err:
        predict_loss(huge, hours=1, profile="rtx-4090")
    excess = float(err.value.args[0].split(": ")[-1].split(" GiB too much")[0])
    assert excess > 24  # a 6.5B model needs > 100 GiB with AdamW; the 4090 has 24


def test_optimize_keeps_within_device_memory():
    plan = optimize(hours=8, profile="rtx-4090", space=SMALL, top=50)
    limit = load_profile("rtx-4090").memory_bytes / 2 ** 30
    assert all(r["memory_gib"] <= limit for r in plan.table)
    assert plan.best.memory_bytes <= plan.best.device_memory_bytes
    assert plan.n_priced < plan.n_candidates  # some shapes were dropped for memory
    roomy = optimize(hours=8, profile=A100, space=SMALL)
    assert roomy.n_priced > plan.n_priced


def test_search_constraints_hold_in_every_row():
    space = SMALL.updated(min_params=5e7, max_params=3e8, head_dim_min=64, head_dim_max=96)
    plan = optimize(hours=2, profile=A100, space=space, top=100)
    for r in plan.table:
        assert 5e7 <= r["n_params"] <= 3e8
        assert r["d_model"] % 64 == 0 and 64 <= r["head_dim"] <= 96
        assert space.aspect_ratio_min <= r["d_model"] / r["n_layers"] <= space.aspect_ratio_max
        assert r["steps"] >= space.min_steps
        assert r["tokens_per_step"] in space.tokens_per_step


# --- budget validation -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [("hours", 0), ("hours", -1), ("minutes", float("nan")),
                                         ("seconds", float("inf")), ("hours", "four")])
def test_bad_budgets_are_rejected_naming_the_argument(name, value):
    with pytest.raises(ValueError, match=name):
        predict_loss(GPT2, **{name: value}, profile=A100)
    with pytest.raises(ValueError, match=name):
        optimize(**{name: value}, profile=A100, space=SMALL)


def test_exactly_one_budget():
    with pytest.raises(ValueError, match="exactly one budget"):
        predict_loss(GPT2, profile=A100)
    with pytest.raises(ValueError, match="exactly one budget"):
        predict_loss(GPT2, hours=1, minutes=30, profile=A100)


def test_budget_units_agree():
    by_hours = predict_loss(GPT2, hours=1.5, profile=A100)
    assert predict_loss(GPT2, minutes=90, profile=A100).loss == by_hours.loss
    assert predict_loss(GPT2, seconds=5400, profile=A100).tokens == by_hours.tokens


def test_a_budget_shorter_than_one_step_is_rejected():
    with pytest.raises(ValueError, match="shorter than one optimizer step"):
        predict_loss(TransformerConfig(d_model=2048, n_layers=24, n_heads=16), seconds=0.01, profile=A100)


# --- the Prediction ----------------------------------------------------------------------------------------

def test_prediction_fields_are_consistent():
    p = predict_loss(GPT2, hours=4, profile=A100)
    assert p.steps == math.floor(4 * 3600 / p.seconds_per_step)
    assert p.tokens == p.steps * p.tokens_per_step
    assert p.tokens_per_second == pytest.approx(p.tokens_per_step / p.seconds_per_step)
    assert p.n_params == count_params(GPT2).total == p.n_params_law
    # The default law sees the shape, the batch and the vocabulary besides N and D.
    expected = preset("composite2026").predict(p.n_params, p.tokens, d_model=768, n_layers=12,
                                               batch_tokens=p.tokens_per_step, vocab_size=GPT2.vocab_size)
    assert p.loss == pytest.approx(float(expected), rel=1e-12)
    assert sum(p.breakdown.values()) == pytest.approx(p.seconds_per_step, rel=1e-9)
    assert 0.05 < p.mfu < 1.0
    assert p.loss_low < p.loss < p.loss_high
    assert p.epochs is None
    record = json.loads(json.dumps(p.to_dict()))  # JSON-ready: plain numbers, nested dicts
    assert (record["loss"], record["steps"], record["hours"]) == (p.loss, p.steps, 4)
    assert record["config"]["d_model"] == 768 and record["setup"] == p.setup.model_dump()


def test_defaults_say_spec_sheet_and_default_law():
    p = predict_loss(GPT2, hours=4)
    assert p.spec_sheet and "UNCALIBRATED" in p.profile
    assert p.law == "composite2026" and p.default_law
    assert any("spec sheet" in n for n in p.notes) and any("no law given" in n for n in p.notes)
    assert "spec sheet" in p.text and "note:" in str(p)
    explicit = predict_loss(GPT2, hours=4, law="hoffmann2022", profile=A100)
    assert not explicit.default_law and not any("no law given" in n for n in explicit.notes)


def test_kaplan_law_sees_non_embedding_parameters():
    p = predict_loss(GPT2, hours=4, profile=A100, law="kaplan2020")
    counts = count_params(GPT2)
    assert p.n_count == "non_embedding" and p.n_params_law == counts.non_embedding
    expected = preset("kaplan2020").predict(counts.non_embedding, p.tokens, vocab_size=GPT2.vocab_size)
    assert p.loss == pytest.approx(float(expected), rel=1e-12)
    forced = predict_loss(GPT2, hours=4, profile=A100, law="kaplan2020", n_count="total")
    assert forced.n_params_law == counts.total and forced.loss < p.loss


def test_band_narrows_with_a_validated_profile_and_uses_bootstrap_samples():
    spec = predict_loss(GPT2, hours=4, profile=A100)
    validation = {"roofline": {"holdout_mape_percent": 4.0}}
    measured = load_profile(A100).model_copy(update={"source": "measured", "validation": validation})
    calibrated = predict_loss(GPT2, hours=4, profile=measured)
    assert calibrated.loss == spec.loss
    assert calibrated.loss_high - calibrated.loss_low < spec.loss_high - spec.loss_low
    assert "held-out roofline MAPE of 4.0%" in calibrated.band and not calibrated.spec_sheet

    epoch = preset("epoch2024")
    rng = np.random.default_rng(0)
    samples = np.array([list(epoch.params_.values())] * 64) * rng.normal(1, 0.002, (64, 5))
    law = type(epoch)(epoch.params_, samples=samples)
    p = predict_loss(GPT2, hours=4, profile=measured, law=law)
    low, high = law.predict_interval(p.n_params, p.tokens, level=0.9)
    assert "bootstrap" in p.band
    assert p.loss_low <= float(low) and p.loss_high >= float(high)


def test_a_time_model_fitted_on_the_users_own_steps_is_a_profile():
    """Steps really timed on a 2-core CPU (the shipped profile keeps its calibration's 24 fit and 10 held-out
    steps): a roofline fitted on the 24 predicts the other 10, and predict_loss takes the fitted model."""
    from timelaw.timing import fit_time_model

    cpu = load_profile("cpu-2core-x86_64-1thread")

    def steps(key):
        return [(TransformerConfig(**s["config"]), TrainSetup(**s["setup"]), s["seconds"])
                for s in cpu.measurements[key]]

    model = fit_time_model(steps("fit_steps"), profile=cpu)
    assert model.mape(steps("holdout_steps")) < 10.0
    cfg = TransformerConfig(d_model=128, n_layers=2, n_heads=2, vocab_size=2048, seq_len=64)
    p = predict_loss(cfg, minutes=10, profile=model)
    assert p.seconds_per_step == float(model.predict(cfg, p.setup)) and p.setup.precision == "fp32"
    assert "relative residual" in p.band


def test_a_measured_profile_without_bf16_gets_a_setup_it_can_price():
    from timelaw.devices import list_profiles

    measured = [load_profile(n) for n in list_profiles()]
    measured = [p for p in measured if p.calibrated and "bf16" not in p.peak_flops]
    if not measured:
        pytest.skip("no shipped measured profile without a bf16 peak")
    small = TransformerConfig(d_model=128, n_layers=2, n_heads=2)
    p = predict_loss(small, hours=1, profile=measured[0])
    assert p.setup.precision in measured[0].peak_flops and not p.spec_sheet
    assert "held-out" in p.band and not any("spec sheet" in n for n in p.notes)


# --- finite data -------------------------------------------------------------------------------------------

def test_unique_tokens_use_the_data_constrained_law_and_count_epochs():
    unique = 2e8
    p = predict_loss(GPT2, hours=8, profile=A100, unique_tokens=unique)
    assert p.law == "composite2026_data" and p.epochs == pytest.approx(p.tokens / unique)
    assert p.epochs > 4
    unlimited = predict_loss(GPT2, hours=8, profile=A100, law="composite2026_data")
    assert p.loss > unlimited.loss + 0.05  # repeated tokens are worth less
    # past many epochs, 10x more time buys less than half what it buys with unlimited data
    longer = predict_loss(GPT2, hours=80, profile=A100, unique_tokens=unique)
    longer_unlimited = predict_loss(GPT2, hours=80, profile=A100, law="composite2026_data")
    assert 0 <= p.loss - longer.loss < 0.5 * (unlimited.loss - longer_unlimited.loss)
    ignored = predict_loss(GPT2, hours=8, profile=A100, law="epoch2024", unique_tokens=unique)
    assert any("does not model repeated data" in n for n in ignored.notes)


def test_finite_data_shrinks_the_optimal_model_at_long_budgets():
    free = optimize(hours=48, profile=A100, law="muennighoff2023", space=SMALL)
    limited = optimize(hours=48, profile=A100, unique_tokens=3e8, space=SMALL)
    assert limited.best.n_params < free.best.n_params
    assert limited.best.loss > free.best.loss


def test_bad_unique_tokens_are_rejected():
    with pytest.raises(ValueError, match="unique_tokens"):
        predict_loss(GPT2, hours=1, profile=A100, unique_tokens=0)


# --- frontier and shapes -----------------------------------------------------------------------------------

def test_frontier_grows_with_the_budget_and_reports_exponents():
    hours = [0.1, 0.3, 1, 3, 10, 30]
    front = frontier(hours=hours, profile=A100, space=SMALL)
    n = [r["n_params"] for r in front.rows]
    assert np.all(np.diff(n) > 0) and np.all(np.diff([r["tokens"] for r in front.rows]) > 0)
    for e in (front.n_exponent, front.d_exponent):
        assert 0.2 < e.value < 0.9 and e.low < e.value < e.high
    law = preset("epoch2024").params_
    assert front.n_exponent_flops.value == pytest.approx(law["beta"] / (law["alpha"] + law["beta"]), abs=2e-3)
    assert front.n_exponent_flops.value + front.d_exponent_flops.value == pytest.approx(1, abs=1e-6)
    for h, best in zip(hours, front.best):  # each optimum is what optimize finds for that budget
        assert best.loss == optimize(hours=h, profile=A100, space=SMALL).best.loss
    assert len(front.u_curves) == len(hours)
    record = json.loads(json.dumps(front.to_dict()))
    assert record["hours"] == list(hours) and len(record["rows"]) == len(hours)
    assert [r["n_params"] for r in record["rows"]] == n


def test_wider_is_faster_at_equal_parameters():
    cmp = wider_vs_deeper(1e8, profile=A100)
    assert all(abs(r["n_params"] / 1e8 - 1) <= 0.05 for r in cmp.rows)
    assert cmp.wider_is_faster and cmp.speedup > 1.5
    assert cmp.fastest["aspect_ratio"] > cmp.slowest["aspect_ratio"]
    assert cmp.relative_to(cmp.fastest["d_model"], cmp.fastest["n_layers"]) == 1.0


# --- speed -------------------------------------------------------------------------------------------------

def test_the_default_search_prices_over_100k_shapes_in_one_vectorised_pass():
    # How fast is benchmarked (benchmarks/optimize_speed.py), not tested: a timed test fails on a busy machine.
    plan = optimize(hours=4, profile=A100)
    assert plan.n_candidates > 100_000


# --- CLI and plots -----------------------------------------------------------------------------------------

def cli(*argv):
    from timelaw.plan import cli as plan_cli

    parser = argparse.ArgumentParser(prog="timelaw")
    plan_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_predict_prints_a_table_and_json(capsys):
    assert cli("predict", "--d-model", "768", "--layers", "12", "--hours", "4", "--profile", A100) == 0
    out = capsys.readouterr().out
    assert "predicted loss" in out and "spec sheet" in out
    assert cli("predict", "--d-model", "768", "--layers", "12", "--minutes", "30", "--json", "--profile", A100) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["config"]["d_model"] == 768 and record["budget_seconds"] == 1800
    assert record["loss"] == predict_loss(GPT2, minutes=30, profile=A100).loss


def test_cli_rejects_bad_input_with_exit_code_2(capsys):
    assert cli("predict", "--d-model", "768", "--layers", "12", "--hours", "-1") == 2
    assert "hours" in capsys.readouterr().err
    assert cli("predict", "--d-model", "8192", "--layers", "64", "--hours", "1", "--profile", "rtx-4090") == 2
    assert "GiB too much" in capsys.readouterr().err


def test_cli_optimize_and_frontier_with_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    u_png, f_png = tmp_path / "u.png", tmp_path / "f.png"
    assert cli("optimize", "--hours", "2", "--profile", A100, "--max-params", "3e8", "--top", "3",
               "--plot", str(u_png)) == 0
    assert "best:" in capsys.readouterr().out and u_png.stat().st_size > 1000
    assert cli("frontier", "--hours", "0.1", "1", "4", "--profile", A100, "--max-params", "1e9", "--json",
               "--plot", str(f_png)) == 0
    record = json.loads(capsys.readouterr().out)
    assert len(record["rows"]) == 3 and "n_exponent" in record and f_png.stat().st_size > 1000


def test_plot_shapes_and_table_frame(tmp_path):
    pytest.importorskip("matplotlib")
    pd = pytest.importorskip("pandas")
    from timelaw.plot import plot_shapes

    plot_shapes(wider_vs_deeper(5e7, profile=A100), tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000
    frame = optimize(hours=1, profile=A100, space=SMALL, top=4).to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4 and frame["loss"].is_monotonic_increasing


def test_a_fitted_laws_band_covers_new_runs_because_it_adds_their_scatter():
    """Runs scattered around a known law by 3% (log-normal): the bootstrap band of the mean law is far too
    narrow for where a fresh run lands; with the fitted runs' scatter added, about 90% of fresh runs fall
    inside the 90% band."""
    from timelaw.laws import fit_loss_law
    from timelaw.plan.inputs import resolve_law
    from timelaw.plan.uncertainty import law_band_coverage, law_deviations, run_scatter

    truth = preset("epoch2024")
    n_grid, d_grid = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e8, 1e11, 8)))
    rng = np.random.default_rng(3)
    noisy = lambda: truth.predict(n_grid, d_grid) * np.exp(rng.normal(0.0, 0.03, n_grid.size))
    law = fit_loss_law({"N": n_grid, "D": d_grid, "loss": noisy()}, n_bootstrap=40, seed=0)
    rms, runs = run_scatter(law)
    assert runs == 64 and rms == pytest.approx(0.03, rel=0.25)

    bootstrap_only = type(law)(law.params_, samples=law.samples_)
    fresh = noisy()  # new runs at the same shapes and token counts
    assert law_band_coverage(resolve_law(bootstrap_only), n_grid, d_grid, fresh) < 0.6
    assert 0.8 <= law_band_coverage(resolve_law(law), n_grid, d_grid, fresh) <= 0.98
    what = law_deviations(resolve_law(law), 1e9, 1e10, None, float(law.predict(1e9, 1e10)))[2]
    assert "64 runs" in what and "scatter" in what

    # Scatter alone still makes a band; a law with no more runs than constants says nothing about scatter.
    only_residuals = type(law)(law.params_, residuals=law.residuals_)
    assert law_deviations(resolve_law(only_residuals), 1e9, 1e10, None, 2.5)[2].startswith("fitted runs' scatter")
    assert law_deviations(resolve_law(type(law)(law.params_, residuals=law.residuals_[:5])), 1e9, 1e10, None,
                          2.5) is None


@pytest.mark.parametrize("option, value", [("norm", "batchnorm"), ("positions", "alibi"), ("mlps", ("relu",)),
                                           ("tied_embeddings", 1)])
def test_search_space_refuses_what_a_shape_cannot_count(option, value):
    from timelaw.plan.space import SearchSpace

    with pytest.raises(ValueError, match=option):
        SearchSpace(**{option: value})
