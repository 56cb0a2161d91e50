"""Familiar tools where they fit: short reprs and notebook HTML for results, --json on fit and calibrate,
tqdm progress bars with a plain fallback."""
import io
import json
from pathlib import Path

import pytest

import timelaw
from timelaw.training.progress import Progress

A100 = "a100-sxm-80gb"
RUNS = Path(__file__).parent / "data" / "runs" / "hf"


def test_results_have_short_reprs_and_html():
    cfg = timelaw.TransformerConfig(d_model=256, n_layers=4, n_heads=4)
    prediction = timelaw.predict_loss(cfg, hours=1, profile=A100)
    text = repr(prediction)
    assert text.startswith("Prediction(loss=") and f"{prediction.loss:.4f}" in text and len(text) < 300
    assert prediction._repr_html_().startswith("<pre>") and "predicted loss" in prediction._repr_html_()
    plan = timelaw.optimize(hours=1, profile=A100, max_params=1e8)
    assert repr(plan).startswith(f"Plan(best loss {plan.best.loss:.4f}") and len(repr(plan)) < 300
    assert "searched" in plan._repr_html_()
    front = timelaw.frontier(hours=[0.1, 1], profile=A100, max_params=1e8)
    assert repr(front).startswith("Frontier(2 budgets") and len(repr(front)) < 300
    assert "time frontier" in front._repr_html_()


def test_fit_and_calibrate_from_logs_print_json(tmp_path, monkeypatch, capsys):
    from timelaw.cli import main

    monkeypatch.chdir(tmp_path)
    runs = [str(RUNS / name) for name in ("run-small", "run-medium", "run-large")]
    assert main(["fit", "--from-trainer-state", *runs, "--global-batch-size", "32", "--bootstrap", "0",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["points"] == 120 and out["runs"] == ["run-small", "run-medium", "run-large"]
    assert out["law"]["form"] == "chinchilla" and set(out["law"]["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert json.loads(Path(out["out"]).read_text())["params"] == out["law"]["params"]
    assert main(["calibrate", "--from-logs", *runs, "--global-batch-size", "32", "--base-profile", A100,
                 "--out", "p.json", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "flops" and len(out["runs"]) == 3
    for run in out["runs"]:
        assert run["fitted_seconds"] == pytest.approx(run["measured_seconds"], rel=0.25)


@pytest.mark.parametrize("use_tqdm", [True, False])
def test_progress_draws_with_tqdm_or_the_plain_bar(use_tqdm):
    if use_tqdm:
        pytest.importorskip("tqdm")
    stream = io.StringIO()
    bar = Progress(2, enabled=True, stream=stream, use_tqdm=use_tqdm)
    assert (bar.tqdm is not None) == use_tqdm
    bar.start("64x2x4 for 30 s")
    bar.update(1.0, 3.0)
    bar.done("64x2x4: loss 3.000")
    text = stream.getvalue()
    assert "[1/2] 64x2x4 for 30 s" in text and text.rstrip().endswith("[1/2] 64x2x4: loss 3.000")
    quiet = io.StringIO()
    off = Progress(2, enabled=False, stream=quiet)
    off.start("x"), off.update(0.5, 1.0), off.done("y")
    assert quiet.getvalue() == ""


def test_fit_of_a_runs_table_prints_json(tmp_path, monkeypatch, capsys):
    from timelaw.cli import main
    from timelaw.runs import concat, read_trainer_state

    monkeypatch.chdir(tmp_path)
    setup = timelaw.TrainSetup(micro_batch_size=32)
    concat(read_trainer_state(RUNS / n, setup=setup) for n in ("run-small", "run-large")).save("runs.csv")
    assert main(["fit", "runs.csv", "--bootstrap", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["out"] == "runs.chinchilla.json" and out["law"]["params"]["E"] > 0
