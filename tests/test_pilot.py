"""Pilot runs: budgets, tokenizers, data split, schedule, the budgeted trainer and the runs table."""
import argparse
import os
import sysconfig
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import timelaw
from timelaw.training import (
    ByteTokenizer, TrainOptions, load_corpus, lr_at, parse_budget, pilot, read_rows, size_config,
    time_measurements, train_for_budget,
)
from timelaw.training import cli as pilot_cli
from timelaw.training import run as pilot_run
from timelaw.training import table as pilot_table
from timelaw.training import trainer as pilot_trainer
from timelaw.config import TrainSetup

FAST = TrainOptions(eval_windows=8, evals=0, probe_steps=2)
SIZES = ["16x1x2", "32x1x2"]
BUDGETS = [0.4, 0.6, 0.8]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as the pilot runs use: on a busy 2-core machine more threads wait on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    """~60 KB of real text: a few standard-library modules, present wherever Python is."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    text = "".join((lib / name).read_text(encoding="utf-8") for name in ("textwrap.py", "bisect.py", "shlex.py"))
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(text_file):
    return load_corpus(text_file)


@pytest.fixture(scope="module")
def pilot_table_path(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pilot") / "runs.csv"
    pilot(corpus, BUDGETS, SIZES, out=out, seq_len=32, micro_batch_size=4, options=FAST, progress=False)
    return out


# --- budgets, tokenizers, data --------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("2m", 120), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400), ("90", 90), (" 2 min ", 120),
    (45, 45), (0.5, 0.5),
])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "abc", "2x", "m", "-1", "0s", 0, float("nan"), None, "3s4"])
def test_parse_budget_rejects(bad):
    with pytest.raises(ValueError, match="budget"):
        parse_budget(bad)


def test_byte_tokenizer_round_trip():
    text = "def f(x):\n    return x ** 2  # é, 漢字, emoji 🙂\n"
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids.max() < tok.vocab_size == 256
    assert tok.decode(ids) == text


def test_bpe_tokenizer_round_trip(text_file):
    pytest.importorskip("tokenizers")
    from timelaw.training import BPETokenizer

    text = text_file.read_text()
    tok = BPETokenizer([text], vocab_size=400)
    ids = tok.encode(text[:2000])
    assert tok.vocab_size <= 400 and ids.max() < tok.vocab_size
    assert len(ids) < 2000  # merges make it shorter than bytes
    assert tok.decode(ids) == text[:2000]
    corpus = load_corpus(text_file, "bpe", bpe_vocab_size=400)
    assert corpus.tokenizer == f"bpe{corpus.vocab_size}" and corpus.train.max() < corpus.vocab_size <= 400


def test_corpus_split_and_unique_tokens(tmp_path, text_file):
    (tmp_path / "a.txt").write_text(text_file.read_text()[:30000])
    (tmp_path / "b.py").write_text(text_file.read_text()[30000:])
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01binary")
    corpus = load_corpus(tmp_path, heldout_fraction=0.1)
    assert corpus.n_files == 2  # the binary file is skipped
    total = corpus.train.size + corpus.heldout.size
    assert total == len(text_file.read_bytes()) + 2  # a newline after each file
    assert 0.05 < corpus.heldout.size / total < 0.15
    assert corpus.unique_tokens == corpus.train.size
    capped = load_corpus(tmp_path, max_train_tokens=5000)
    assert capped.unique_tokens == 5000 and capped.fingerprint != corpus.fingerprint
    assert load_corpus(tmp_path, pattern="*.py").n_files == 1


def test_size_config():
    cfg = size_config("128x4", vocab_size=256, seq_len=64)
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.vocab_size, cfg.seq_len) == (128, 4, 4, 256, 64)
    assert size_config("48x3x3", 256, 64).n_heads == 3
    with pytest.raises(ValueError, match="WIDTHxDEPTH"):
        size_config("big", 256, 64)


def test_schedule_ends_at_final_lr():
    for schedule in ("cosine", "linear"):
        assert lr_at(1.0, 1e-3, schedule, final_fraction=0.1) == pytest.approx(1e-4)
        assert lr_at(0.05, 1e-3, schedule, warmup_fraction=0.05) == pytest.approx(1e-3)
        lrs = [lr_at(p, 1e-3, schedule) for p in np.linspace(0.05, 1, 50)]
        assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lr_at(0.025, 1e-3, warmup_fraction=0.05) == pytest.approx(5e-4)


# --- the budgeted trainer ----------------------------------------------------------------------------------

def test_pilot_table_feeds_the_law_and_time_model(pilot_table_path, corpus):
    rows = read_rows(pilot_table_path)
    assert len(rows) == len(SIZES) * len(BUDGETS)
    for row in rows:
        assert row["D"] == row["steps"] * row["tokens_per_step"] > 0
        assert row["U"] == corpus.unique_tokens
        assert np.isfinite(row["loss"]) and 0 < row["loss"] < 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 6 runs for 5 constants: the fit warns that some are not identified
        law = timelaw.fit_loss_law(pilot_table_path, n_bootstrap=0, grid=4)
    # the law was fitted on these columns: it reproduces the runs' losses from their N and D
    n, d, loss = (np.array([row[k] for row in rows]) for k in ("N", "D", "loss"))
    misfit = np.abs(law.predict(n, d) / loss - 1)  # runs of a second on a shared machine: noisy points
    assert np.mean(misfit) < 0.03 and np.max(misfit) < 0.10, misfit
    measurements = time_measurements(pilot_table_path)
    assert [(c.d_model, c.n_layers) for c, _, _ in measurements] == [(r["d_model"], r["n_layers"]) for r in rows]
    assert [s for _, _, s in measurements] == [r["seconds_per_step"] for r in rows]
    model = timelaw.fit_time_model(measurements, method="memcopy")
    # two coefficients through two sizes' step times: each run within the spread of its size's budgets
    predicted = np.array([float(model.predict(c, s)) for c, s, _ in measurements])
    measured = np.array([t for _, _, t in measurements])
    assert np.max(np.abs(predicted / measured - 1)) < 0.25
    curves = pilot_table.curves_path(pilot_table_path).read_text().splitlines()
    assert len(curves) == len(rows)


def test_runs_end_annealed(pilot_table_path):
    for row in read_rows(pilot_table_path):
        assert row["lr_last"] == pytest.approx(row["lr_final"])
        assert row["steps"] >= 1 and row["train_seconds"] > 0


class FakeClock:
    """A trainer clock that moves only when told: each training step costs `step` seconds, each held-out
    evaluation `evaluation` seconds, so the budget logic is checked exactly, whatever the machine's load."""

    def __init__(self, monkeypatch, step: float, evaluation: float = 0.0):
        import types

        from timelaw import reference

        self.now = 1000.0
        real_step, real_eval = reference.train_step, pilot_trainer.heldout_loss

        def timed_step(*args, **kwargs):
            self.now += step
            return real_step(*args, **kwargs)

        def timed_eval(*args, **kwargs):
            self.now += evaluation
            return real_eval(*args, **kwargs)

        monkeypatch.setattr(pilot_trainer, "time", types.SimpleNamespace(perf_counter=lambda: self.now))
        monkeypatch.setattr(reference, "train_step", timed_step)
        monkeypatch.setattr(pilot_trainer, "heldout_loss", timed_eval)
        monkeypatch.setattr(pilot_trainer, "_probe", lambda *args: step)  # the probe measures one step


def test_training_spends_its_budget_exactly_and_ends_annealed(corpus, monkeypatch):
    FakeClock(monkeypatch, step=0.01)
    cfg = size_config("16x1x2", corpus.vocab_size, 32)
    result = train_for_budget(cfg, TrainSetup(micro_batch_size=4, precision="fp32"), corpus, 0.1,
                              options=TrainOptions(evals=0, eval_windows=8))
    # 0.1 s of 0.01 s steps: the probe predicts 10, the clock agrees, the last one runs at the final LR
    assert (result.predicted_steps, result.steps) == (10, 10)
    assert result.train_seconds == pytest.approx(0.1, rel=1e-9) and result.step_seconds == pytest.approx((0.01,) * 10)
    assert result.lr_last == pytest.approx(result.lr_final)


def test_finished_runs_are_not_repeated(pilot_table_path, corpus, monkeypatch):
    before = pilot_table_path.read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(pilot_run, "train_for_budget", no_training)
    rows = pilot(corpus, BUDGETS, SIZES, out=pilot_table_path, seq_len=32, micro_batch_size=4, options=FAST,
                 progress=False)
    assert len(rows) == len(SIZES) * len(BUDGETS)
    assert pilot_table_path.read_bytes() == before


def test_pilot_gives_torch_back_its_thread_count(pilot_table_path, corpus, tmp_path, monkeypatch):
    import torch

    before = torch.get_num_threads()
    seen = []

    def interrupted_training(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise KeyboardInterrupt

    monkeypatch.setattr(pilot_run, "train_for_budget", interrupted_training)
    with pytest.raises(KeyboardInterrupt):  # interrupted in its first run
        pilot(corpus, [0.4], ["16x1x2"], out=tmp_path / "runs.csv", threads=before + 1, progress=False)
    assert seen == [before + 1] and torch.get_num_threads() == before
    # every run already in the table: nothing trains, and the count is restored all the same
    pilot(corpus, BUDGETS, SIZES, out=pilot_table_path, seq_len=32, micro_batch_size=4, options=FAST,
          threads=before + 1, progress=False)
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_evaluation_is_not_charged_to_the_budget(corpus, monkeypatch):
    FakeClock(monkeypatch, step=0.01, evaluation=0.3)
    cfg = size_config("16x1x2", corpus.vocab_size, 32)
    result = train_for_budget(cfg, TrainSetup(micro_batch_size=4, precision="fp32"), corpus, 0.2,
                              options=TrainOptions(evals=3, eval_windows=8))
    assert result.eval_seconds == pytest.approx(4 * 0.3)  # three mid-run evaluations and the final one ran...
    assert result.train_seconds == pytest.approx(0.2) and result.steps == 20  # ...and training used its budget
    assert result.wall_seconds == pytest.approx(result.train_seconds + result.eval_seconds)
    assert sum(1 for point in result.curve if "heldout_loss" in point) == 4


def test_interrupted_append_leaves_the_table_intact(tmp_path, monkeypatch):
    path = tmp_path / "runs.csv"
    pilot_table.append_row(path, {"N": 1, "D": 2, "loss": 3.0, "config": {"d_model": 8}})
    before = path.read_bytes()

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(pilot_table.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pilot_table.append_row(path, {"N": 4, "D": 5, "loss": 6.0, "extra": "x"})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv"]  # no temporary file, no lock file


def test_jsonl_table_round_trip(tmp_path):
    path = tmp_path / "runs.jsonl"
    for i in range(2):
        pilot_table.append_row(path, {"N": 10 + i, "D": 100, "loss": 2.5, "setup": {"micro_batch_size": 4}})
    rows = read_rows(path)
    assert [r["N"] for r in rows] == [10, 11] and rows[0]["setup"] == {"micro_batch_size": 4}
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        read_rows(tmp_path / "runs.txt")


def test_cli(text_file, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    pilot_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "runs.jsonl"
    args = parser.parse_args(["pilot", "--data", str(text_file), "--budget", "0.3s", "--sizes", "16x1x2",
                              "--seq-len", "32", "--batch", "4", "--out", str(out)])
    assert args.budget == [0.3]
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    # one budget: the default plan also trains 1/4 and 1/2 of it, so one size gives three runs
    assert "16x1" in printed and sorted(r["budget_seconds"] for r in read_rows(out)) == [0.075, 0.15, 0.3]
    assert "a law fit needs more than 5 runs" in printed  # 3 runs: it says so instead of suggesting a fit
    with pytest.raises(SystemExit):
        parser.parse_args(["pilot", "--data", "x", "--budget", "soon"])


def test_one_budget_pilot_then_fit_succeeds(text_file, tmp_path, capsys):
    """The issue's user path, small: `timelaw pilot` with one budget, then the `timelaw fit` it suggests."""
    from timelaw.cli import main

    out = tmp_path / "runs.csv"
    assert main(["pilot", "--data", str(text_file), "--budget", "0.3s", "--sizes", "16x1x2", "32x1x2",
                 "--seq-len", "32", "--batch", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"fit them with: timelaw fit {out}" in printed
    rows = read_rows(out)
    assert len(rows) == 6 and sorted({row["budget_seconds"] for row in rows}) == [0.075, 0.15, 0.3]
    assert all(isinstance(row["N"], int) and isinstance(row["D"], int) for row in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "runs.curves.jsonl"]  # no lock files
    assert main(["fit", str(out), "--bootstrap", "0", "--grid", "8", "--out", str(tmp_path / "law.json")]) == 0
    assert "chinchilla law" in capsys.readouterr().out and (tmp_path / "law.json").exists()


def test_a_run_id_of_only_digits_stays_text(tmp_path):
    # run ids are hex digests; one made only of digits (e.g. 3971374257709843) must not be read back as a number
    from timelaw.training.table import _from_cell

    assert _from_cell("run_id", "3971374257709843") == "3971374257709843"
    assert _from_cell("data_fingerprint", "0123456789") == "0123456789"
    assert _from_cell("steps", "1844928") == 1844928
