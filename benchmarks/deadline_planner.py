"""The deadline planner's promises on the shipped dgx-h100-80gb system (a spec sheet), 24 hours at $2.5/GPU-hour.

1. More devices never hurt: optimize with max_devices 1, 8, 64 and 512 (every count searched, and each
   count's best candidate given its fastest layout by best_layout) never gives a worse loss as max_devices grows.
2. Consistent costs: each plan's dollars = devices x hours x price.
3. cheapest keeps its promise: for the loss the 64-device plan reaches, cheapest(loss, 24 h, max_devices=64)
   meets it within 24 h at no more than that plan's cost.

    python benchmarks/deadline_planner.py

Writes benchmarks/results/deadline_planner.json. Predictions on spec-sheet numbers, not measurements.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from timelaw import cheapest, optimize
from timelaw.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"
SYSTEM, HOURS, PRICE = "dgx-h100-80gb", 24.0, 2.5


def row(plan, seconds: float) -> dict:
    s = plan.setup
    return {"devices": plan.devices, "loss": plan.loss, "hours": plan.hours, "dollars": plan.dollars,
            "d_model": plan.config.d_model, "n_layers": plan.config.n_layers, "n_params": plan.n_params,
            "tokens_per_step": plan.tokens_per_step, "seconds_per_step": plan.seconds_per_step, "mfu": plan.mfu,
            "layout": {"tensor": s.tensor_parallel, "pipeline": s.pipeline_parallel,
                       "interleave": s.pipeline_interleave, "data": s.data_parallel, "zero_stage": s.zero_stage,
                       "micro_batch": s.micro_batch_size,
                       "checkpointing": s.activation_checkpointing},
            "refined": any(n.startswith("layout refined by best_layout") for n in plan.notes),
            "search_seconds": seconds}


def main() -> dict:
    plans = {}
    for most in (1, 8, 64, 512):
        start = time.perf_counter()
        plan = optimize(hours=HOURS, profile=SYSTEM, max_devices=most, dollars_per_device_hour=PRICE).best
        plans[most] = row(plan, time.perf_counter() - start)
        r = plans[most]
        print(f"max_devices {most:4d}: loss {r['loss']:.4f} on {r['devices']} devices, {r['d_model']}x{r['n_layers']}, "
              f"${r['dollars']:,.2f}, layout {r['layout']}, {r['search_seconds']:.1f} s")
    losses = [plans[m]["loss"] for m in (1, 8, 64, 512)]
    target = plans[64]["loss"]
    start = time.perf_counter()
    found = cheapest(target, HOURS, profile=SYSTEM, max_devices=64, dollars_per_device_hour=PRICE)
    cheap = row(found, time.perf_counter() - start)
    print(f"cheapest({target:.5f}, {HOURS:g} h, max_devices=64): loss {cheap['loss']:.5f} on {cheap['devices']} "
          f"devices in {cheap['hours']:.2f} h for ${cheap['dollars']:,.2f} (the 64-device plan: "
          f"${plans[64]['dollars']:,.2f})")
    checks = {
        "more_devices_never_hurt": all(a >= b for a, b in zip(losses, losses[1:])),
        "dollars_are_devices_x_hours_x_price": all(
            abs(p["dollars"] - p["devices"] * p["hours"] * PRICE) <= 1e-9 * p["dollars"] for p in plans.values()),
        "cheapest_meets_the_64_device_loss_in_time_for_no_more": (
            cheap["loss"] <= target and cheap["hours"] <= HOURS
            and cheap["dollars"] <= plans[64]["dollars"] * (1 + 1e-9)),
    }
    print(checks)
    result = {"system": SYSTEM, "hours": HOURS, "price": PRICE, "optimize": {str(k): v for k, v in plans.items()},
              "cheapest": cheap, "checks": checks,
              "provenance": provenance(method="timelaw.optimize and timelaw.cheapest, roofline step times",
                                       data="spec-sheet system dgx-h100-80gb (not measured)", source="spec sheet",
                                       command="python benchmarks/deadline_planner.py")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "deadline_planner.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
