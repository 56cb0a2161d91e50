"""Readers of local training logs into the runs table that `fit_loss_law` and `fit_time_model` take.

Three formats, each read from a local file:

- `read_trainer_state`: a Hugging Face Trainer `trainer_state.json` (its `log_history`: loss per logged
  step, evaluation runtimes, and the final entry's `train_runtime`);
- `read_wandb_csv`: a W&B run-history CSV export (`_step`, `_runtime` and a loss column you name);
- `read_nanogpt_log`: nanoGPT's console output (`iter N: loss L, time T ms, ...` lines).

Each reader is given the run's model (a TransformerConfig, or a config.json / model_config.yaml path) and
its TrainSetup (the global batch and context fix the tokens per step). The result is a `RunsTable` with
one row per logged point: `N` (parameters), `D` (tokens trained on so far), `loss`, `step`,
`seconds_per_step` (NaN where the log does not time the point, or the point is warm-up), plus the run's
name and source file. Points at step 0 (no tokens yet) are left out.

`fit_loss_law(table)` reads its N, D, loss columns; `fit_time_model(table.time_measurements())` (or
`fit_time_model(table)`) gets one (config, setup, seconds per step) per run: the median over the run's
timed points. A malformed file raises LogFormatError naming the file, the line or key, and what was
expected.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from timelaw.config import TrainSetup, TransformerConfig

__all__ = ["RunsTable", "LogFormatError", "read_trainer_state", "read_wandb_csv", "read_nanogpt_log",
           "read_log", "read_logs", "concat", "profile_from_runs", "DEFAULT_WARMUP_STEPS"]

DEFAULT_WARMUP_STEPS = 10  # optimizer steps whose times are left out (compilation, allocator, caches)
# d_model and n_layers let fit_loss_law(table, form="shape") see the shape. The batch is tokens_per_step, not
# batch_tokens: fit_loss_law applies the published batch term to a batch_tokens column, which a user should
# choose to do (rename the column) rather than get by default.
COLUMNS = ("run", "step", "N", "D", "loss", "seconds_per_step", "N_non_embedding", "tokens_per_step", "d_model",
           "n_layers", "source")


class LogFormatError(ValueError):
    """A training log that does not read as its format: the message names the file, line or key, and what
    was expected."""


@dataclass(frozen=True)
class RunsTable:
    """One row per logged training point of one or more runs; columns are numpy arrays.

    Behaves like a small DataFrame: `table.columns`, `table["loss"]`, `len(table)`, `table.to_frame()`
    (pandas), `table.rows()`; `fit_loss_law(table)` reads its N, D and loss columns.
    """

    data: dict = field(repr=False)
    runs: dict = field(repr=False)  # run name -> (TransformerConfig, TrainSetup)

    @property
    def columns(self) -> list[str]:
        return list(self.data)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def __len__(self) -> int:
        return len(self.data["loss"])

    def __repr__(self) -> str:
        timed = int(np.sum(np.isfinite(self.data["seconds_per_step"])))
        return f"RunsTable({len(self)} points of {len(self.runs)} run(s): {', '.join(self.runs)}; {timed} timed)"

    def rows(self) -> list[dict]:
        """The rows as dicts, each with the run's config and setup (as the pilot's runs table has them)."""
        out = []
        for i in range(len(self)):
            row = {c: _plain(self.data[c][i]) for c in self.columns}
            cfg, setup = self.runs[row["run"]]
            out.append({**row, "config": cfg.model_dump(), "setup": setup.model_dump()})
        return out

    def to_frame(self):
        """A pandas DataFrame of the rows (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("RunsTable.to_frame needs pandas: pip install pandas") from None
        return pd.DataFrame(self.data)

    def time_measurements(self) -> list[tuple]:
        """(TransformerConfig, TrainSetup, seconds per step) per run with timed points: the median of its
        timed points. What `timelaw.fit_time_model` takes."""
        return list(self.step_times().values())

    def step_times(self) -> dict:
        """Run name -> (TransformerConfig, TrainSetup, median seconds per step) for runs with timed points."""
        out = {}
        for name, (cfg, setup) in self.runs.items():
            mine = (self.data["run"] == name) & np.isfinite(self.data["seconds_per_step"])
            if np.any(mine):
                out[name] = (cfg, setup, float(np.median(self.data["seconds_per_step"][mine])))
        if not out:
            raise ValueError(f"no run in {self!r} has timed steps after warm-up; a time model needs step "
                             f"times (a trainer_state.json from a finished run, _runtime in a W&B export, "
                             f"or nanoGPT's 'time ... ms')")
        return out

    def save(self, path) -> Path:
        """Write the rows as CSV or JSONL (what `timelaw fit` and `timelaw.training.read_rows` read)."""
        path = Path(path)
        rows = self.rows()
        if path.suffix.lower() == ".jsonl":
            text = "".join(json.dumps(r) + "\n" for r in rows)
        elif path.suffix.lower() == ".csv":
            import io

            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else list(COLUMNS))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: json.dumps(v) if k in ("config", "setup") else v for k, v in r.items()})
            text = buffer.getvalue()
        else:
            raise ValueError(f"runs table must end in .csv or .jsonl; got {str(path)!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def concat(tables: Iterable[RunsTable]) -> RunsTable:
    """One table of several runs; run names must be distinct."""
    tables = list(tables)
    if not tables:
        raise ValueError("concat needs at least one RunsTable")
    runs = {}
    for t in tables:
        clash = set(runs) & set(t.runs)
        if clash:
            raise ValueError(f"run name(s) {sorted(clash)} appear in more than one table; pass name= to the readers")
        runs.update(t.runs)
    data = {c: np.concatenate([t.data[c] for t in tables]) for c in COLUMNS}
    return RunsTable(data, runs)


def _model(config, seq_len: Optional[int], where: Path) -> TransformerConfig:
    if isinstance(config, TransformerConfig):
        return config if seq_len is None else config.model_copy(update={"seq_len": seq_len})
    if config is None:  # a Hugging Face output folder holds the model's config.json beside the state
        candidate = where / "config.json"
        if not candidate.exists():
            raise ValueError(f"no model config given for the run in {where} and no config.json there; pass "
                             f"config= (a TransformerConfig or a config file; --config on the command line)")
        config = candidate
    from timelaw.configs import load_model_config

    return load_model_config(config, seq_len=seq_len)


def _table(name: str, source: Path, cfg: TransformerConfig, setup: TrainSetup, steps, losses, seconds,
           tokens=None) -> RunsTable:
    from timelaw.params import count_params

    steps = np.asarray(steps, dtype=np.float64)
    tokens_per_step = setup.global_batch_size * cfg.seq_len
    tokens = steps * tokens_per_step if tokens is None else np.asarray(tokens, dtype=np.float64)
    keep = tokens > 0  # a point before any training has no place in a law of tokens
    counts = count_params(cfg)
    n = int(np.sum(keep))
    data = dict(
        run=np.array([name] * n, dtype=object), step=steps[keep], N=np.full(n, float(counts.total)),
        D=tokens[keep], loss=np.asarray(losses, dtype=np.float64)[keep],
        seconds_per_step=np.asarray(seconds, dtype=np.float64)[keep],
        N_non_embedding=np.full(n, float(counts.non_embedding)), tokens_per_step=np.full(n, float(tokens_per_step)),
        d_model=np.full(n, float(cfg.d_model)), n_layers=np.full(n, float(cfg.n_layers)),
        source=np.array([str(source)] * n, dtype=object),
    )
    if n == 0:
        raise LogFormatError(f"{source}: no logged training loss after step 0")
    return RunsTable(data, {name: (cfg, setup)})


def _number(value, source, where: str, expected: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise LogFormatError(f"{source}: {where}: expected {expected}, got {value!r}") from None
    return float(value)


def _trainer_state_path(path: Path) -> Path:
    """The trainer_state.json of a file, an output folder, or (unfinished run) its latest checkpoint."""
    if path.is_file():
        return path
    if (path / "trainer_state.json").is_file():
        return path / "trainer_state.json"
    checkpoints = sorted(path.glob("checkpoint-*/trainer_state.json"),
                         key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))
    if checkpoints:
        return checkpoints[-1]
    raise ValueError(f"no trainer_state.json in {path} (nor in a checkpoint-* folder under it)")


def read_trainer_state(path, config=None, setup: TrainSetup | None = None, *, seq_len: Optional[int] = None,
                       name: Optional[str] = None) -> RunsTable:
    """A Hugging Face Trainer run: `path` is its trainer_state.json or output folder.

    config: the run's TransformerConfig or a config.json path (default: config.json beside the state).
    setup: the TrainSetup it trained with (its global_batch_size x seq_len are the tokens per step); the
    per-entry `num_input_tokens_seen` is used instead when the Trainer logged it.
    Seconds per step: (train_runtime - time spent in evaluations) / global_step, the same for every row. The
    Trainer logs no per-step times, so this mean includes its warm-up steps; a checkpoint of an unfinished
    run has no train_runtime and gives no timing.
    """
    path = _trainer_state_path(Path(path))
    setup = _need_setup(setup, path)
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise LogFormatError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise LogFormatError(f"{path}: expected a JSON object with a 'log_history' list (a Hugging Face "
                             f"trainer_state.json)")
    cfg = _model(config, seq_len, path.parent)
    steps, losses, tokens, runtime, eval_seconds = [], [], [], None, 0.0
    for i, entry in enumerate(state["log_history"]):
        where = f"log_history[{i}]"
        if not isinstance(entry, dict):
            raise LogFormatError(f"{path}: {where}: expected an object, got {entry!r}")
        if "eval_runtime" in entry:
            eval_seconds += _number(entry["eval_runtime"], path, f"{where}.eval_runtime")
        if "train_runtime" in entry:
            runtime = _number(entry["train_runtime"], path, f"{where}.train_runtime")
        if "loss" in entry:
            if "step" not in entry:
                raise LogFormatError(f"{path}: {where}: a 'loss' entry without 'step'")
            steps.append(_number(entry["step"], path, f"{where}.step"))
            losses.append(_number(entry["loss"], path, f"{where}.loss"))
            tokens.append(entry.get("num_input_tokens_seen"))
    if not losses:
        raise LogFormatError(f"{path}: log_history has no entry with a training 'loss'")
    global_step = _number(state.get("global_step", steps[-1]), path, "global_step")
    seconds = math.nan
    if runtime is not None and global_step > 0:
        seconds = (runtime - eval_seconds) / global_step
    use_tokens = all(t for t in tokens)
    token_values = [_number(t, path, "num_input_tokens_seen") for t in tokens] if use_tokens else None
    return _table(name or _run_name(path), path, cfg, setup, steps, losses, [seconds] * len(steps), token_values)


def _run_name(path: Path) -> str:
    """The run folder's name (the parent of trainer_state.json or of its checkpoint), else the file stem."""
    parent = path.parent
    if parent.name.startswith("checkpoint-"):
        parent = parent.parent
    return parent.name if path.name in ("trainer_state.json",) and parent.name else path.stem


def _need_setup(setup, path) -> TrainSetup:
    if not isinstance(setup, TrainSetup):
        raise TypeError(f"reading {path} needs the run's TrainSetup (setup=TrainSetup(global_batch_size=..., "
                        f"micro_batch_size=...)): the tokens per step come from it")
    return setup


def _untimed(seconds, warm_up: np.ndarray, untimed=()) -> np.ndarray:
    """`seconds` with warm-up points and the points in `untimed` set to NaN."""
    seconds = np.array(seconds, dtype=np.float64)
    seconds[warm_up] = np.nan
    seconds[list(untimed)] = np.nan
    return seconds


def read_wandb_csv(path, config, setup: TrainSetup | None = None, *, loss_column: str,
                   step_column: str = "_step", runtime_column: str = "_runtime",
                   warmup_steps: int = DEFAULT_WARMUP_STEPS, seq_len: Optional[int] = None,
                   name: Optional[str] = None) -> RunsTable:
    """A W&B run-history CSV export: one row per logged step, `loss_column` named by you (e.g. "train/loss").

    Rows without a loss are skipped. Seconds per step of a point: the runtime between it and the previous
    logged point over the steps between them; the first point, and points whose interval starts at or
    before step `warmup_steps` (so they include one of the first `warmup_steps` steps), are untimed (NaN).
    """
    path = Path(path)
    setup = _need_setup(setup, path)
    cfg = _model(config, seq_len, path.parent)
    try:
        handle = path.open(newline="")
    except OSError as err:
        raise ValueError(f"cannot read W&B export {str(path)!r}: {err.strerror or err}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        for column in (step_column, loss_column):
            if column not in header:
                raise LogFormatError(f"{path}: line 1: expected a column {column!r}; the header has {header}")
        steps, losses, runtimes = [], [], []
        for row in reader:
            line = reader.line_num
            loss = (row.get(loss_column) or "").strip()
            if not loss or loss.lower() == "nan":
                continue
            steps.append(_number(row[step_column], path, f"line {line}, column {step_column!r}"))
            losses.append(_number(loss, path, f"line {line}, column {loss_column!r}"))
            value = (row.get(runtime_column) or "").strip() if runtime_column in header else ""
            runtimes.append(_number(value, path, f"line {line}, column {runtime_column!r}") if value else math.nan)
    if not losses:
        raise LogFormatError(f"{path}: no row has a value in the loss column {loss_column!r}")
    order = np.argsort(steps, kind="stable")
    steps, losses, runtimes = (np.asarray(a, dtype=np.float64)[order] for a in (steps, losses, runtimes))
    intervals = np.full(len(steps), np.nan)
    d_steps = np.diff(steps)
    with np.errstate(invalid="ignore", divide="ignore"):
        intervals[1:] = np.where(d_steps > 0, np.diff(runtimes) / d_steps, np.nan)
    previous = np.concatenate([[-np.inf], steps[:-1]])  # a point's interval covers steps previous+1 .. step
    seconds = _untimed(intervals, previous < warmup_steps)
    seconds[~(seconds > 0)] = np.nan
    return _table(name or path.stem, path, cfg, setup, steps, losses, seconds)


_ITER = re.compile(r"^iter (\d+): loss ([-+0-9.eE]+|nan|inf), time ([0-9.eE+-]+) ?ms")
_EVAL = re.compile(r"^step (\d+): train loss")


def read_nanogpt_log(path, config, setup: TrainSetup | None = None, *,
                     warmup_steps: int = DEFAULT_WARMUP_STEPS, seq_len: Optional[int] = None,
                     name: Optional[str] = None) -> RunsTable:
    """nanoGPT's `train.py` output: `iter N: loss L, time T ms, mfu M%` lines (other lines are skipped).

    `time` is the last iteration's wall time; the first `warmup_steps` iterations and those that also ran an
    evaluation (a `step N: train loss ..., val loss ...` line for the same N) are untimed. nanoGPT prints
    the last micro-batch's loss. config: a TransformerConfig, or a nanoGPT config .py / GPTConfig JSON.
    """
    path = Path(path)
    setup = _need_setup(setup, path)
    cfg = _model(config, seq_len, path.parent)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read nanoGPT log {str(path)!r}: {err.strerror or err}") from None
    steps, losses, times, untimed, evaluated = [], [], [], [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if (match := _EVAL.match(line)) is not None:
            evaluated.add(int(match.group(1)))
            continue
        if not line.startswith("iter "):
            continue
        match = _ITER.match(line)
        if match is None:
            raise LogFormatError(f"{path}: line {number}: expected 'iter N: loss L, time T ms', got {line!r}")
        step = int(match.group(1))
        if step in evaluated:
            untimed.append(len(steps))
        steps.append(step)
        losses.append(float(match.group(2)))
        times.append(float(match.group(3)) / 1000.0)
    if not steps:
        raise LogFormatError(f"{path}: no 'iter N: loss L, time T ms' line")
    seconds = _untimed(times, np.asarray(steps) < warmup_steps, untimed)  # iter N is the (N+1)-th step
    return _table(name or path.stem, path, cfg, setup, steps, losses, seconds)


def read_log(path, config=None, setup: TrainSetup | None = None, **options) -> RunsTable:
    """Any of the three by its name: a folder or *.json -> trainer_state, *.csv -> W&B (needs loss_column),
    anything else -> nanoGPT log."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() == ".json":
        options.pop("loss_column", None)
        options.pop("warmup_steps", None)
        return read_trainer_state(p, config, setup, **options)
    if p.suffix.lower() == ".csv":
        if not options.get("loss_column"):
            raise ValueError(f"{p}: a W&B CSV export needs the name of its loss column (loss_column=, "
                             f"--loss-column)")
        return read_wandb_csv(p, config, setup, **options)
    options.pop("loss_column", None)
    return read_nanogpt_log(p, config, setup, **options)


def read_logs(paths: Sequence, config=None, setup: TrainSetup | None = None, **options) -> RunsTable:
    """Several runs' logs (read_log each) in one table."""
    return concat(read_log(p, config, setup, **options) for p in paths)


def profile_from_runs(table: RunsTable, method: str = "flops", base_profile=None, name: Optional[str] = None,
                      data: str = "training logs"):
    """A DeviceProfile whose `method` step-time model is fitted to the runs' logged step times.

    The base profile (a DeviceProfile or a System, by object, name or path; default this machine's
    profile) supplies the device constants the model scales: peaks, bandwidths, the matmul sweep; of a
    System, its device's (the result is a DeviceProfile, without the network). `method="flops"` fits one
    utilisation and needs one timed run; "roofline" needs at least as many distinct runs as it has terms
    (10). The profile is marked measured (its coefficients come from real steps) but is never taken for this
    machine's default.
    """
    from timelaw.devices.profile import DeviceProfile
    from timelaw.devices.system import resolve_device_or_system
    from timelaw.provenance import provenance
    from timelaw.timing import fit_time_model

    timed = table.step_times()
    measurements = list(timed.values())
    base = resolve_device_or_system(base_profile)[0]  # a System's device, else the profile
    model = fit_time_model(measurements, method=method, profile=base)
    errors = [abs(float(model.predict(c, s)) / t - 1) * 100 for c, s, t in measurements]
    return DeviceProfile.from_spec(
        base.spec, coefficients={method: model.coefficients},
        validation={method: {"holdout_mape_percent": None, "holdout_max_ape_percent": None,
                             "fit_mape_percent": float(np.mean(errors)), "n_fit": len(measurements),
                             "n_holdout": 0}},
        measurements={"steps_from_logs": [{"run": run, "config": c.model_dump(), "setup": s.model_dump(),
                                           "seconds": t} for run, (c, s, t) in timed.items()]},
        name=name or f"{base.name}-from-logs", source="measured",
        description=f"{method} step-time model fitted to the logged step times of {len(measurements)} "
                    f"run(s); device constants from {base.name}",
        provenance=provenance(method=f"{method} fitted to logged step times (timelaw.runs)", data=data,
                              source="fitted", base_profile=base.name,
                              device={"name": base.name, "host": "(training logs, not this machine)"}),
    )
