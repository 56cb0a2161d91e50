"""The runs table: one row per finished pilot run, in CSV or JSONL, read directly by fit_loss_law (columns
N, D, loss, U) and, through `time_measurements`, by fit_time_model.

Rows are appended atomically (the file is rewritten to a temporary file and renamed over the old one, under
a lock), so an interrupted pilot or two pilots writing the same table never leave half a row. The loss
curves go to a sidecar `<name>.curves.jsonl`, one line per run.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from dataclasses import asdict
from pathlib import Path

from timelaw._version import __version__
from timelaw.config import TrainSetup, TransformerConfig
from timelaw.files import atomic_write_text, read_records

__all__ = ["run_id", "run_row", "append_row", "read_rows", "finished_run_ids", "time_measurements",
           "curves_path", "append_curve", "FORMATS"]

FORMATS = (".csv", ".jsonl")
NESTED = ("config", "setup")  # JSON objects in JSONL, JSON text in CSV cells


def run_id(cfg: TransformerConfig, setup: TrainSetup, budget_seconds: float, seed: int, data_fingerprint: str,
           options) -> str:
    """What identifies a run: shape, setup, budget, seed, data and training options. Same id, same run."""
    key = dict(config=cfg.model_dump(), setup=setup.model_dump(), budget_seconds=round(budget_seconds, 6),
               seed=seed, data=data_fingerprint, options=asdict(options))
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def run_row(result, run_id_: str, corpus) -> dict:
    """The table row of a finished run: law columns first, then time-model and bookkeeping columns."""
    from timelaw.params import count_params

    params = count_params(result.config)
    return dict(
        N=params.total, D=result.tokens, loss=result.loss, U=result.unique_tokens,
        N_non_embedding=params.non_embedding, budget_seconds=result.budget_seconds, seed=result.seed,
        d_model=result.config.d_model, n_layers=result.config.n_layers,
        steps=result.steps, predicted_steps=result.predicted_steps, epochs=result.epochs,
        seconds_per_step=result.seconds_per_step, median_step_seconds=result.median_step_seconds,
        tokens_per_step=result.setup.global_batch_size * result.config.seq_len,
        train_seconds=result.train_seconds, eval_seconds=result.eval_seconds, probe_seconds=result.probe_seconds,
        wall_seconds=result.wall_seconds, train_loss=result.train_loss,
        lr_peak=result.lr_peak, lr_last=result.lr_last, lr_final=result.lr_final,
        threads=result.threads, load_start=result.load_start, load_end=result.load_end,
        tokenizer=corpus.tokenizer, data=corpus.source, data_fingerprint=corpus.fingerprint[:16],
        config=result.config.model_dump(), setup=result.setup.model_dump(),
        run_id=run_id_, timelaw_version=__version__,
    )


def _check_format(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"runs table must end in {' or '.join(FORMATS)}; got {str(path)!r}")


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on the folder of `path` (POSIX), so parallel pilots append one at a time.

    The folder, not a lock file beside the table: a lock file would be left behind, and the table itself
    cannot be locked, since every append replaces it with a new file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: single writer assumed
        yield
        return
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(folder, fcntl.LOCK_UN)
    finally:
        os.close(folder)


def _csv_text(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(name for row in rows for name in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if k in NESTED else v for k, v in row.items()})
    return buffer.getvalue()


def append_row(path, row: dict) -> None:
    """Append `row` to the table at `path` (created if missing), all or nothing."""
    path = Path(path)
    _check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if path.suffix.lower() == ".csv":
            text = _csv_text(read_rows(path) + [row])  # rewritten whole: new columns widen the header
        else:
            old = path.read_text() if path.exists() else ""
            text = old + ("" if not old or old.endswith("\n") else "\n") + json.dumps(row) + "\n"
        atomic_write_text(path, text)


def read_rows(path) -> list[dict]:
    """Rows of a runs table as dicts (CSV integers become ints, other numbers floats; config/setup dicts)."""
    path = Path(path)
    _check_format(path)
    if not path.exists():
        return []
    rows = read_records(path)
    if path.suffix.lower() == ".jsonl":
        return rows
    return [{k: _from_cell(k, v) for k, v in row.items()} for row in rows]


TEXT_COLUMNS = ("run_id", "data_fingerprint")  # hex digests: one of only digits must not become a number


def _from_cell(name: str, value: str):
    if name in NESTED:
        return json.loads(value)
    if name in TEXT_COLUMNS:
        return value
    for number in (int, float):  # an integer stays one, so rewriting the table keeps `1844928`, not `1844928.0`
        try:
            return number(value)
        except (TypeError, ValueError):
            pass
    return value


def finished_run_ids(path) -> set:
    return {row.get("run_id") for row in read_rows(path)}


def time_measurements(runs) -> list[tuple]:
    """(TransformerConfig, TrainSetup, seconds per step) for each run: what timelaw.fit_time_model takes.

    `runs` is a table path, a list of row dicts or a pandas DataFrame of pilot rows. Seconds per step are
    the mean over each budget (training seconds / steps), which is what a budget buys.
    """
    if isinstance(runs, (str, os.PathLike)):
        rows = read_rows(runs)
    elif hasattr(runs, "to_dict"):
        rows = runs.to_dict("records")
    else:
        rows = list(runs)
    return [(TransformerConfig(**_nested(row["config"])), TrainSetup(**_nested(row["setup"])),
             float(row["seconds_per_step"])) for row in rows]


def _nested(value) -> dict:
    return json.loads(value) if isinstance(value, str) else value


def curves_path(table_path) -> Path:
    path = Path(table_path)
    return path.with_name(f"{path.stem}.curves.jsonl")


def append_curve(table_path, run_id_: str, curve: list) -> None:
    """Append one run's loss curve to the table's sidecar (a single write of one line)."""
    path = curves_path(table_path)
    with _locked(path), open(path, "a") as out:
        out.write(json.dumps({"run_id": run_id_, "curve": curve}) + "\n")
