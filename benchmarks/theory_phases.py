"""Measured vs formula compute-optimal exponents of PLRF in every phase, and the checks behind them.

    python benchmarks/theory_phases.py            # ~3-5 minutes on 2 cores
    python benchmarks/theory_phases.py --quick    # the small-budget window only

Writes benchmarks/results/theory_phases.json, theory_phase_diagram.png and theory_convergence.png.
docs/theory.md quotes these numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from timelaw.provenance import provenance
from timelaw.theory import compute_optimal, loss_curve, phase, phase_diagram, simulate

RESULTS = Path(__file__).resolve().parent / "results"

# One point per phase (two for Ib: the paper proves it for alpha > 1/4 and conjectures it below).
POINTS = [(0.75, 0.25), (0.4, 0.3), (0.2, 0.45), (0.2, 1.0), (1.25, 0.75), (1.0, 2.0), (0.7, 0.7),
          (0.4, 1.0), (0.27, 1.0)]
# Budget windows f = d x batch x steps; the last holds the largest budgets, where slow corrections fade.
WINDOWS = {"small": (1e4, 1e7), "medium": (1e7, 1e12), "large": (1e14, 1e22)}


def exponents(alpha: float, beta: float, window: tuple[float, float]) -> dict:
    low, high = window
    flops = np.geomspace(low, high, int(round(2 * math.log10(high / low))) + 1)
    start = time.perf_counter()
    result = compute_optimal(alpha, beta, flops)
    ok = ~np.isnan(result.d_opt)
    local = -np.diff(np.log(result.loss_opt[ok])) / np.diff(np.log(flops[ok]))
    return {
        "flops": [low, high], "xi": round(result.xi, 4), "eta": round(result.eta, 4),
        "xi_stderr": round(result.xi_stderr, 4), "eta_stderr": round(result.eta_stderr, 4),
        "eta_local_first_last": [round(float(local[0]), 4), round(float(local[-1]), 4)],
        "local_eta": [round(float(x), 4) for x in local], "local_f": flops[ok][1:].tolist(),
        "seconds": round(time.perf_counter() - start, 2),
    }


def sgd_agreement() -> list[dict]:
    """Max |z| of (mean SGD loss - Volterra given the same W) over every step."""
    rows = []
    for alpha, beta, batch in [(1.0, 1.0, 1), (0.4, 1.0, 4), (0.75, 0.25, 2)]:
        run = simulate(alpha, beta, 12, 48, 300, batch=batch, seeds=400, seed=1)
        curve = loss_curve(alpha, beta, 12, 48, 300, batch=batch, w=run.w)
        z = (run.mean[1:] - curve.loss[1:]) / run.sem[1:]
        rows.append({"alpha": alpha, "beta": beta, "batch": batch, "d": 12, "v": 48, "steps": 300,
                     "seeds": 400, "max_abs_z": round(float(np.max(np.abs(z))), 2),
                     "mean_z": round(float(np.mean(z)), 2)})
    return rows


def rmt_agreement(samples: int = 48) -> list[dict]:
    """Random-matrix limit vs the mean over sampled W of the exact Volterra solution (10^5 steps)."""
    rows = []
    for d in (64, 128, 256):
        for alpha, beta in [(1.0, 1.0), (0.4, 1.0), (0.7, 0.3)]:
            v, steps = 4 * d, 10**5
            limit = loss_curve(alpha, beta, d, v, steps)
            rng = np.random.default_rng(7)
            losses = [loss_curve(alpha, beta, d, v, steps, w=rng.standard_normal((v, d)) / math.sqrt(d)).loss
                      for _ in range(samples)]
            mean, sem = np.mean(losses, axis=0), np.std(losses, axis=0, ddof=1) / math.sqrt(samples)
            z = (limit.loss - mean) / sem
            rows.append({"alpha": alpha, "beta": beta, "d": d, "v": v, "samples": samples,
                         "max_rel_dev": round(float(np.max(np.abs(limit.loss / mean - 1))), 4),
                         "final_ratio": round(float(limit.loss[-1] / mean[-1]), 4),
                         "final_rel_sem": round(float(sem[-1] / mean[-1]), 4),
                         "max_abs_z": round(float(np.max(np.abs(z[1:]))), 2)})
    return rows


def resolution_check() -> list[dict]:
    """Exponents with the quadrature's spectral resolution halved (0.04 -> 0.02) and the time blocks
    shrunk (rel_step 0.02 -> 0.005): the numerical settings should not move them."""
    from timelaw.theory import optimal

    rows = []
    for alpha, beta in [(0.7, 0.7), (0.4, 1.0), (0.75, 0.25)]:
        flops = np.geomspace(1e7, 1e11, 9)
        row = {"alpha": alpha, "beta": beta, "flops": [1e7, 1e11]}
        for name, eps, rel in [("default", 0.04, 0.02), ("eps_0.02", 0.02, 0.02), ("rel_step_0.005", 0.04, 0.005)]:
            optimal.SPECTRAL_EPS, optimal.REL_STEP = eps, rel
            result = compute_optimal(alpha, beta, flops)
            row[name] = {"xi": round(result.xi, 5), "eta": round(result.eta, 5)}
        optimal.SPECTRAL_EPS, optimal.REL_STEP = 0.04, 0.02
        rows.append(row)
    return rows


def convergence_figure(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in table:
        f = np.concatenate([w["local_f"] for w in row["windows"].values()])
        local = np.concatenate([w["local_eta"] for w in row["windows"].values()])
        order = np.argsort(f)
        line, = ax.plot(f[order], local[order] - row["formula"]["eta"], marker=".",
                        label=f"{row['phase']} ({row['alpha']}, {row['beta']})")
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("compute f = d x batch x steps")
    ax.set_ylabel("local eta - formula eta")
    ax.set_title("IsoFLOP loss exponent on the deterministic equivalent, per phase")
    ax.legend(fontsize=8, ncol=2)
    fig.savefig(path, dpi=150, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only the small-budget window")
    args = parser.parse_args()
    windows = {"small": WINDOWS["small"]} if args.quick else WINDOWS
    RESULTS.mkdir(exist_ok=True)
    table = []
    for alpha, beta in POINTS:
        p = phase(alpha, beta)
        row = {"phase": p.name, "alpha": alpha, "beta": beta, "terms": list(p.terms),
               "formula": {"xi": round(p.xi, 4), "eta": round(p.eta, 4)},
               "windows": {name: exponents(alpha, beta, w) for name, w in windows.items()}}
        table.append(row)
        print(p.name, (alpha, beta), row["formula"],
              {k: (v["xi"], v["eta"]) for k, v in row["windows"].items()}, flush=True)
    record = {
        "exponents": table,
        "sgd_vs_volterra": sgd_agreement(),
        "random_matrix_vs_sampled_w": rmt_agreement(),
        "numerical_resolution": resolution_check(),
        "settings": {"v": "4 d", "batch": 1, "lr": "0.5 / sum_{j<=v} j^(-2 alpha)",
                     "budgets_per_decade": 2, "d_lattice": "2^(k/4), searched downhill"},
        "machine": platform.platform(),
        "provenance": provenance(method="benchmarks/theory_phases.py", data="computed, no external data",
                                 source="measured"),
    }
    (RESULTS / "theory_phases.json").write_text(json.dumps(record, indent=1))
    phase_diagram(path=RESULTS / "theory_phase_diagram.png")
    if not args.quick:
        convergence_figure(table, RESULTS / "theory_convergence.png")
    print(json.dumps({key: record[key] for key in ("sgd_vs_volterra", "random_matrix_vs_sampled_w",
                                                   "numerical_resolution")}, indent=1))


if __name__ == "__main__":
    main()
