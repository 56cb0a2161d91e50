"""The time frontier on shipped profiles: how the optimal N*, D*, shape and batch move with the wall-clock budget.

For each (profile, law, data) case: the time-optimal shape for budgets from 5 minutes to 24 hours (the range
of Liu 2026, "Time is Not Compute", who report N* ~ t^0.60 +- 0.07 on an RTX 4090), the fitted exponents of
N*(t), D*(t), d_model*(t) and n_layers*(t) with 95% intervals, and the law's compute-optimal exponent under a
FLOP budget (Chinchilla: N* ~ C^a, a = beta / (alpha + beta)). A sensitivity case narrows the aspect-ratio
bounds of the search. Writes benchmarks/results/frontier.json and frontier.png (the main case's four panels).

    python benchmarks/frontier.py
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from timelaw.plan import SearchSpace, frontier

RESULTS = Path(__file__).resolve().parent / "results"
HOURS = np.geomspace(5 / 60, 24, 12)  # 5 minutes to 24 hours
# The search space before the shape- and batch-aware default law: laws that see only N and D need these
# hand-set bounds, or they pick the shallowest shape at the largest batch (the "open" case shows it).
NARROW = {"aspect_ratio_min": 16.0, "aspect_ratio_max": 256.0, "tokens_per_step": (2 ** 15, 2 ** 16, 2 ** 17, 2 ** 18, 2 ** 19),
          "micro_batch_sizes": (1, 2, 4, 8, 16, 32, 64)}
CASES = [
    # name, profile, law, unique_tokens, search-space overrides
    ("rtx-4090 / composite2026 (default law and space)", "rtx-4090", "composite2026", None, {}),
    ("h100-sxm / composite2026 (default law and space)", "h100-sxm", "composite2026", None, {}),
    ("a100-sxm-80gb / composite2026 (default law and space)", "a100-sxm-80gb", "composite2026", None, {}),
    ("rtx-4090 / epoch2024, narrow space", "rtx-4090", "epoch2024", None, NARROW),
    ("rtx-4090 / epoch2024, default (open) space", "rtx-4090", "epoch2024", None, {}),
    ("a100-sxm-80gb / epoch2024, narrow space", "a100-sxm-80gb", "epoch2024", None, NARROW),
    ("rtx-4090 / hoffmann2022, narrow space", "rtx-4090", "hoffmann2022", None, NARROW),
    ("rtx-4090 / muennighoff2023, 1B unique tokens, narrow space", "rtx-4090", "muennighoff2023", 1e9, NARROW),
    ("rtx-4090 / epoch2024, aspect ratio 32-128", "rtx-4090", "epoch2024", None,
     {**NARROW, "aspect_ratio_min": 32.0, "aspect_ratio_max": 128.0}),
]
MAIN = CASES[0][0]


def run_case(name, profile, law, unique_tokens, overrides) -> tuple[dict, object]:
    start = time.perf_counter()
    front = frontier(hours=HOURS, profile=profile, law=law, unique_tokens=unique_tokens,
                     space=SearchSpace(**overrides))
    exponents = {k: getattr(front, k).to_dict() for k in (
        "n_exponent", "d_exponent", "width_exponent", "depth_exponent", "batch_exponent", "n_exponent_flops",
        "d_exponent_flops",
        "n_exponent_vs_flops_used")}
    rows = [{k: r[k] for k in ("hours", "loss", "n_params", "tokens", "tokens_per_param", "d_model", "n_layers",
                               "aspect_ratio", "tokens_per_step", "mfu", "flops", "n_params_flops")} for r in front.rows]
    return {"case": name, "profile": front.profile, "law": front.law, "unique_tokens": unique_tokens,
            "space_overrides": overrides, "exponents": exponents, "rows": rows,
            "seconds": time.perf_counter() - start}, front


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    results, main_front = [], None
    for case in CASES:
        record, front = run_case(*case)
        results.append(record)
        main_front = front if case[0] == MAIN else main_front
        e = record["exponents"]
        print(f"{case[0]:48s} N* ~ t^{e['n_exponent']['value']:.3f} "
              f"[{e['n_exponent']['low']:.3f}, {e['n_exponent']['high']:.3f}]  "
              f"D* ~ t^{e['d_exponent']['value']:.3f}  d_model* ~ t^{e['width_exponent']['value']:.3f}  "
              f"n_layers* ~ t^{e['depth_exponent']['value']:.3f}  batch* ~ t^{e['batch_exponent']['value']:.3f}  "
              f"| law under FLOPs: N* ~ "
              f"C^{e['n_exponent_flops']['value']:.3f}  time-optimal N* vs its flops: "
              f"C^{e['n_exponent_vs_flops_used']['value']:.3f}")
    out = {"hours": HOURS.tolist(), "main_case": MAIN, "cases": results,
           "reference": {"liu2026_rtx4090_n_exponent": [0.60, 0.07],
                         "chinchilla_flops_exponent_note": "N* ~ C^a with a = beta / (alpha + beta) for the law"}}
    (RESULTS / "frontier.json").write_text(json.dumps(out, indent=1))
    from timelaw.plot import plot_frontier

    plot_frontier(main_front, RESULTS / "frontier.png")
    print(f"wrote {RESULTS / 'frontier.json'} and {RESULTS / 'frontier.png'}")


if __name__ == "__main__":
    main()
