"""How long `import timelaw` and `timelaw --help` take, each in fresh Python processes.

The target (issue 14): `import timelaw` under 0.5 s on the 2-core development machine. Each measurement is a
new interpreter, so nothing is cached in-process; the first runs warm the OS file cache and are discarded.
Reported: the median (and min / max) wall time of the whole process (`python -c "import timelaw"`), the
same for a bare `python -c "pass"` (the interpreter's own start-up, which no library change can remove), and
the module import alone as `python -X importtime` counts it. Writes benchmarks/results/import_time.json and
import_time.png.

    python benchmarks/import_time.py [--repeats 15]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_SECONDS = 0.5
COMMANDS = {
    "python (no import)": [sys.executable, "-c", "pass"],
    "import timelaw": [sys.executable, "-c", "import timelaw"],
    "timelaw --help": [sys.executable, "-m", "timelaw", "--help"],
}


def wall_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_only_seconds(module: str = "timelaw") -> float:
    """The cumulative import time of `module` as `python -X importtime` reports it (seconds)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match and match.group(2).strip() == module:
            return int(match.group(1)) / 1e6
    raise RuntimeError(f"no import-time line for {module}")


def heavy_modules() -> list[str]:
    """Optional or slow packages loaded by `import timelaw` (should be none of these)."""
    probe = ("import sys, timelaw; print(' '.join(sorted(m for m in ('torch', 'matplotlib', 'pandas', "
             "'scipy.optimize', 'scipy.stats', 'sklearn') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout.split()


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="fresh processes per command (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="discarded runs per command first (default 2)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)

    results = {}
    for name, command in COMMANDS.items():
        for _ in range(args.warmup):
            wall_seconds(command)
        results[name] = summary([wall_seconds(command) for _ in range(args.repeats)])
        print(f"{name:<20} median {results[name]['median']:.3f} s  "
              f"(min {results[name]['min']:.3f}, max {results[name]['max']:.3f}, {args.repeats} runs)")
    import_only = summary([import_only_seconds() for _ in range(args.repeats)])
    print(f"{'-X importtime':<20} median {import_only['median']:.3f} s (the import alone, no interpreter start)")
    heavy = heavy_modules()
    print(f"heavy modules loaded by import timelaw: {heavy or 'none'}")

    record = {
        "command": "python benchmarks/import_time.py" + (f" --repeats {args.repeats}" if args.repeats != 15 else ""),
        "target_seconds": TARGET_SECONDS,
        "wall_seconds": results,
        "import_only_seconds": import_only,
        "heavy_modules_loaded": heavy,
        "meets_target": results["import timelaw"]["median"] < TARGET_SECONDS,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (RESULTS / "import_time.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(results, import_only)
    print(f"wrote {RESULTS / 'import_time.json'} and import_time.png")


def plot(results: dict, import_only: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results) + ["import only (-X importtime)"]
    series = [results[n]["runs"] for n in results] + [import_only["runs"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for row, runs in enumerate(series):  # every run as a dot, the median as a bar
        ax.barh(row, statistics.median(runs), height=0.5, color="tab:blue", alpha=0.35)
        ax.plot(runs, [row] * len(runs), "o", color="tab:blue", markersize=3)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.axvline(TARGET_SECONDS, color="tab:red", linestyle="--", label=f"target {TARGET_SECONDS} s (import)")
    ax.set_xlabel("seconds (fresh process each run)")
    ax.set_xlim(left=0)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("timelaw start-up time", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "import_time.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
