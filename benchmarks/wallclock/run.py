"""'Time is Not Compute' at this machine's scale: predict the longest wall-clock budget from shorter ones.

Trains the reference model on the Python standard library's own source files (every machine with Python has
them) for several wall-clock budgets and model sizes, in two settings: ample data (no run repeats a token)
and finite data (a small training split that long budgets repeat several times). From the runs of the
shorter budgets only it fits the loss law and the step-time model, predicts every size's final loss at the
longest budget and the optimal size there, and compares with what the longest runs measured. It also fits
the exponent of the time-optimal size N*(t).

    python benchmarks/wallclock/run.py                 # trains (resumable), then analyses
    python benchmarks/wallclock/run.py --analyse-only  # re-analyse the runs already in the tables

Writes benchmarks/results/wallclock/{ample,finite}.csv (one row per run, `timelaw fit` reads them),
their loss curves, wallclock.json and wallclock.png.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import sysconfig
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from timelaw.devices.registry import list_profiles
from timelaw.laws import fit_loss_law
from timelaw.params import count_params
from timelaw.plan.inputs import resolve_law
from timelaw.plan.uncertainty import BAND_LEVEL, law_band_coverage
from timelaw.training import TrainOptions, load_corpus, pilot, read_rows, size_config, time_measurements
from timelaw.plan.frontier import fit_exponent
from timelaw.timing import fit_time_model

RESULTS = Path(__file__).resolve().parents[1] / "results" / "wallclock"
BUDGETS = (30, 60, 120, 240)  # seconds of training per run: 8x span
# 12k to 1.23M parameters (100x). The two smallest were added after a first pass put the measured optimum at
# the small end of the grid: a U-curve needs points on both sides of its minimum.
SIZES = ("16x2x1", "24x2x2", "32x2x2", "48x3x3", "64x4x4", "96x5x3", "128x6x4")
FINITE_TOKENS = 500_000  # training split of the finite-data setting: the longest runs see it 2-20 times
SETTINGS = {"ample": None, "finite": FINITE_TOKENS}
LAW_OF_SETTING = {"ample": "chinchilla", "finite": "data_constrained"}
SEQ_LEN, BATCH = 128, 16
TIME_METHODS = ("memcopy", "flops", "roofline")
PAPER_EXPONENT = (0.60, 0.07)  # Liu 2026, "Time is Not Compute": N*(t) ~ t^0.60 +- 0.07
CHINCHILLA_EXPONENT = 0.5
TARGET_MAE_PERCENT = 3.0
OPTIONS = TrainOptions(eval_windows=256, evals=1)  # one mid-run evaluation: eval time is off-budget but not free


# --- the corpus --------------------------------------------------------------------------------------------

def stdlib_files() -> list[Path]:
    """The standard library's .py files (installed packages excluded), sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py")
                  if p.is_file() and not {"site-packages", "dist-packages"} & set(p.relative_to(root).parts))


def corpus_facts(files: list[Path]) -> dict:
    root = Path(sysconfig.get_paths()["stdlib"])
    names = "\n".join(p.relative_to(root).as_posix() for p in files)
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "stdlib": str(root), "n_files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "file_list_sha256": hashlib.sha256(names.encode()).hexdigest()}


# --- training (two worker processes, one torch thread each) ----------------------------------------------

_CORPORA: dict = {}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    files = stdlib_files()
    for setting, max_tokens in SETTINGS.items():
        _CORPORA[setting] = load_corpus(files, max_train_tokens=max_tokens)


def _train(setting: str, budget: float, size: str, seed: int, out_dir: str, device: str) -> str:
    pilot(_CORPORA[setting], budget, [size], out=Path(out_dir) / f"{setting}.csv", seeds=[seed], seq_len=SEQ_LEN,
          micro_batch_size=BATCH, options=OPTIONS, threads=1, device=device, progress=False,
          ladder=False)  # each budget is its own task: the pilot's B/4, B/2 ladder would train extra runs
    return f"{setting} {size} {budget:g}s seed {seed}"


def train_all(out_dir: Path, settings, budgets, sizes, seeds, workers: int, device: str) -> None:
    # Longest runs first: the pool then ends with short runs and both workers finish together.
    jobs = sorted(((s, b, z, seed) for s in settings for b in budgets for z in sizes for seed in seeds),
                  key=lambda j: -j[1])
    with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
        futures = [pool.submit(_train, *job, str(out_dir), device) for job in jobs]
        for done, future in enumerate(as_completed(futures), 1):
            print(f"[{done}/{len(jobs)}] {future.result()}", file=sys.stderr, flush=True)


# --- analysis ----------------------------------------------------------------------------------------------

def shape_family(sizes) -> list:
    """Shapes between and around the grid's, for predicted lines and N*(t): widths every 8, depth and heads
    interpolated from the grid in log width."""
    grid = [size_config(s, 256, SEQ_LEN) for s in sizes]
    widths = np.array([c.d_model for c in grid], float)
    depths = np.array([c.n_layers for c in grid], float)
    family = []
    for d in range(int(widths.min()), int(widths.max()) + 1, 8):
        layers = max(1, round(float(np.interp(math.log(d), np.log(widths), depths))))
        heads = max(h for h in range(1, max(1, d // 16) + 1) if d % h == 0)
        family.append(size_config(f"{d}x{layers}x{heads}", 256, SEQ_LEN))
    return family


def predicted_tokens(step_model, configs, setup, budget: float) -> np.ndarray:
    seconds = np.array([float(step_model.predict(c, setup)) for c in configs])
    return np.floor(budget / seconds) * setup.global_batch_size * SEQ_LEN, seconds


def family_table(step_model, family, setup) -> tuple[np.ndarray, np.ndarray]:
    """(parameters, predicted seconds per step) of every shape of the family."""
    n = np.array([count_params(c).total for c in family], float)
    return n, np.array([float(step_model.predict(c, setup)) for c in family])


def optimal_n(law, n, seconds, setup, budgets, unique) -> np.ndarray:
    """N*(t): the family member (parameters n, seconds per step) with the lowest predicted loss per budget."""
    optima = []
    for budget in budgets:
        tokens = np.maximum(np.floor(budget / seconds), 1) * setup.global_batch_size * SEQ_LEN
        optima.append(n[np.argmin(law.predict(n, tokens, unique))])
    return np.array(optima)


def measured_optimum(rows) -> float:
    """N* of one budget's measured U-curve: vertex of a parabola in log N through the best point and its two
    neighbours (the best grid point itself when it lies at an end of the grid)."""
    rows = sorted(rows, key=lambda r: r["N"])
    logn, loss = np.log([r["N"] for r in rows]), np.array([r["loss"] for r in rows])
    best = int(np.argmin(loss))
    if best in (0, len(rows) - 1):
        return float(rows[best]["N"])
    a, b, _ = np.polyfit(logn[best - 1:best + 2], loss[best - 1:best + 2], 2)
    return float(np.exp(np.clip(-b / (2 * a), logn[best - 1], logn[best + 1])))


def _exponent_dict(exponent) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in exponent.to_dict().items()}


def step_time_report(fit_rows, target_rows, profile=None) -> dict:
    """Each step-time model fitted on the shorter budgets, scored on the longest budget's measured steps."""
    report = {}
    for method in TIME_METHODS:
        model = fit_time_model(time_measurements(fit_rows), method=method, profile=profile)
        errors = [float(model.predict(c, s)) / t - 1 for c, s, t in time_measurements(target_rows)]
        report[method] = {"mape_percent": float(np.mean(np.abs(errors)) * 100),
                          "fit_residuals_percent": [float(r) * 100 for r in model.residuals_],
                          "coefficients": model.coefficients}
    return report


def fit_models(rows: list, form: str, method: str, seed: int = 0, profile=None):
    """(loss law, step-time model, fit warnings) fitted on `rows`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        law = fit_loss_law({k: [r[k] for r in rows] for k in ("N", "D", "loss", "U")}, form=form,
                           n_bootstrap=100, seed=seed)
    step_model = fit_time_model(time_measurements(rows), method=method, profile=profile)
    return law, step_model, [str(w.message) for w in caught]


def describe_fit(law, step_model, rows, caught) -> dict:
    budgets = sorted({float(r["budget_seconds"]) for r in rows})
    return {"law": {"form": law.form, "params": law.params_, "ci95": law.ci_,
                    "fitted_on": f"{len(rows)} runs with budgets {budgets} s",
                    "rms_log_residual": float(np.sqrt(np.mean(law.residuals_ ** 2))), "warnings": caught},
            "time_model": {"method": step_model.name, "coefficients": step_model.coefficients,
                           "fit_mape_percent": float(np.mean(np.abs(step_model.residuals_)) * 100)}}


AVERAGED = ("loss", "D", "seconds_per_step", "epochs", "steps", "train_loss")


def mean_over_seeds(rows: list) -> list:
    """One row per (shape, budget), its measured quantities averaged over the seeds, the single-seed losses
    kept in `seed_losses`; sorted by budget, then N."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((int(r["d_model"]), int(r["n_layers"]), float(r["budget_seconds"])), []).append(r)
    means = []
    for runs in groups.values():
        runs = sorted(runs, key=lambda r: r["seed"])
        means.append({**runs[0], **{k: float(np.mean([r[k] for r in runs])) for k in AVERAGED},
                      "seeds": [int(r["seed"]) for r in runs], "seed_losses": [float(r["loss"]) for r in runs]})
    return sorted(means, key=lambda r: (r["budget_seconds"], r["N"]))


def seed_noise(means: list) -> dict:
    """How far single seeds sit from their mean (rows from mean_over_seeds): the error a perfect predictor of
    the mean would still show against one seed's measurement."""
    if min(len(r["seeds"]) for r in means) < 2:
        return {"seeds_per_size": 1, "note": "one seed per size: no measure of seed noise"}
    deviation = [abs(loss / r["loss"] - 1) * 100 for r in means for loss in r["seed_losses"]]
    spread = [(max(r["seed_losses"]) - min(r["seed_losses"])) / r["loss"] * 100 for r in means]
    return {"seeds_per_size": min(len(r["seeds"]) for r in means),
            "mean_abs_deviation_from_seed_mean_percent": float(np.mean(deviation)),
            "max_minus_min_over_mean_percent": {"mean": float(np.mean(spread)), "max": float(np.max(spread))}}


def band_coverage(law, target: list) -> dict:
    """Share of the longest budget's single runs inside the planner's 90% law band, taken at the tokens each
    run trained on: the bootstrap band alone, and with the fitted runs' scatter added (what the planner uses)."""
    unique = float(target[0]["U"])
    n, tokens, measured = ([r[k] for r in target] for k in ("N", "D", "loss"))
    bootstrap_only = type(law)(law.params_, samples=law.samples_)  # the same law without its residuals
    coverage = {name: law_band_coverage(resolve_law(variant, unique), n, tokens, measured, unique)
                for name, variant in (("bootstrap_only", bootstrap_only), ("bootstrap_and_run_scatter", law))}
    return {**coverage, "level": BAND_LEVEL, "runs": len(target)}


def predict_longest(law, step_model, target: list) -> dict:
    """Predicted vs measured final loss of every size at the longest budget (measured = mean over seeds), the
    MAE, the MAE against each seed alone, and the optimum."""
    means = mean_over_seeds(target)
    configs = [cfg for cfg, _, _ in time_measurements(means)]
    setup = time_measurements(means[:1])[0][1]
    n = np.array([r["N"] for r in means], float)
    tokens, seconds = predicted_tokens(step_model, configs, setup, float(means[0]["budget_seconds"]))
    unique = float(means[0]["U"])
    predicted = law.predict(n, tokens, unique)
    measured = np.array([r["loss"] for r in means])
    errors = (predicted - measured) / measured * 100
    # The law alone, given the tokens the runs really trained on: separates the law's error from the
    # step-time model's (which carries the shared machine's changing speed).
    law_only = (law.predict(n, np.array([r["D"] for r in means], float), unique) - measured) / measured * 100
    best_pred, best_meas = int(np.argmin(predicted)), int(np.argmin(measured))
    shape = [f"{c.d_model}x{c.n_layers}" for c in configs]
    by_seed = {}
    for seed in sorted({s for r in means for s in r["seeds"]}):
        losses = np.array([r["seed_losses"][r["seeds"].index(seed)] for r in means])
        by_seed[str(seed)] = {"mae_percent": float(np.mean(np.abs(predicted / losses - 1)) * 100),
                              "measured_best_shape": shape[int(np.argmin(losses))]}
    return {
        "per_size": [{"shape": z, "N": int(r["N"]), "measured_loss": float(m), "seed_losses": r["seed_losses"],
                      "predicted_loss": float(p), "error_percent": float(e), "measured_tokens": int(r["D"]),
                      "predicted_tokens": int(t), "measured_seconds_per_step": float(r["seconds_per_step"]),
                      "predicted_seconds_per_step": float(s), "epochs": float(r["epochs"]),
                      "law_only_error_percent": float(lo)}
                     for z, r, m, p, e, t, s, lo in zip(shape, means, measured, predicted, errors, tokens, seconds,
                                                        law_only)],
        "mae_percent": float(np.mean(np.abs(errors))),
        "mae_law_only_percent": float(np.mean(np.abs(law_only))),
        "mae_target_percent": TARGET_MAE_PERCENT,
        "mae_met": bool(np.mean(np.abs(errors)) <= TARGET_MAE_PERCENT),
        "mae_against_each_seed": by_seed,
        "seed_noise": seed_noise(means),
        "law_band_coverage": band_coverage(law, target),
        "optimum": {"predicted_shape": shape[best_pred], "predicted_N": int(n[best_pred]),
                    "measured_shape": shape[best_meas], "measured_N": int(n[best_meas]),
                    "grid_steps_apart": abs(best_pred - best_meas), "met": abs(best_pred - best_meas) <= 1},
    }


def n_star_exponents(law, step_model, rows: list, family) -> dict:
    """The exponent of N*(t): from the fitted law and step-time model, and from the measured U-curves."""
    budgets = sorted({r["budget_seconds"] for r in rows})
    setup, unique = time_measurements(rows[:1])[0][1], float(rows[0]["U"])
    grid_budgets = np.geomspace(budgets[0], budgets[-1], 9)
    family_n, family_seconds = family_table(step_model, family, setup)
    model = fit_exponent(grid_budgets, optimal_n(law, family_n, family_seconds, setup, grid_budgets, unique))
    boot = _bootstrap_exponents(law, family_n, family_seconds, setup, grid_budgets, unique)
    means = mean_over_seeds(rows)
    vertex = [measured_optimum([r for r in means if r["budget_seconds"] == b]) for b in budgets]
    return {
        "model": {**_exponent_dict(model),
                  "bootstrap_95": [float(np.nanpercentile(boot, 2.5)), float(np.nanpercentile(boot, 97.5))],
                  "how": "slope of log N*(t) on log t, N*(t) the best of a dense shape family under the law and "
                         "step-time model fitted on all runs, 9 budgets from the shortest to the longest; "
                         "bootstrap_95 repeats it over the law's bootstrap samples"},
        "measured": {**_exponent_dict(fit_exponent(budgets, vertex)),
                     "n_star": dict(zip([f"{b:g}" for b in budgets], vertex)),
                     "how": "N*(t) per budget from a parabola in log N through the measured best size and its "
                            "neighbours (losses averaged over seeds); slope over all budgets with a t-interval"},
        "paper": {"value": PAPER_EXPONENT[0], "plus_minus": PAPER_EXPONENT[1], "source": "Liu 2026"},
        "chinchilla": CHINCHILLA_EXPONENT,
    }


def analyse_setting(rows: list, form: str, method: str, family, profile=None) -> dict:
    """Fit on the shorter budgets, predict the longest; the N*(t) exponent from all runs."""
    longest = max(r["budget_seconds"] for r in rows)
    fit_rows = [r for r in rows if r["budget_seconds"] < longest]
    target = sorted((r for r in rows if r["budget_seconds"] == longest), key=lambda r: r["N"])
    law, step_model, caught = fit_models(fit_rows, form, method, profile=profile)
    result = {**describe_fit(law, step_model, fit_rows, caught), "longest_budget_seconds": float(longest),
              "unique_tokens": float(target[0]["U"]), **predict_longest(law, step_model, target)}
    result["time_model"]["all_methods_at_longest_budget"] = step_time_report(fit_rows, target, profile)
    all_law, all_step_model, all_caught = fit_models(rows, form, method, profile=profile)
    result["n_star_exponent"] = n_star_exponents(all_law, all_step_model, rows, family)
    result["fit_on_all_runs"] = describe_fit(all_law, all_step_model, rows, all_caught)
    result.update(_law=law, _step_model=step_model, _setup=time_measurements(target[:1])[0][1])
    return result


def _bootstrap_exponents(law, n, seconds, setup, budgets, unique) -> np.ndarray:
    """The N*(t) slope under each bootstrap sample of the law (samples with a constant at 0 are skipped)."""
    if law.samples_ is None:
        return np.array([np.nan])
    slopes = []
    for sample in law.samples_:
        try:
            refit = type(law)(dict(zip(law.param_names, sample)))
        except ValueError:
            continue
        with np.errstate(all="ignore"):
            optima = optimal_n(refit, n, seconds, setup, budgets, unique)
        slopes.append(np.polyfit(np.log(budgets), np.log(optima), 1)[0])
    return np.array(slopes)


def plot(results: dict, tables: dict, family, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.2 * len(results), 4.8), squeeze=False)
    family_n = np.array([count_params(c).total for c in family], float)
    for ax, (setting, res) in zip(axes[0], results.items()):
        rows = tables[setting]
        budgets = sorted({r["budget_seconds"] for r in rows})
        colors = plt.cm.viridis(np.linspace(0, 0.85, len(budgets)))
        means = mean_over_seeds(rows)
        for budget, color in zip(budgets, colors):
            runs = [r for r in means if r["budget_seconds"] == budget]
            held_out = budget == budgets[-1]
            tokens, _ = predicted_tokens(res["_step_model"], family, res["_setup"], budget)
            line = res["_law"].predict(family_n, np.maximum(tokens, 1), res["unique_tokens"])
            label = f"{budget:g} s" + (" (predicted, not fitted)" if held_out else "")
            ax.plot(family_n, line, "--" if held_out else "-", color=color, lw=1.6 if held_out else 1)
            ax.plot([r["N"] for r in runs], [r["loss"] for r in runs], "o", color=color, label=label,
                    mfc="white" if held_out else color, ms=7 if held_out else 5)
            if max(len(r["seeds"]) for r in runs) > 1:  # the single seeds behind each mean
                ax.plot([r["N"] for r in runs for _ in r["seed_losses"]],
                        [loss for r in runs for loss in r["seed_losses"]], "_", color=color, ms=8, alpha=0.7)
        ax.set_xscale("log")
        ax.set_xlabel("parameters N")
        ax.set_ylabel("final held-out loss (nats / byte)")
        ax.set_title(f"{setting} data ({res['law']['form']} law): MAE {res['mae_percent']:.1f}% at "
                     f"{res['longest_budget_seconds']:g} s")
        ax.legend(fontsize=8)
    fig.suptitle("Wall-clock U-curves on CPU: points measured (mean over seeds, dashes single seeds), "
                 "lines predicted from the shorter budgets")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def step_time_spread(rows) -> dict:
    """Per shape, the slowest over the fastest mean step time across its budgets: the machine's drift."""
    spread = {}
    for shape in sorted({(int(r["d_model"]), int(r["n_layers"])) for r in rows}):
        seconds = [r["seconds_per_step"] for r in rows if (int(r["d_model"]), int(r["n_layers"])) == shape]
        spread[f"{shape[0]}x{shape[1]}"] = float(max(seconds) / min(seconds))
    return spread


def _load_summary(rows) -> dict:
    loads = np.array([[r["load_start"], r["load_end"]] for r in rows], float)
    return {"min": float(loads.min()), "mean": float(loads.mean()), "max": float(loads.max())}


def analyse(out_dir: Path, method: str, sizes, extra: dict, profile=None) -> dict:
    family = shape_family(sizes)
    tables = {s: read_rows(out_dir / f"{s}.csv") for s in SETTINGS if (out_dir / f"{s}.csv").exists()}
    results = {s: analyse_setting(rows, LAW_OF_SETTING[s], method, family, profile)
               for s, rows in tables.items()}
    if "finite" in tables:  # what ignoring repetition would have predicted
        plain = analyse_setting(tables["finite"], "chinchilla", method, family, profile)
        results["finite"]["chinchilla_ignoring_repetition"] = {
            "mae_percent": plain["mae_percent"], "optimum": plain["optimum"]}
    plot(results, tables, family, out_dir / "wallclock.png")
    report = {**extra, "settings": {}}
    for setting, res in results.items():
        report["settings"][setting] = {k: v for k, v in res.items() if not k.startswith("_")}
        report["settings"][setting]["seeds"] = sorted({int(r["seed"]) for r in tables[setting]})
        report["settings"][setting]["load_average_1min"] = _load_summary(tables[setting])
        report["settings"][setting]["step_time_slowest_over_fastest"] = step_time_spread(tables[setting])
        report["settings"][setting]["runs"] = [
            {k: r[k] for k in ("d_model", "n_layers", "N", "budget_seconds", "steps", "predicted_steps", "D",
                               "epochs", "loss", "train_loss", "seconds_per_step", "train_seconds",
                               "eval_seconds", "probe_seconds", "lr_last", "lr_final", "load_start", "load_end")}
            for r in tables[setting]]
    (out_dir / "wallclock.json").write_text(json.dumps(report, indent=1, default=float))
    return report


def summary(report: dict) -> str:
    lines = []
    for setting, res in report["settings"].items():
        opt, exp = res["optimum"], res["n_star_exponent"]
        per_seed = ", ".join(f"seed {k}: {v['mae_percent']:.2f}%" for k, v in res["mae_against_each_seed"].items())
        noise = res["seed_noise"].get("mean_abs_deviation_from_seed_mean_percent")
        lines.append(f"{setting}: MAE {res['mae_percent']:.2f}% (target <= 3%; law alone, at the measured "
                     f"tokens: {res['mae_law_only_percent']:.2f}%; against single seeds {per_seed}"
                     + (f"; seed noise {noise:.2f}%" if noise is not None else "") + "), optimum predicted "
                     f"{opt['predicted_shape']} vs measured {opt['measured_shape']}; N*(t) exponent "
                     f"{exp['model']['value']:.2f} [{exp['model']['bootstrap_95'][0]:.2f}, "
                     f"{exp['model']['bootstrap_95'][1]:.2f}] (model), {exp['measured']['value']:.2f} (measured); "
                     f"paper 0.60 +- 0.07, Chinchilla 0.5")
    return "\n".join(lines)


def this_cpu_profile() -> str:
    """The name `timelaw calibrate --device cpu --threads 1` gives this host's profile."""
    return f"cpu-{os.cpu_count()}core-{platform.machine()}-1thread"


def default_cpu_profile(parser, method: str, device: str) -> str | None:
    """This host's measured one-thread CPU profile. The roofline needs measured constants: a missing profile is
    an error that says how to make one, not a silent fall back to a GPU spec sheet."""
    if method == "memcopy":
        return None  # memcopy is time = a x bytes + b: no profile constant enters it
    if device != "cpu":
        parser.error(f"--profile: required with --device {device}: the GPU's measured profile, as written by "
                     "`OUT=out bash calibration/gpu_session.sh run` (or use --method memcopy)")
    name = this_cpu_profile()
    if name not in list_profiles():
        parser.error(f"--profile: no measured profile {name!r} for this host; run `timelaw calibrate --device cpu "
                     f"--threads 1` (add --quick for a 3-minute version) or pass --profile NAME, or use --method memcopy")
    return name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS), help="seconds per run")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="WIDTHxDEPTHxHEADS shapes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="training seeds per size and budget (initialisation and batch order)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        help="which settings to train (analysis covers every table in --out)")
    parser.add_argument("--workers", type=int, default=2,
                        help="runs in parallel, one torch thread each (use 1 on a single GPU)")
    parser.add_argument("--device", default="cpu", help="where the runs train: cpu (default) or cuda")
    parser.add_argument("--method", choices=TIME_METHODS, default="roofline",
                        help="step-time model used for the predictions (default: roofline, with --profile)")
    parser.add_argument("--profile", default=None,
                        help="device profile whose constants (matmul sweep, bandwidths) the step-time models "
                             f"are fitted with (default: {this_cpu_profile()}, this host's one-thread CPU "
                             "profile, as `timelaw calibrate --device cpu --threads 1` names it)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--analyse-only", action="store_true", help="skip training; analyse the tables")
    args = parser.parse_args(argv)
    if args.profile is None:
        args.profile = default_cpu_profile(parser, args.method, args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    files = stdlib_files()
    start = time.time()
    extra = {"corpus": corpus_facts(files), "budgets_seconds": args.budgets, "sizes": args.sizes,
             "finite_train_tokens": FINITE_TOKENS, "seq_len": SEQ_LEN, "batch": BATCH,
             "tokenizer": "byte", "workers": args.workers, "torch_threads_per_run": 1, "device": args.device,
             "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
             "command": "python benchmarks/wallclock/run.py " + " ".join(argv or sys.argv[1:])}
    if not args.analyse_only:
        train_all(args.out, args.settings, args.budgets, args.sizes, args.seeds, args.workers, args.device)
        extra["training_wall_seconds"] = time.time() - start
    extra["profile"] = args.profile
    extra["method"] = args.method
    report = analyse(args.out, args.method, args.sizes, extra, args.profile)
    print(summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
