"""Errors a user can act on: missing extras in one line, CLI errors in flags, clear refusals of bad input."""
from __future__ import annotations

import sys

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
