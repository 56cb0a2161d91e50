"""How wide is the planner's loss band from a preset's marginal intervals, against a real bootstrap?

The epoch2024 preset carries only marginal 95% intervals. The planner moves each power-law term's scale and
exponent together along their correlation ridge (timelaw/plan/uncertainty.py). Here that band is compared
with the 90% band of a Chinchilla law refitted to the same 240 points (Epoch's extraction of Chinchilla's
Figure 4) with 200 bootstrap resamples, at sizes inside and outside the fitted range: the mean law's bootstrap
band alone, and with the refitted runs' scatter added (the band the planner gives a fitted law).
Writes benchmarks/results/loss_band.json.

    python benchmarks/loss_band.py
"""
from __future__ import annotations

import json
from pathlib import Path


from timelaw.laws import fit_loss_law
from timelaw.plan.inputs import resolve_law
from timelaw.plan.uncertainty import law_deviations

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
POINTS = ROOT / "tests" / "data" / "epoch_chinchilla_points.csv"
CHECKS = [(3e7, 3e8), (1.6e8, 2e9), (1e9, 2e10), (7e10, 1.4e12), (1e12, 2e13)]  # (N, D); Chinchilla data: 44M-16B


def epoch_runs() -> dict:
    import pandas as pd

    df = pd.read_csv(POINTS).sort_values("loss").iloc[:-5]  # Epoch drops the 5 highest-loss points
    return {"N": df["Model Size"].to_numpy(), "C": df["Training FLOP"].to_numpy(), "loss": df["loss"].to_numpy()}


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    refit = fit_loss_law(epoch_runs(), n_bootstrap=200, seed=0)
    boot = resolve_law(type(refit)(refit.params_, samples=refit.samples_))  # the mean law's band alone
    with_scatter = resolve_law(refit)  # what the planner gives a fitted law: the runs' scatter added
    ridge = resolve_law("epoch2024")
    rows = []
    for n, d in CHECKS:
        entry = {"N": n, "D": d}
        for name, choice in (("bootstrap_refit_90", boot), ("bootstrap_and_run_scatter_90", with_scatter),
                             ("ridge_preset", ridge)):
            loss = float(choice.law.predict(n, d))
            down, up, _ = law_deviations(choice, n, d, None, loss)
            entry[name] = {"loss": loss, "minus": down, "plus": up}
        rows.append(entry)
        print(f"N={n:.1e} D={d:.1e}: bootstrap {entry['bootstrap_refit_90']['loss']:.3f} "
              f"-{entry['bootstrap_refit_90']['minus']:.3f}/+{entry['bootstrap_refit_90']['plus']:.3f}   "
              f"with scatter -{entry['bootstrap_and_run_scatter_90']['minus']:.3f}"
              f"/+{entry['bootstrap_and_run_scatter_90']['plus']:.3f}   "
              f"ridge {entry['ridge_preset']['loss']:.3f} -{entry['ridge_preset']['minus']:.3f}"
              f"/+{entry['ridge_preset']['plus']:.3f}")
    (RESULTS / "loss_band.json").write_text(json.dumps({"points": str(POINTS.relative_to(ROOT)), "checks": rows,
                                                        "n_bootstrap": 200}, indent=1))
    print(f"wrote {RESULTS / 'loss_band.json'}")


if __name__ == "__main__":
    main()
