"""Training logs into the runs table: values read back against the files, warm-up and evaluation left out
of timing, malformed files named, and fit_loss_law / fit_time_model fitting from the table."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import timelaw
from timelaw import TrainSetup, TransformerConfig
from timelaw.runs import LogFormatError, concat, read_nanogpt_log, read_trainer_state, read_wandb_csv

RUNS = Path(__file__).parent / "data" / "runs"
SETUP = TrainSetup(micro_batch_size=32)  # the logs' 32 sequences x 256 tokens per step
TOKENS_PER_STEP = 32 * 256


def test_trainer_state_rows_follow_the_log_history():
    table = read_trainer_state(RUNS / "hf" / "run-small", setup=SETUP)
    state = json.loads((RUNS / "hf" / "run-small" / "trainer_state.json").read_text())
    logged = [e for e in state["log_history"] if "loss" in e]
    assert len(table) == len(logged) == 40
    assert list(table["step"]) == [e["step"] for e in logged]
    assert list(table["loss"]) == [e["loss"] for e in logged]
    assert list(table["D"]) == [e["step"] * TOKENS_PER_STEP for e in logged]
    final = state["log_history"][-1]
    evals = sum(e["eval_runtime"] for e in state["log_history"] if "eval_runtime" in e)
    assert np.all(table["seconds_per_step"] == pytest.approx((final["train_runtime"] - evals) / state["global_step"]))
    # config.json beside the state: d 128, 4 layers, SwiGLU 384, untied 32000 vocabulary, multi-head
    n_by_hand = 2 * 32000 * 128 + 4 * (4 * 128 * 128 + 3 * 128 * 384 + 2 * 128) + 128
    assert set(table["N"]) == {n_by_hand}
    assert set(table["run"]) == {"run-small"}


def test_three_trainer_states_fit_a_loss_law_and_a_time_model():
    table = concat(read_trainer_state(RUNS / "hf" / name, setup=SETUP)
                   for name in ("run-small", "run-medium", "run-large"))
    assert len(table) == 120 and len(table.time_measurements()) == 3
    law = timelaw.fit_loss_law(table, n_bootstrap=0, grid=8)
    assert set(law.params_) >= {"E", "A", "B", "alpha", "beta"}
    residuals = np.log(table["loss"]) - np.log(law.predict(table["N"], table["D"]))
    assert np.sqrt(np.mean(residuals ** 2)) < 0.03  # the logs' noise is 1%
    model = timelaw.fit_time_model(table, method="flops", profile="a100-sxm-80gb")
    for cfg, setup, seconds in table.time_measurements():
        assert float(model.predict(cfg, setup)) == pytest.approx(seconds, rel=0.25)


def test_wandb_export_times_each_interval_after_warmup():
    cfg = TransformerConfig.from_hf(RUNS / "hf" / "run-medium" / "config.json")
    table = read_wandb_csv(RUNS / "wandb" / "history.csv", cfg, SETUP, loss_column="train/loss")
    assert list(table["step"]) == list(range(20, 401, 20))  # eval-only rows (no train/loss) skipped
    rows = (RUNS / "wandb" / "history.csv").read_text().splitlines()[1:]
    train = [r.split(",") for r in rows if r.split(",")[3]]
    assert table["loss"][0] == float(train[0][3])
    seconds = table["seconds_per_step"]
    assert math.isnan(seconds[0])  # the first point's interval holds start-up and the warm-up steps
    assert seconds[1] == pytest.approx((float(train[1][1]) - float(train[0][1])) / 20)
    assert np.all(np.isfinite(seconds[1:]))
    warm = read_wandb_csv(RUNS / "wandb" / "history.csv", cfg, SETUP, loss_column="train/loss", warmup_steps=40)
    # steps 1-40 are warm-up: the points at 20 and 40 are untimed; 60's interval (steps 41-60) is timed
    assert np.isnan(warm["seconds_per_step"][:2]).all() and np.isfinite(warm["seconds_per_step"][2:]).all()


def test_nanogpt_log_leaves_out_warmup_and_evaluation_iterations():
    table = read_nanogpt_log(RUNS / "nanogpt" / "train.log", RUNS / "nanogpt" / "train_small.py", SETUP)
    assert list(table["step"]) == list(range(10, 301, 10))  # iter 0 trained on no tokens yet
    assert table["D"][0] == 10 * TOKENS_PER_STEP
    lines = [l for l in (RUNS / "nanogpt" / "train.log").read_text().splitlines() if l.startswith("iter 10:")]
    assert table["loss"][0] == float(lines[0].split("loss ")[1].split(",")[0])
    seconds = dict(zip(table["step"], table["seconds_per_step"]))
    assert np.isnan(seconds[100]) and np.isnan(seconds[200]) and np.isnan(seconds[300])  # ran an evaluation
    assert np.isfinite(seconds[10]) and np.isfinite(seconds[110])
    assert seconds[10] == pytest.approx(float(lines[0].split("time ")[1].split("ms")[0]) / 1000)
    assert np.isnan(read_nanogpt_log(RUNS / "nanogpt" / "train.log", RUNS / "nanogpt" / "train_small.py", SETUP,
                                     warmup_steps=20)["seconds_per_step"][0])


def test_malformed_files_name_the_file_the_place_and_what_was_expected(tmp_path):
    cfg = TransformerConfig(d_model=64, n_layers=2, n_heads=2, seq_len=256)
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": [{"step": 10, "loss": 3.0}, {"step": 20, "loss": "high"}]}))
    with pytest.raises(LogFormatError, match=r"trainer_state.json: log_history\[1\].loss: expected a number"):
        read_trainer_state(state, cfg, SETUP)
    state.write_text(json.dumps({"global_step": 3}))
    with pytest.raises(LogFormatError, match="trainer_state.json: expected a JSON object with a 'log_history'"):
        read_trainer_state(state, cfg, SETUP)
    csv = tmp_path / "export.csv"
    csv.write_text("_step,_runtime,loss\n10,1.0,3.0\n20,x,2.9\n")
    with pytest.raises(LogFormatError, match=r"export.csv: line 3, column '_runtime': expected a number"):
        read_wandb_csv(csv, cfg, SETUP, loss_column="loss")
    with pytest.raises(LogFormatError, match=r"export.csv: line 1: expected a column 'train/loss'"):
        read_wandb_csv(csv, cfg, SETUP, loss_column="train/loss")
    log = tmp_path / "train.log"
    log.write_text("iter 0: loss 10.9, time 100.0ms, mfu -100.00%\niter 10: loss ???\n")
    with pytest.raises(LogFormatError, match=r"train.log: line 2: expected 'iter N: loss L, time T ms'"):
        read_nanogpt_log(log, cfg, SETUP)
    with pytest.raises(TypeError, match="TrainSetup"):
        read_nanogpt_log(log, cfg)


def test_a_checkpoint_without_train_runtime_has_no_timing(tmp_path):
    folder = tmp_path / "out" / "checkpoint-500"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps(
        {"global_step": 500, "log_history": [{"step": 250, "loss": 4.0}, {"step": 500, "loss": 3.5}]}))
    cfg = TransformerConfig(d_model=64, n_layers=2, n_heads=2, seq_len=256)
    table = read_trainer_state(tmp_path / "out", cfg, SETUP)
    assert table.columns[:5] == ["run", "step", "N", "D", "loss"] and set(table["run"]) == {"out"}
    assert np.isnan(table["seconds_per_step"]).all()
    with pytest.raises(ValueError, match="no run .* has timed steps"):
        table.time_measurements()


def test_saved_table_is_what_timelaw_fit_reads(tmp_path):
    table = read_trainer_state(RUNS / "hf" / "run-large", setup=SETUP)
    path = table.save(tmp_path / "runs.csv")
    from timelaw.training.table import read_rows, time_measurements

    rows = read_rows(path)
    assert [r["D"] for r in rows] == list(table["D"]) and rows[0]["config"]["d_model"] == 384
    assert time_measurements(rows[:1])[0][2] == pytest.approx(table["seconds_per_step"][0])


def test_cli_fit_from_trainer_state_and_calibrate_from_logs(tmp_path, monkeypatch, capsys):
    from timelaw.cli import main

    monkeypatch.chdir(tmp_path)
    runs = [str(RUNS / "hf" / name) for name in ("run-small", "run-medium", "run-large")]
    assert main(["fit", "--from-trainer-state", *runs, "--global-batch-size", "32", "--bootstrap", "0",
                 "--save-table", "runs.csv", "--out", "law.json"]) == 0
    out = capsys.readouterr().out
    assert "read 120 logged points of 3 run(s)" in out and "chinchilla law" in out
    law = timelaw.load_law(tmp_path / "law.json")
    assert law.predict(1e8, 1e9) > law.params_["E"]
    assert main(["fit", "runs.csv", "--bootstrap", "0", "--out", "again.json"]) == 0  # the saved table
    capsys.readouterr()

    assert main(["calibrate", "--from-logs", *runs, "--global-batch-size", "32", "--base-profile",
                 "a100-sxm-80gb", "--name", "mine", "--out", "mine.json"]) == 0
    assert "fitted to 3 run(s)" in capsys.readouterr().out
    profile = timelaw.load_profile(tmp_path / "mine.json")
    assert profile.name == "mine" and set(profile.coefficients) == {"flops"}
    medium = read_trainer_state(RUNS / "hf" / "run-medium", setup=SETUP)
    cfg, setup, seconds = medium.time_measurements()[0]
    predicted = timelaw.predict_step_time(cfg, setup, profile, method="flops")
    assert predicted == pytest.approx(seconds, rel=0.25)

    assert main(["fit", "--from-trainer-state", runs[0]]) == 2
    assert "--global-batch-size" in capsys.readouterr().err


def test_cli_predict_from_a_config_file(capsys):
    from timelaw.cli import main

    hf = Path(__file__).parent / "data" / "hf"
    assert main(["predict", "--config", str(hf / "gpt2" / "config.json"), "--hours", "4",
                 "--profile", "a100-sxm-80gb"]) == 0
    out = capsys.readouterr().out
    assert "predicted loss" in out and "d_model=768 n_layers=12" in out and "124.4M parameters" in out
    assert main(["predict", "--config", str(hf / "mixtral-8x7b-v0.1"), "--hours", "4"]) == 2
    assert "num_local_experts" in capsys.readouterr().err


def test_from_your_own_runs_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    examples = Path(__file__).resolve().parent.parent / "examples"
    monkeypatch.setenv("TIMELAW_CACHE_DIR", str(tmp_path / "cache"))
    notebook = nbformat.read(examples / "from_your_own_runs.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(examples)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "120 points of 3 run(s)" in text and "chinchilla law" in text
    assert "predicted loss" in text and "my-a100-runs (measured" in text


def test_profile_from_runs_takes_a_system_as_base():
    from timelaw.runs import profile_from_runs

    table = concat(read_trainer_state(RUNS / "hf" / name, setup=SETUP) for name in ("run-small", "run-large"))
    system = timelaw.load_system("dgx-a100-80gb")
    by_profile = profile_from_runs(table, base_profile="a100-sxm-80gb")
    for base in (system, "dgx-a100-80gb", timelaw.list_systems()["dgx-a100-80gb"]):  # object, name, path
        profile = profile_from_runs(table, base_profile=base)
        assert isinstance(profile, timelaw.DeviceProfile) and profile.name == "a100-sxm-80gb-from-logs"
        assert profile.provenance["base_profile"] == system.device.name
        assert (profile.peak_flops, profile.memory_bytes) == (system.device.peak_flops, system.device.memory_bytes)
        assert profile.coefficients == by_profile.coefficients  # the System's device: the same constants
