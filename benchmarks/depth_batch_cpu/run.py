"""Best depth and best batch under a wall-clock budget on this CPU: predicted from shorter budgets, then measured.

Issue 11 item 7: pilot runs at one parameter count with 1 to 16 layers, and at one shape with several batch
sizes, all under the same wall-clock budget. From the runs of the shorter budgets only, it fits the
shape-aware loss law with its batch term (form="shape", batch-discounted tokens) and the step-time model,
then asks the planner (`timelaw.predict_loss`) what every depth and every batch reaches in the longest budget
and which is best, and compares with what the longest runs measured. Pass: the predicted best is the
measured best or its neighbour on the grid.

    python benchmarks/depth_batch_cpu/run.py                  # trains (resumable), then analyses
    python benchmarks/depth_batch_cpu/run.py --analyse-only   # re-analyse the runs already in the table
    python benchmarks/depth_batch_cpu/run.py --budgets 5 10 --out /tmp/rehearsal   # a quick rehearsal

Writes benchmarks/results/depth_batch_cpu/runs.csv (one row per run; `timelaw fit` reads it), its loss
curves, predictions.csv (the held-out budget: predicted and measured per point), depth_batch.json and
depth_batch.png.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

import timelaw
from timelaw.config import TrainSetup
from timelaw.laws import CriticalBatch, make_law
from timelaw.laws.batch import KAPLAN_ALPHA_B, KAPLAN_B_STAR_TOKENS
from timelaw.params import count_params
from timelaw.training import load_corpus, pilot, read_rows, size_config, time_measurements
from timelaw.timing import fit_time_model

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[0] / "results" / "depth_batch_cpu"
# Runs of other sizes for a spread of N: benchmarks/wallclock's ample-data runs on a quiet machine (seed 0: one
# run per size and budget, so that they do not outnumber this benchmark's own runs in the fit).
AMPLE = HERE.parents[0] / "results" / "wallclock_seeds" / "ample.csv"
AMPLE_SEED = 0


def _wallclock():
    """benchmarks/wallclock/run.py, for its corpus (the Python stdlib) and its training options: runs trained
    here see the same tokens and the same held-out windows as its ample-data runs, so the two tables mix."""
    spec = importlib.util.spec_from_file_location("wallclock_run", HERE.parent / "wallclock" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WALLCLOCK = _wallclock()
OPTIONS = WALLCLOCK.OPTIONS  # TrainOptions(eval_windows=256, evals=1): the wallclock runs' options
SEQ_LEN = WALLCLOCK.SEQ_LEN  # 128
VOCAB = 256  # byte tokenizer

# One parameter count, 1 to 16 layers: 323k-345k parameters (within +-4% of their mean), head widths 20-38.
DEPTH_SHAPES = ("152x1x4", "112x2x4", "80x4x4", "56x8x2", "40x16x2")
DEPTH_BATCH = 16  # sequences of 128 tokens per step (2,048 tokens), as in benchmarks/wallclock
MID_SHAPE = "80x4x4"  # the batch sweep's shape: the middle of the depth sweep
BATCHES = (4, 8, 16, 32, 64)  # sequences per step: 512 to 8,192 tokens
BUDGETS = (45, 90, 180)  # seconds of training per run; the longest is held out of every fit
# B_* of the critical batch B_crit(L) = B_* / L^(1/alpha_B) is refitted on the shorter budgets' runs: the
# fit's own objective over this grid (Kaplan's alpha_B kept; Kaplan's B_* = 2e8 tokens lies inside it).
B_STAR_GRID = np.geomspace(1e2, 1e10, 25)  # 3 per decade
SCAN_STARTS = 16  # starting points of each fit in the B_* scan (the final fit uses the default 64)
N_BOOTSTRAP = 100


def grid_points() -> list[tuple[str, int]]:
    """(shape, sequences per step) of every point: the depth sweep, then the rest of the batch sweep."""
    points = [(s, DEPTH_BATCH) for s in DEPTH_SHAPES]
    points += [(MID_SHAPE, b) for b in BATCHES if (MID_SHAPE, b) not in points]
    return points


# --- training (two worker processes, one torch thread each) ----------------------------------------------

_CORPUS: dict = {}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    _CORPUS["ample"] = load_corpus(WALLCLOCK.stdlib_files())


def _train(budget: float, shape: str, batch: int, out: str, device: str) -> str:
    [row] = pilot(_CORPUS["ample"], budget, [shape], out=out, seeds=[0], seq_len=SEQ_LEN, micro_batch_size=batch,
                  options=OPTIONS, threads=1, device=device, progress=False, ladder=False)
    return (f"{shape} batch {batch} {budget:g}s: loss {row['loss']:.4f}, {row['steps']} steps, "
            f"load {row['load_start']:.2f} -> {row['load_end']:.2f}")


def train_all(out: Path, budgets, workers: int, device: str) -> None:
    # Longest runs first: the pool then ends with short runs and both workers finish together.
    jobs = sorted(((b, s, m) for b in budgets for s, m in grid_points()), key=lambda j: -j[0])
    with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
        futures = [pool.submit(_train, *job, str(out), device) for job in jobs]
        for done, future in enumerate(as_completed(futures), 1):
            print(f"[{done}/{len(jobs)}] {time.strftime('%H:%M:%S', time.gmtime())} UTC {future.result()}",
                  file=sys.stderr, flush=True)


def running_processes(samples: int = 5) -> float | None:
    """Mean count of runnable processes besides this one, over `samples` readings 1 s apart (Linux), or None."""
    counts = []
    for i in range(samples):
        try:
            stat = Path("/proc/stat").read_text().split("\n")
        except OSError:
            return None
        counts.append(next(int(line.split()[1]) for line in stat if line.startswith("procs_running")) - 1)
        if i + 1 < samples:
            time.sleep(1.0)
    return float(np.mean(counts))


def wait_quiet(max_seconds: float) -> dict:
    """Wait, at most `max_seconds`, until no other process wants a CPU (budgets are wall-clock: a busy
    machine takes steps away from the runs). Returns what it saw."""
    start = time.time()
    while True:
        running = running_processes()
        quiet = running is not None and running <= 0.5
        if quiet or running is None or time.time() - start >= max_seconds:
            return {"waited_seconds": time.time() - start, "quiet": quiet, "other_runnable_processes": running,
                    "load_average_1min": os.getloadavg()[0]}
        time.sleep(4.0)


# --- analysis ----------------------------------------------------------------------------------------------

def batch_of(row) -> int:
    return int(row["tokens_per_step"]) // SEQ_LEN


def point_of(row) -> tuple[str, int]:
    return (f"{int(row['d_model'])}x{int(row['n_layers'])}", batch_of(row))


def law_table(rows) -> dict:
    """What the shape law with its batch term is fitted on."""
    return {"N": [float(r["N"]) for r in rows], "D": [float(r["D"]) for r in rows],
            "loss": [float(r["loss"]) for r in rows], "d_model": [int(r["d_model"]) for r in rows],
            "n_layers": [int(r["n_layers"]) for r in rows], "batch_tokens": [int(r["tokens_per_step"]) for r in rows]}


def fit_shape_law(table: dict, b_star: float | None, n_bootstrap: int, seed: int = 0, grid=None):
    """(law, warnings): the shape law on batch-discounted tokens with B_crit(L) = b_star / L^(1/0.21);
    b_star None: no batch term (the batch column dropped)."""
    law = make_law("shape")
    if b_star is None:
        table = {k: v for k, v in table.items() if k != "batch_tokens"}
    else:
        law.critical_batch_ = CriticalBatch(b_star_tokens=float(b_star), alpha_b=KAPLAN_ALPHA_B,
                                            source=f"B_* refitted on the pilot runs (grid {B_STAR_GRID[0]:.0e} to "
                                                   f"{B_STAR_GRID[-1]:.0e} tokens); alpha_B of Kaplan et al. 2020")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        law.fit(table, n_bootstrap=n_bootstrap, seed=seed, **({} if grid is None else {"grid": grid}))
    return law, sorted({str(w.message) for w in caught})


def refit_b_star(table: dict) -> tuple[float, list]:
    """B_* minimising the law fit's objective (sum of Huber terms on log loss) over B_STAR_GRID."""
    scan = []
    for b_star in B_STAR_GRID:
        law, _ = fit_shape_law(table, b_star, n_bootstrap=0, grid=SCAN_STARTS)
        scan.append({"b_star_tokens": float(b_star), "objective": float(law.provenance_["objective"])})
    best = min(scan, key=lambda s: s["objective"])
    for entry in scan:
        entry["best"] = entry is best
    return best["b_star_tokens"], scan


def predictions(law, step_model, targets: list, budget: float) -> list[dict]:
    """What the planner says each held-out point reaches in `budget`, beside what it measured."""
    out = []
    for r in targets:
        shape, batch = point_of(r)
        cfg = size_config(r["config"], VOCAB, SEQ_LEN)
        setup = TrainSetup(**r["setup"])
        with np.errstate(divide="ignore"):  # bootstrap samples with a constant at 0 (log 0) in the band
            pred = timelaw.predict_loss(cfg, seconds=budget, setup=setup, profile=step_model, law=law)
        at_measured = float(law.predict(r["N"], r["D"], d_model=cfg.d_model, n_layers=cfg.n_layers,
                                        batch_tokens=r["tokens_per_step"], vocab_size=VOCAB))
        out.append({"shape": shape, "batch_sequences": batch, "batch_tokens": int(r["tokens_per_step"]),
                    "N": int(r["N"]), "aspect_ratio": cfg.d_model / cfg.n_layers,
                    "measured_loss": float(r["loss"]), "predicted_loss": float(pred.loss),
                    "predicted_low": float(pred.loss_low), "predicted_high": float(pred.loss_high),
                    "error_percent": (float(pred.loss) / float(r["loss"]) - 1) * 100,
                    "law_only_loss": at_measured, "law_only_error_percent": (at_measured / float(r["loss"]) - 1) * 100,
                    "measured_tokens": int(r["D"]), "predicted_tokens": float(pred.tokens),
                    "measured_steps": int(r["steps"]), "predicted_steps": int(pred.steps),
                    "measured_seconds_per_step": float(r["seconds_per_step"]),
                    "predicted_seconds_per_step": float(pred.seconds_per_step),
                    "load_start": float(r["load_start"]), "load_end": float(r["load_end"]),
                    "notes": list(pred.notes)})
    return out


def best_on_grid(points: list[dict], key: str) -> dict:
    """Predicted and measured best of one sweep (points in grid order), and how far apart on the grid."""
    predicted = int(np.argmin([p["predicted_loss"] for p in points]))
    measured = int(np.argmin([p["measured_loss"] for p in points]))
    losses = sorted(p["measured_loss"] for p in points)
    return {"grid": [p[key] for p in points],
            "predicted_best": points[predicted][key], "measured_best": points[measured][key],
            "grid_steps_apart": abs(predicted - measured), "met": abs(predicted - measured) <= 1,
            "measured_gap_best_to_second_percent": (losses[1] / losses[0] - 1) * 100,
            "measured_loss_at_predicted_best": points[predicted]["measured_loss"],
            "regret_percent": (points[predicted]["measured_loss"] / points[measured]["measured_loss"] - 1) * 100,
            "mae_percent": float(np.mean([abs(p["error_percent"]) for p in points])),
            "mae_law_only_percent": float(np.mean([abs(p["law_only_error_percent"]) for p in points])),
            "band_coverage": float(np.mean([p["predicted_low"] <= p["measured_loss"] <= p["predicted_high"]
                                            for p in points]))}


def sweeps(preds: list[dict]) -> dict:
    by_point = {(p["shape"], p["batch_sequences"]): p for p in preds}
    keys = [(s.rsplit("x", 1)[0], DEPTH_BATCH) for s in DEPTH_SHAPES]
    depth = [by_point[k] for k in keys if k in by_point]
    mid = MID_SHAPE.rsplit("x", 1)[0]
    batch = [by_point[(mid, b)] for b in BATCHES if (mid, b) in by_point]
    for p in depth:
        p["n_layers"] = int(p["shape"].split("x")[1])
    return {"depth": best_on_grid(depth, "n_layers"), "batch": best_on_grid(batch, "batch_sequences")}


def analyse_variant(fit_rows, own_fit_rows, targets, longest, step_model, with_batch: bool = True,
                    b_star: float | None = None, n_bootstrap: int = N_BOOTSTRAP) -> dict:
    table = law_table(fit_rows)
    scan = None
    if with_batch and b_star is None:
        b_star, scan = refit_b_star(table)
    law, caught = fit_shape_law(table, b_star if with_batch else None, n_bootstrap)
    preds = predictions(law, step_model, targets, longest)
    return {"law": {"params": law.params_, "ci95": law.ci_, "warnings": caught,
                    "critical_batch": None if law.critical_batch_ is None else law.critical_batch_.to_dict(),
                    "b_star_scan": scan,
                    "b_star_on_scan_edge": None if scan is None else b_star in (B_STAR_GRID[0], B_STAR_GRID[-1]),
                    "fitted_on": f"{len(fit_rows)} runs ({len(own_fit_rows)} of this benchmark, "
                                 f"{len(fit_rows) - len(own_fit_rows)} from wallclock_seeds/ample.csv seed "
                                 f"{AMPLE_SEED}), budgets "
                                 f"{sorted({float(r['budget_seconds']) for r in fit_rows})} s",
                    "rms_log_residual": float(np.sqrt(np.mean(law.residuals_ ** 2)))},
            "points": preds, **sweeps(preds), "_law": law}


def measured_best_by_budget(rows) -> dict:
    """Per budget, the measured best depth (of the depth sweep) and best batch (of the batch sweep)."""
    mid = MID_SHAPE.rsplit("x", 1)[0]
    depth_points = {s.rsplit("x", 1)[0] for s in DEPTH_SHAPES}
    best = {}
    for budget in sorted({float(r["budget_seconds"]) for r in rows}):
        here = [r for r in rows if r["budget_seconds"] == budget]
        depth = [r for r in here if point_of(r)[0] in depth_points and batch_of(r) == DEPTH_BATCH]
        batch = [r for r in here if point_of(r)[0] == mid]
        best[f"{budget:g}"] = {
            "depth": int(min(depth, key=lambda r: r["loss"])["n_layers"]) if depth else None,
            "batch_sequences": batch_of(min(batch, key=lambda r: r["loss"])) if batch else None,
            "depth_losses": {int(r["n_layers"]): float(r["loss"]) for r in sorted(depth, key=lambda r: r["n_layers"])},
            "batch_losses": {batch_of(r): float(r["loss"]) for r in sorted(batch, key=batch_of)}}
    return best


def analyse(out: Path, extra: dict, use_ample: bool, profile: str, method: str) -> dict:
    rows = read_rows(out / "runs.csv")
    points = set(grid_points())
    rows = [r for r in rows if point_of(r) in {(s.rsplit("x", 1)[0], b) for s, b in points}]
    budgets = sorted({float(r["budget_seconds"]) for r in rows})
    if len(budgets) < 2:
        raise SystemExit(f"need runs at 2 budgets or more in {out / 'runs.csv'}; found {budgets}")
    longest = budgets[-1]
    own_fit = [r for r in rows if r["budget_seconds"] < longest]
    targets = [r for r in rows if r["budget_seconds"] == longest]
    # Extra parameter counts from benchmarks/wallclock (same corpus and held-out windows, batch 16): only runs
    # with budgets below the held-out one, so nothing trained as long as the held-out runs enters a fit.
    ample = []
    if use_ample and AMPLE.exists():
        fingerprints = {r["data_fingerprint"] for r in rows}
        ample = [r for r in read_rows(AMPLE) if r["budget_seconds"] < longest
                 and r["data_fingerprint"] in fingerprints and r["seed"] == AMPLE_SEED]
    fit_rows = own_fit + ample
    step_model = fit_time_model(time_measurements(own_fit), method=method, profile=profile)
    step_errors = [float(step_model.predict(c, s)) / t - 1 for c, s, t in time_measurements(targets)]
    main = analyse_variant(fit_rows, own_fit, targets, longest, step_model)
    variants = {
        "kaplan_b_star_not_refitted": analyse_variant(fit_rows, own_fit, targets, longest, step_model,
                                                      b_star=KAPLAN_B_STAR_TOKENS, n_bootstrap=0),
        "no_batch_term": analyse_variant(fit_rows, own_fit, targets, longest, step_model, with_batch=False,
                                         n_bootstrap=0),
    }
    if ample:
        variants["without_ample_runs"] = analyse_variant(own_fit, own_fit, targets, longest, step_model, n_bootstrap=0)
    write_predictions(out / "predictions.csv", main["points"])
    plot(rows, main, step_model, longest, out / "depth_batch.png")
    loads = np.array([[r["load_start"], r["load_end"]] for r in rows], float)
    report = {**extra, "budgets_seconds": budgets, "held_out_budget_seconds": longest,
              "fit_budgets_seconds": budgets[:-1], "ample_runs_in_fit": len(ample),
              "ample_runs_source": f"{AMPLE.relative_to(HERE.parents[1])} seed {AMPLE_SEED}, budgets < {longest:g} s",
              "depth_shapes": list(DEPTH_SHAPES), "depth_batch_sequences": DEPTH_BATCH, "mid_shape": MID_SHAPE,
              "batch_sequences": list(BATCHES), "seq_len": SEQ_LEN,
              "n_params": {s: count_params(size_config(s, VOCAB, SEQ_LEN)).total for s in DEPTH_SHAPES},
              "time_model": {"method": step_model.name, "profile": profile, "coefficients": step_model.coefficients,
                             "fitted_on": f"{len(own_fit)} runs of this benchmark, budgets {budgets[:-1]} s",
                             "fit_mape_percent": float(np.mean(np.abs(step_model.residuals_)) * 100),
                             "held_out_mape_percent": float(np.mean(np.abs(step_errors)) * 100)},
              "load_average_1min": {"min": float(loads.min()), "mean": float(loads.mean()), "max": float(loads.max()),
                                    "held_out_runs_mean": float(np.mean([[r["load_start"], r["load_end"]]
                                                                         for r in targets]))},
              "measured_best_by_budget": measured_best_by_budget(rows),
              **{k: v for k, v in main.items() if not k.startswith("_")},
              "variants": {name: {"law": {k: v for k, v in res["law"].items() if k != "b_star_scan"},
                                  "depth": res["depth"], "batch": res["batch"]} for name, res in variants.items()},
              "runs": [{k: r[k] for k in ("d_model", "n_layers", "N", "tokens_per_step", "budget_seconds", "steps",
                                          "predicted_steps", "D", "loss", "train_loss", "seconds_per_step",
                                          "train_seconds", "eval_seconds", "probe_seconds", "lr_peak", "lr_last",
                                          "load_start", "load_end")} for r in rows]}
    (out / "depth_batch.json").write_text(json.dumps(report, indent=1, default=float))
    return report


def write_predictions(path: Path, points: list[dict]) -> None:
    columns = [k for k in points[0] if k != "notes"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(points)


def plot(rows, main: dict, step_model, longest: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    law = main["_law"]
    budgets = sorted({float(r["budget_seconds"]) for r in rows})
    colors = dict(zip(budgets, plt.cm.viridis(np.linspace(0, 0.85, len(budgets)))))
    fig, axes = plt.subplots(1, 2, figsize=(12.4, 4.8))
    mid = MID_SHAPE.rsplit("x", 1)[0]
    sweeps_ = (("depth", [(s, DEPTH_BATCH) for s in DEPTH_SHAPES], lambda s, b: int(s.split("x")[1]),
                "layers (at ~330k parameters, batch 16 x 128 tokens)"),
               ("batch", [(MID_SHAPE, b) for b in BATCHES], lambda s, b: b * SEQ_LEN, f"tokens per step (shape {mid})"))
    for ax, (name, pts, xof, xlabel) in zip(axes, sweeps_):
        for budget in budgets:
            held_out = budget == longest
            xs, predicted, measured, mx = [], [], [], []
            for shape, batch in pts:
                cfg = size_config(shape, VOCAB, SEQ_LEN)
                setup = TrainSetup(micro_batch_size=batch, precision="fp32")
                xs.append(xof(shape, batch))
                with np.errstate(divide="ignore"):
                    predicted.append(timelaw.predict_loss(cfg, seconds=budget, setup=setup, profile=step_model,
                                                          law=law).loss)
                run = [r for r in rows
                       if point_of(r) == (shape.rsplit("x", 1)[0], batch) and r["budget_seconds"] == budget]
                if run:
                    mx.append(xof(shape, batch))
                    measured.append(run[0]["loss"])
            label = f"{budget:g} s" + (" (held out: predicted, not fitted)" if held_out else " (fitted)")
            ax.plot(xs, predicted, "--" if held_out else "-", color=colors[budget], lw=1.6 if held_out else 1)
            ax.plot(mx, measured, "o", color=colors[budget], mfc="white" if held_out else colors[budget],
                    ms=7 if held_out else 5, label=label)
        res = main[name]
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("final held-out loss (nats / byte)")
        unit = "layers" if name == "depth" else "sequences"
        ax.set_title(f"best {name} at {longest:g} s: predicted {res['predicted_best']}, measured "
                     f"{res['measured_best']} {unit} ({'pass' if res['met'] else 'FAIL'})")
        ax.legend(fontsize=8)
    fig.suptitle("Depth and batch under a wall-clock budget on this CPU: points measured, lines the planner's "
                 "prediction from the shorter budgets")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def summary(report: dict) -> str:
    critical = report["law"]["critical_batch"]
    lines = [f"held-out budget {report['held_out_budget_seconds']:g} s; fitted on {report['fit_budgets_seconds']} s "
             f"(+{report['ample_runs_in_fit']} wallclock runs); load {report['load_average_1min']}",
             f"law {report['law']['params']}, B_* {critical['b_star_tokens']:.3g} tokens "
             f"(on the scan's edge: {report['law']['b_star_on_scan_edge']}); warnings {report['law']['warnings']}"]
    for name in ("depth", "batch"):
        res = report[name]
        lines.append(f"{name}: predicted best {res['predicted_best']}, measured best {res['measured_best']} "
                     f"({res['grid_steps_apart']} grid steps apart: {'pass' if res['met'] else 'FAIL'}); "
                     f"MAE {res['mae_percent']:.2f}% (law at measured tokens {res['mae_law_only_percent']:.2f}%); "
                     f"regret {res['regret_percent']:.2f}%")
    for p in report["points"]:
        lines.append(f"  {p['shape']:>7} b{p['batch_sequences']:<3} measured {p['measured_loss']:.4f} predicted "
                     f"{p['predicted_loss']:.4f} ({p['error_percent']:+.2f}%), steps {p['measured_steps']} vs "
                     f"{p['predicted_steps']}")
    lines.append(f"time model held-out MAPE {report['time_model']['held_out_mape_percent']:.1f}%")
    for name, res in report["variants"].items():
        lines.append(f"variant {name}: depth {res['depth']['predicted_best']} vs {res['depth']['measured_best']}, "
                     f"batch {res['batch']['predicted_best']} vs {res['batch']['measured_best']}, MAE "
                     f"{res['depth']['mae_percent']:.2f}% / {res['batch']['mae_percent']:.2f}%")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS),
                        help="seconds of training per run; the longest is held out of the fits")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel, one torch thread each")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--method", default="roofline", help="step-time model (default roofline with --profile)")
    parser.add_argument("--profile", default=WALLCLOCK.this_cpu_profile(),
                        help="this host's one-thread CPU profile (`timelaw calibrate --device cpu --threads 1`)")
    parser.add_argument("--no-ample", action="store_true",
                        help="fit on this benchmark's runs only (default: add wallclock_seeds/ample.csv's shorter runs "
                             "for a spread of parameter counts)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--analyse-only", action="store_true", help="skip training; analyse the table")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before training, wait up to SECONDS for the machine to have no other runnable process")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    command = "python benchmarks/depth_batch_cpu/run.py " + " ".join(argv or sys.argv[1:])
    extra = {"command": command, "analysis_command": command,
             "corpus": WALLCLOCK.corpus_facts(WALLCLOCK.stdlib_files()), "tokenizer": "byte",
             "workers": args.workers, "torch_threads_per_run": 1, "device": args.device,
             "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    previous = args.out / "depth_batch.json"
    if args.analyse_only and previous.exists():  # keep what the training pass recorded
        extra.update({k: v for k, v in json.loads(previous.read_text()).items()
                      if k in ("training_started_utc", "training_wall_seconds", "wait_quiet", "command")})
    if not args.analyse_only:
        if args.wait_quiet > 0:
            extra["wait_quiet"] = wait_quiet(args.wait_quiet)
            print(f"wait_quiet: {extra['wait_quiet']}", file=sys.stderr, flush=True)
            start = time.time()
        extra["training_started_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        train_all(args.out / "runs.csv", args.budgets, args.workers, args.device)
        extra["training_wall_seconds"] = time.time() - start
    report = analyse(args.out, extra, not args.no_ample, args.profile, args.method)
    print(summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
