"""Errors a user can act on: missing extras in one line, CLI errors in flags, clear refusals of bad input."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from pydantic import ValidationError

import timelaw
from timelaw.cli import main

A100 = "a100-sxm-80gb"


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_clean_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "pydantic" not in err and "http" not in err, err


# --- missing optional dependencies ---------------------------------------------------------------------------

@pytest.fixture
def without(monkeypatch):
    """Make `import NAME` fail as if NAME were not installed (None in sys.modules)."""
    def hide(*names):
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)
    return hide


def test_require_names_the_extra(without):
    from timelaw._optional import MissingDependency, require

    without("pandas")
    with pytest.raises(ImportError, match=r'pip install "timelaw\[pandas\]"') as err:
        require("pandas", "Plan.to_frame()")
    assert isinstance(err.value, MissingDependency) and str(err.value).startswith("Plan.to_frame() needs pandas")
    assert require("json").dumps([1]) == "[1]"  # an installed module is simply returned


def test_to_frame_without_pandas_says_which_extra(without):
    plan = timelaw.optimize(hours=1, profile=A100, max_params=2e7)
    without("pandas")
    with pytest.raises(ImportError, match=r'Plan.to_frame\(\) needs pandas.*pip install "timelaw\[pandas\]"'):
        plan.to_frame()


def test_plot_without_matplotlib_is_one_line_before_the_search(capsys, without, tmp_path, monkeypatch):
    import timelaw.plan as plan

    def no_search(**kwargs):
        raise AssertionError("the search ran although the plot cannot be drawn")

    monkeypatch.setattr(plan, "optimize", no_search)
    without("matplotlib", "matplotlib.pyplot")
    code, err = run_cli(capsys, "optimize", "--hours", "1", "--profile", A100, "--plot", str(tmp_path / "u.png"))
    assert code == 1
    assert_one_clean_line(err)
    assert 'pip install "timelaw[plot]"' in err and "--plot" in err


def test_pilot_and_reference_without_torch(capsys, without, monkeypatch, tmp_path):
    without("torch")
    monkeypatch.delitem(sys.modules, "timelaw.reference", raising=False)
    with pytest.raises(ImportError, match=r'pip install "timelaw\[torch\]"'):
        import timelaw.reference  # noqa: F401
    text = tmp_path / "corpus.txt"
    text.write_text("some text " * 100)
    code, err = run_cli(capsys, "pilot", "--data", str(text), "--budget", "1s", "--out", str(tmp_path / "r.csv"))
    assert code == 1
    assert_one_clean_line(err)
    assert 'pip install "timelaw[torch]"' in err
    assert not (tmp_path / "r.csv").exists()


def test_a_deep_import_of_a_missing_extra_is_one_line_on_the_cli(capsys, monkeypatch):
    """Any subcommand whose code imports an absent extra deep down still ends in one line, exit 1."""
    from timelaw.cli_errors import report_error

    assert report_error("calibrate", ModuleNotFoundError("No module named 'torch'", name="torch")) == 1
    err = capsys.readouterr().err
    assert_one_clean_line(err)
    assert err.startswith("timelaw calibrate needs torch") and 'pip install "timelaw[torch]"' in err
    with pytest.raises(ModuleNotFoundError):  # not an optional extra: a real bug, shown as one
        report_error("fit", ModuleNotFoundError("No module named 'nosuch'", name="nosuch"))


# --- CLI errors in the user's terms ---------------------------------------------------------------------------

def test_heads_that_do_not_divide_d_model_name_the_flag(capsys):
    code, err = run_cli(capsys, "predict", "--d-model", "770", "--layers", "12", "--hours", "4")
    assert code == 2
    assert_one_clean_line(err)
    # the user never typed --heads: the message says the 12 is its default, and which flag to set
    assert "--heads 12" in err and "--d-model (770)" in err and "default" in err and "n_heads" not in err


@pytest.mark.parametrize("argv, flag, value", [
    (("predict", "--d-model", "768", "--layers", "0", "--hours", "4"), "--layers", "0"),
    (("predict", "--d-model", "768", "--layers", "12", "--vocab", "0", "--hours", "4"), "--vocab", "0"),
    (("predict", "--d-model", "768", "--layers", "12", "--seq-len", "-5", "--hours", "4"), "--seq-len", "-5"),
    (("predict", "--d-model", "768", "--layers", "12", "--micro-batch-size", "0", "--hours", "4"),
     "--micro-batch-size", "0"),
])
def test_config_errors_name_flag_and_value(capsys, argv, flag, value):
    code, err = run_cli(capsys, *argv, "--profile", A100)
    assert code == 2
    assert_one_clean_line(err)
    assert f"{flag} {value}:" in err and "greater than 0" in err
    assert not any(field in err for field in ("n_layers", "vocab_size", "seq_len", "micro_batch_size"))


@pytest.mark.parametrize("flag, value, field", [("--level", "2", "ci_level"), ("--bootstrap", "-1", "n_bootstrap")])
def test_fit_errors_name_the_flag(capsys, tmp_path, flag, value, field):
    runs = tmp_path / "runs.csv"
    runs.write_text("N,D,loss\n" + "".join(f"{n},{d},{3 + 1e3 / n ** 0.3 + 1e3 / d ** 0.3}\n"
                                           for n in (1e7, 1e8, 1e9) for d in (1e9, 1e10)))
    code, err = run_cli(capsys, "fit", str(runs), "--out", str(tmp_path / "law.json"), flag, value)
    assert code == 2
    assert_one_clean_line(err)
    assert flag in err and value in err and field not in err


def test_the_python_api_keeps_its_validation_errors():
    with pytest.raises(ValidationError, match="n_heads"):
        timelaw.TransformerConfig(d_model=770, n_layers=12, n_heads=12)
    with pytest.raises(ValidationError, match="n_layers"):
        timelaw.TransformerConfig(d_model=768, n_layers=0, n_heads=12)


def test_reversed_flops_are_refused(capsys):
    code, err = run_cli(capsys, "phases", "--alpha", "1.0", "--beta", "0.7", "--measure", "--flops", "1e12", "1e8")
    assert code == 2
    assert_one_clean_line(err)
    assert "--flops" in err and "LOW < HIGH" in err


# --- pilot runs that can be fitted ----------------------------------------------------------------------------

def test_one_pilot_budget_becomes_a_ladder_of_three():
    from timelaw.training.cli import FIT_MIN_RUNS
    from timelaw.training.run import DEFAULT_SIZES, budget_plan

    assert budget_plan("10s") == [2.5, 5.0, 10.0]
    assert budget_plan("10s", ladder=False) == [10.0]
    assert budget_plan(["1m", "30s", "30s"]) == [30.0, 60.0]  # several budgets: exactly those, once each
    # the default plan gives each default size three token counts, and more runs than the fit's constants
    assert len(DEFAULT_SIZES) * len(budget_plan("10s")) == 12 > FIT_MIN_RUNS == 5


def test_runs_csv_keeps_integers_and_leaves_no_lock_file(tmp_path):
    from timelaw.training.table import append_row, read_rows

    path = tmp_path / "runs.csv"
    append_row(path, {"N": 123200, "D": 1844928, "loss": 3.5})
    append_row(path, {"N": 456, "D": 7, "loss": 3.25})  # rewrites the table: the first row is read back
    assert path.read_text().splitlines() == ["N,D,loss", "123200,1844928,3.5", "456,7,3.25"]
    assert [row["D"] for row in read_rows(path)] == [1844928, 7]
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]


def test_a_fit_that_runs_onto_a_bound_warns_and_gives_no_interval_for_that_constant(capsys):
    from timelaw.laws import DegenerateFitWarning
    from timelaw.laws.cli import format_law

    n_params = np.repeat(np.geomspace(1e6, 1e8, 4), 3)
    tokens = np.tile(np.geomspace(1e8, 1e10, 3), 4) * (1 + 0.01 * np.arange(12))
    loss = 2.0 + 500 / tokens**0.3  # no N term at all: the fit drives alpha onto its upper bound, 10
    with pytest.warns(DegenerateFitWarning, match=r"do not identify alpha \(.*alpha = 10\).*no interval"):
        law = timelaw.fit_loss_law({"N": n_params, "D": tokens, "loss": loss}, n_bootstrap=5, grid=32)
    assert law.params_["alpha"] == pytest.approx(10.0)
    assert "alpha" not in law.ci_ and {"E", "B", "beta"} <= set(law.ci_)
    text = format_law(law)
    assert "nan" not in text
    alpha_line = [line for line in text.splitlines() if line.split()[:1] == ["alpha"]][0]
    assert alpha_line.endswith("(none: not identified by these runs)")


# --- inputs refused with a reason ---------------------------------------------------------------------------

CFG = timelaw.TransformerConfig(d_model=256, n_layers=4, n_heads=4)


@pytest.mark.parametrize("hours", [True, False, "4", [1, True]])
def test_a_budget_must_be_a_number(hours):
    with pytest.raises(ValueError, match="hours must be a number"):
        timelaw.predict_loss(CFG, hours=hours, profile=A100)


def test_wrong_types_are_named_not_attribute_errors():
    with pytest.raises(TypeError, match=r"law must be a preset name .*got int 123"):
        timelaw.predict_loss(CFG, hours=1, profile=A100, law=123)
    with pytest.raises(TypeError, match=r"law must be a preset name"):
        timelaw.optimize(hours=1, profile=A100, law=123)
    with pytest.raises(TypeError, match=r"expected a timelaw.TransformerConfig, got str 'x'"):
        timelaw.count_params("x")
    with pytest.raises(TypeError, match=r"expected a timelaw.TransformerConfig, got NoneType"):
        timelaw.ledger(None)
    with pytest.raises(TypeError, match=r"setup must be a timelaw.TrainSetup or None, got int"):
        timelaw.predict_loss(CFG, hours=1, profile=A100, setup=123)


def test_load_law_takes_a_preset_name_like_predict_loss():
    law = timelaw.load_law("epoch2024")
    assert law.params_ == timelaw.laws.preset("epoch2024").params_
    by_name = timelaw.predict_loss(CFG, hours=1, profile=A100, law="epoch2024").loss
    assert timelaw.predict_loss(CFG, hours=1, profile=A100, law=law).loss == by_name
    with pytest.raises(ValueError, match="nor a preset"):
        timelaw.load_law("no-such-law")


def test_frontier_says_it_needs_two_budgets():
    with pytest.raises(ValueError, match="hours is empty: give at least 2 budgets"):
        timelaw.frontier(hours=[], profile=A100)
    with pytest.raises(ValueError, match="at least 2 different budgets"):
        timelaw.frontier(hours=[1, 1], profile=A100)


def test_two_budgets_print_no_nan_interval():
    result = timelaw.frontier(hours=[1, 4], profile=A100, max_params=3e8)
    assert np.isnan(result.n_exponent.low)  # two points: a slope, but no interval
    assert "nan" not in result.text and "no interval from two budgets" in result.text


def test_a_header_only_runs_file_has_no_rows(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n")
    with pytest.raises(ValueError, match="has no runs"):
        timelaw.fit_loss_law(path)
    code, err = run_cli(capsys, "fit", str(path), "--out", str(tmp_path / "law.json"))
    assert code == 2 and "has no runs" in err and "column" not in err


def test_phases_plot_without_matplotlib_fails_before_printing(capsys, without, tmp_path):
    without("matplotlib", "matplotlib.pyplot")
    code = main(["phases", "--alpha", "1.0", "--beta", "0.7", "--plot", str(tmp_path / "p.png")])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert_one_clean_line(captured.err)
    assert 'pip install "timelaw[plot]"' in captured.err


def test_search_space_sizes_are_checked_at_the_door(capsys):
    code, err = run_cli(capsys, "optimize", "--hours", "1", "--profile", A100, "--seq-len", "512", "0")
    assert code == 2  # was a ZeroDivisionError deep in the search
    assert_one_clean_line(err)
    assert "--seq-len" in err and "512 0" in err and "seq_lens" not in err
    code, err = run_cli(capsys, "optimize", "--hours", "1", "--profile", A100, "--min-steps", "-3")
    assert code == 2 and "--min-steps must be >= 0, got -3" in err


def test_pilot_errors_use_pilot_flags(capsys, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("some text " * 200)
    code, err = run_cli(capsys, "pilot", "--data", str(text), "--budget", "1s", "--batch", "0",
                        "--out", str(tmp_path / "r.csv"))
    assert code == 2
    assert_one_clean_line(err)
    assert err.count("--batch 0: must be greater than 0") == 1 and "global" not in err


def test_a_message_that_begins_with_a_field_begins_with_its_flag(capsys):
    code, err = run_cli(capsys, "predict", "--d-model", "768", "--layers", "12", "--hours", "0", "--profile", A100)
    assert code == 2 and "error: --hours must be finite and > 0, got 0.0" in err
    from timelaw.cli_errors import explain

    assert explain(ValueError("grid (the number of starting points) must be >= 1, got 0"), "fit").startswith("--grid")
    assert explain(ValueError("alpha + beta must be > 1/2"), "phases") == "alpha + beta must be > 1/2"
