"""How many candidate shapes the planner evaluates per second on one CPU core.

Three measurements, each the median of several runs after a warm-up, with BLAS/OpenMP threads set to 1 and
the process pinned to one core:
  - optimize(hours=4) end to end over the default search space (generate, memory check, price the shapes
    that fit, law, rank, and the full Prediction of the best): candidates generated per second;
  - price_candidates on a profile with unlimited memory, so every candidate is priced by the roofline
    step-time model: shapes priced per second;
  - the vectorised core (step time, parameters, memory) on random ShapeBatches of 1e2 to 1e6 shapes:
    how the rate grows with batch size.
Writes benchmarks/results/optimize_speed.json and optimize_speed.png.

    python benchmarks/optimize_speed.py
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from timelaw.config import TrainSetup  # noqa: E402
from timelaw.devices import load_profile  # noqa: E402
from timelaw.plan import SearchSpace, optimize  # noqa: E402
from timelaw.plan.evaluate import evaluate  # noqa: E402
from timelaw.plan.inputs import resolve_device  # noqa: E402
from timelaw.plan.search import price_candidates  # noqa: E402
from timelaw.shapes import ShapeBatch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROFILE = "a100-sxm-80gb"
RUNS = 7


def median_seconds(fn, runs: int = RUNS) -> tuple[float, list]:
    fn()  # warm-up: imports, interpolators
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def end_to_end() -> dict:
    plan = optimize(hours=4, profile=PROFILE)
    seconds, times = median_seconds(lambda: optimize(hours=4, profile=PROFILE))
    return {"candidates": plan.n_candidates, "priced": plan.n_priced, "median_seconds": seconds,
            "candidates_per_second": plan.n_candidates / seconds, "priced_per_second": plan.n_priced / seconds,
            "run_seconds": times}


def pricing_only() -> dict:
    unlimited = load_profile(PROFILE).model_copy(update={"memory_bytes": 1e30})
    estimator, _ = resolve_device(unlimited)
    space, setup = SearchSpace(), TrainSetup()
    n = price_candidates(space, setup, estimator).size
    seconds, times = median_seconds(lambda: price_candidates(space, setup, estimator))
    return {"shapes": n, "median_seconds": seconds, "shapes_per_second": n / seconds, "run_seconds": times}


def random_batch(n: int, rng) -> ShapeBatch:
    heads = rng.integers(2, 64, n).astype(float)
    d_model = 64.0 * heads
    return ShapeBatch(d_model=d_model, n_layers=rng.integers(2, 64, n), n_heads=heads, n_kv_heads=heads,
                      d_ff=4 * d_model, vocab_size=50257.0, seq_len=1024.0,
                      micro_batch_size=2.0 ** rng.integers(0, 6, n), grad_accum_steps=2.0 ** rng.integers(0, 4, n))


def scaling() -> list:
    estimator, _ = resolve_device(PROFILE)
    setup, rng, rows = TrainSetup(), np.random.default_rng(0), []
    for n in (100, 1_000, 10_000, 100_000, 1_000_000):
        shapes = random_batch(n, rng)
        seconds, _ = median_seconds(lambda: evaluate(shapes, setup, estimator), runs=5 if n < 1_000_000 else 3)
        rows.append({"shapes": n, "median_seconds": seconds, "shapes_per_second": n / seconds})
        print(f"  batch {n:>9,}: {n / seconds:>12,.0f} shapes/s")
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["scaling"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.loglog([r["shapes"] for r in rows], [r["shapes_per_second"] for r in rows], "o-",
              label="vectorised core (step time, params, memory)")
    e2e, priced = result["optimize_end_to_end"], result["pricing_only"]
    ax.plot(e2e["candidates"], e2e["candidates_per_second"], "s", ms=9,
            label=f"optimize(hours=4): {e2e['candidates_per_second']:,.0f} candidates/s")
    ax.plot(priced["shapes"], priced["shapes_per_second"], "^", ms=9,
            label=f"price every candidate: {priced['shapes_per_second']:,.0f} shapes/s")
    ax.axhline(1e5, color="grey", ls="--", label="target: 100,000 / s")
    ax.set_xlabel("shapes per call")
    ax.set_ylabel("shapes per second (one core)")
    ax.set_title("planner speed, one CPU core")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    RESULTS.mkdir(exist_ok=True)
    print("optimize(hours=4), default search space:")
    e2e = end_to_end()
    print(f"  {e2e['candidates']:,} candidates ({e2e['priced']:,} fit in memory) in {e2e['median_seconds']:.3f} s: "
          f"{e2e['candidates_per_second']:,.0f} candidates/s, {e2e['priced_per_second']:,.0f} priced/s")
    print("price_candidates, every candidate priced:")
    priced = pricing_only()
    print(f"  {priced['shapes']:,} shapes in {priced['median_seconds']:.3f} s: {priced['shapes_per_second']:,.0f}/s")
    print("vectorised core by batch size:")
    result = {"profile": PROFILE, "threads": 1, "runs": RUNS, "statistic": "median",
              "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                          "numpy": np.__version__, "cpus": os.cpu_count(),
                          # other processes compete for the cores; the rate falls when this is high
                          "load_average_1min_at_end": None},
              "optimize_end_to_end": e2e, "pricing_only": priced, "scaling": scaling()}
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    (RESULTS / "optimize_speed.json").write_text(json.dumps(result, indent=1))
    plot(result, RESULTS / "optimize_speed.png")
    print(f"wrote {RESULTS / 'optimize_speed.json'} and {RESULTS / 'optimize_speed.png'}")


if __name__ == "__main__":
    main()
