"""What a target loss costs on a cluster: the cheapest plan per device count, and the dollars-hours front.

For one target loss on the shipped dgx-h100-80gb system (a spec sheet: predictions from published peaks and
link speeds, not measurements), `cheapest` is asked for each device count alone (1, 2, 4, 8 devices in a node,
then 2, 4, 8 nodes), with a deadline long enough for one device. Each gives the hours and dollars of its
cheapest plan; the Pareto front is the set no other count beats in both. Writes
benchmarks/results/cost_plan.json and cost_plan.png.

    python benchmarks/cost_plan.py [--target-loss 2.6] [--price 2.5]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from timelaw import cheapest

RESULTS = Path(__file__).resolve().parent / "results"
SYSTEM = "dgx-h100-80gb"
COUNTS = (1, 2, 4, 8, 16, 32, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-loss", type=float, default=2.6)
    parser.add_argument("--price", type=float, default=2.5, help="dollars per device-hour")
    parser.add_argument("--deadline-hours", type=float, default=24 * 14)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    rows = []
    for n in COUNTS:
        start = time.perf_counter()
        p = cheapest(args.target_loss, args.deadline_hours, profile=SYSTEM, devices=[n],
                     dollars_per_device_hour=args.price)
        rows.append({"devices": p.devices, "hours": p.hours, "dollars": p.dollars, "loss": p.loss,
                     "d_model": p.config.d_model, "n_layers": p.config.n_layers, "tokens_per_step": p.tokens_per_step,
                     "n_params": p.n_params, "tokens": p.tokens, "mfu": p.mfu, "seconds": time.perf_counter() - start})
        print(f"{n:4d} devices: {p.hours:8.2f} h  ${p.dollars:10,.0f}  {p.config.d_model}x{p.config.n_layers}  "
              f"batch {p.tokens_per_step:,.0f}  MFU {p.mfu:.0%}")
    front = [r for r in rows if not any(o["hours"] <= r["hours"] and o["dollars"] <= r["dollars"] and o is not r
                                        and (o["hours"] < r["hours"] or o["dollars"] < r["dollars"]) for o in rows)]
    out = {"system": SYSTEM, "source": "spec sheet", "target_loss": args.target_loss, "price": args.price,
           "law": "composite2026 (default)", "rows": rows, "pareto_devices": [r["devices"] for r in front]}
    (RESULTS / "cost_plan.json").write_text(json.dumps(out, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["hours"] for r in rows], [r["dollars"] for r in rows], "o-", color="tab:blue")
    for r in rows:
        ax.annotate(f"{r['devices']}", (r["hours"], r["dollars"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel("hours to reach the target")
    ax.set_ylabel("dollars")
    ax.set_title(f"loss {args.target_loss} on {SYSTEM} (spec sheet), ${args.price}/device-hour")
    fig.tight_layout()
    fig.savefig(RESULTS / "cost_plan.png", dpi=120)
    print(f"Pareto front: {out['pareto_devices']}; wrote {RESULTS / 'cost_plan.json'}")


if __name__ == "__main__":
    main()
