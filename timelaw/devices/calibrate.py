"""Calibrate a device: microbenchmarks, then real training steps, then fit every estimator (needs torch).

The profile is written only at the very end, atomically: a refused, failed or interrupted calibration leaves
any existing profile file as it was.

Repeatability on a busy machine: every microbenchmark keeps the fastest of its repeats (interference from
other work only ever adds time), and the step set is timed in several passes, each in a fresh shuffled
order, as many as the plan's time budget allows, each step keeping the median of all its timings, so a
burst of load in one pass moves it little. How far a step's median sits above its fastest timing is kept in
the profile as the noise estimate.

Physical coefficients: each estimator is refitted by bounded least squares so that no class of work runs
faster than its microbenchmark (a coefficient of at least 1 on the matmul, attention, memory-bound and
optimizer terms; a matmul is then never faster than its flops at the measured peak, so the predicted MFU
stays at or below 100%), and the parallel terms a single device cannot measure keep their face value.
Held-out steps score the fit; above `max_holdout_mape_percent` the profile is refused, not saved.
"""
from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timelaw.devices.microbench import Timer, bandwidth_by_class, kernel_seconds, matmul_sweep, warm_up
from timelaw.devices.profile import AllReduceTable, DeviceProfile, MatmulSweep
from timelaw.devices.registry import save_profile
from timelaw.devices.step_design import design_steps
from timelaw.provenance import provenance

__all__ = ["calibrate", "CalibrationError", "CalibrationPlan", "PLANS", "LOWER_BOUNDS", "fit_bounded",
           "DEFAULT_MAX_HOLDOUT_MAPE"]

MIN_FREE_BYTES = 1 * 2**30  # refuse below this: the step set needs a few hundred MB at most
DEFAULT_MAX_HOLDOUT_MAPE = 25.0  # percent, roofline on the calibration's own held-out steps
# No class of work faster than its microbenchmark: these coefficients multiply times computed at the
# measured peak rate or bandwidth (see the module docstring).
LOWER_BOUNDS = {
    "flops": {"flops_at_peak_seconds": 1.0},
    "memcopy": {"bytes_at_bandwidth_seconds": 1.0},
    "roofline": {"matmul_seconds": 1.0, "attention_seconds": 1.0, "memory_bound_seconds": 1.0,
                 "optimizer_seconds": 1.0},
}


class CalibrationError(RuntimeError):
    """The device cannot be calibrated (missing, too small) or the fit failed its held-out steps; nothing
    was written."""


class _Progress:
    """Progress on stderr: a one-line bar on a terminal, else a plain line every few seconds (logs)."""

    def __init__(self, total: int, enabled: bool, every_seconds: float = 5.0):
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.enabled, self.tty = enabled, sys.stderr.isatty()
        self.every, self.last = every_seconds, -every_seconds

    def __call__(self, label: str = ""):
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if self.tty:
            filled = int(30 * min(self.done, self.total) / self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                             f"{elapsed:5.0f}s {label[:40]:40s}")
            if self.done == self.total:
                sys.stderr.write("\n")
        elif elapsed - self.last >= self.every or self.done == self.total:
            self.last = elapsed
            sys.stderr.write(f"calibrate: {self.done}/{self.total} {elapsed:6.1f}s {label}\n")
        sys.stderr.flush()

    def say(self, text: str):
        if self.enabled:
            sys.stderr.write(("\n" if self.tty else "") + f"calibrate: {text}\n")
            sys.stderr.flush()


def _device_facts(device: str) -> dict:
    """Name, memory and software versions; raises CalibrationError if the device is unusable."""
    import torch

    facts = {"torch": torch.__version__, "python": platform.python_version(), "host": platform.node()}
    kind = device.split(":")[0]
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise CalibrationError("device 'cuda' requested but torch sees no CUDA GPU")
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise CalibrationError(f"device {device!r} requested but torch sees {torch.cuda.device_count()} GPU(s)")
        torch.cuda.set_device(index)
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        facts.update(name=props.name, memory_bytes=float(total), free_bytes=float(free), index=index,
                     cuda=torch.version.cuda, driver=_nvidia_smi(index, "driver_version"),
                     multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
                     gpus=torch.cuda.device_count(), **_tf32_state())
    elif kind == "mps":
        if not torch.backends.mps.is_available():
            raise CalibrationError("device 'mps' requested but torch sees no Apple GPU")
        total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        facts.update(name="apple-mps", memory_bytes=total, free_bytes=total)
    elif kind == "cpu":
        total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        free = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
        facts.update(name=f"cpu-{os.cpu_count()}core-{platform.machine()}-{torch.get_num_threads()}thread",
                     memory_bytes=total,
                     free_bytes=free, processor=platform.processor() or platform.machine(),
                     threads=torch.get_num_threads())
    else:
        raise CalibrationError(f"device must be cpu, cuda[:N] or mps, got {device!r}")
    if facts["free_bytes"] < MIN_FREE_BYTES:
        raise CalibrationError(f"device {device} has {facts['free_bytes'] / 2**30:.2f} GiB free; calibration "
                               f"needs at least {MIN_FREE_BYTES / 2**30:.0f} GiB")
    return facts


def _tf32_state() -> dict:
    """Whether fp32 matmuls and convolutions may use TF32 (they change what "fp32" measures)."""
    import torch

    return {"tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def _nvidia_smi(index: int, fields: str) -> str:
    """One nvidia-smi query for GPU `index` ('unknown' if it cannot be run: nice to have, never fatal)."""
    try:
        out = subprocess.run(["nvidia-smi", f"--id={index}", f"--query-gpu={fields}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except Exception:
        return "unknown"


CLOCK_FIELDS = "clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,temperature.gpu,power.draw,power.limit"


def _clocks(device: str) -> dict | str:
    if not device.startswith("cuda"):
        return "n/a"
    import torch

    reading = _nvidia_smi(torch.device(device).index or 0, CLOCK_FIELDS)
    return dict(zip(CLOCK_FIELDS.split(","), (v.strip() for v in reading.split(",")))) if "," in reading \
        else reading


def _oom_errors():
    import torch

    return tuple({getattr(torch, "OutOfMemoryError", MemoryError), torch.cuda.OutOfMemoryError, MemoryError})


def _free_device_memory(device: str, collect: bool = False):
    """Hand cached blocks back between steps of different sizes (fragmentation); after an out-of-memory
    error also collect garbage (a full collection costs ~0.5 s with torch loaded: not after every step)."""
    if collect:
        gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _measure_steps(steps, device: str, plan, progress, clock: str = "wall", deadline: float | None = None,
                   enough=None) -> list:
    """Timings of each step, in order: a tuple of per-step seconds, or None for a step that ran out of
    device memory or was not reached before `deadline` (perf_counter seconds; `enough(timed)` says whether
    the steps timed so far suffice to stop there)."""
    from timelaw.reference import time_training_steps

    timings = []
    for cfg, setup in steps:
        if deadline is not None and time.perf_counter() > deadline and enough is not None and enough(timings):
            timings.append(None)
            continue
        label = (f"step d={cfg.d_model} L={cfg.n_layers} S={cfg.seq_len} B={setup.micro_batch_size} "
                 f"{setup.precision}")
        out_of_memory = False
        try:
            timing = time_training_steps(cfg, setup, device=device, steps=plan.timed_steps,
                                         warmup_steps=plan.warmup_steps, clock=clock)
            timings.append(tuple(timing.all_seconds))
        except _oom_errors():
            timings.append(None)
            label += " (out of memory: skipped)"
            out_of_memory = True
        finally:
            _free_device_memory(device, collect=out_of_memory)
        progress(label)
    return timings


def fit_bounded(estimator, measurements):
    """Refit a fitted estimator's coefficients by least squares on relative error with LOWER_BOUNDS (so no
    class of work is priced below its microbenchmark), keeping the host cost it chose; returns it."""
    from scipy.optimize import lsq_linear

    from timelaw.timing.base import UNSEEN_COEFFICIENT

    X, seconds = estimator._feature_rows(list(measurements))
    names = estimator.feature_names
    measured = np.any(X != 0, axis=0)
    lower = np.array([LOWER_BOUNDS.get(estimator.name, {}).get(f, 0.0) for f in names])
    lower = np.where(measured, lower, 0.0)
    A = X / seconds[:, None]
    scale = np.max(np.abs(A), axis=0)
    scale[scale == 0] = 1.0
    result = lsq_linear(A / scale, np.ones_like(seconds), bounds=(lower * scale, np.inf))
    coef = result.x / scale
    # terms no calibration step exercises (collectives on one device) keep their face value, as in any fit
    coef = np.where(measured, np.maximum(coef, lower), UNSEEN_COEFFICIENT)
    estimator.coef_ = coef
    estimator.residuals_ = estimator.predict_features(X) / seconds - 1.0
    return estimator


def _fit_all(base: DeviceProfile, fit_steps, holdout_steps) -> tuple[dict, dict]:
    from timelaw.timing import ESTIMATORS

    coefficients, validation = {}, {}
    for name, cls in ESTIMATORS.items():
        estimator = fit_bounded(cls(base).fit(fit_steps), fit_steps)
        coefficients[name] = estimator.coefficients
        errors = [abs(float(estimator.predict(c, s)) / t - 1) * 100 for c, s, t in holdout_steps]
        validation[name] = {
            "holdout_mape_percent": float(np.mean(errors)) if errors else None,
            "holdout_max_ape_percent": float(np.max(errors)) if errors else None,
            "fit_mape_percent": float(np.mean(np.abs(estimator.residuals_)) * 100),
            "n_fit": len(fit_steps), "n_holdout": len(holdout_steps),
            "lower_bounds": LOWER_BOUNDS.get(name, {}),
        }
    return coefficients, validation


def _steps_as_records(measured) -> list[dict]:
    return [{"config": c.model_dump(), "setup": s.model_dump(), "seconds": t} for c, s, t in measured]


@dataclass(frozen=True)
class CalibrationPlan:
    """How much to measure: matmul grid, number of fit steps, step-time limit scale, timed/warm-up steps,
    microbenchmark repeats, timing passes over the step set and the wall-clock budget for extra passes."""

    matmul_sizes: tuple[int, ...]
    n_fit: int
    step_time_scale: float
    timed_steps: int
    warmup_steps: int
    min_seconds: float  # per microbenchmark repeat
    repeats: int = 3  # microbenchmark repeats; the fastest is kept
    passes: int = 1  # at most this many timing passes over the steps; each step keeps its median time
    time_budget_seconds: float | None = None  # no pass starts that would end after this (None: all passes)


PLANS = {
    ("cpu", False): CalibrationPlan((32, 128, 512, 2048), 24, 1.0, 5, 2, 0.05, 3, 3, 900.0),
    # quick on a 2-core CPU: ~10 s per pass; the budget buys repeated passes (the 3-minute allowance)
    ("cpu", True): CalibrationPlan((32, 128, 512), 20, 0.3, 3, 2, 0.01, 5, 8, 150.0),
    ("gpu", False): CalibrationPlan((64, 256, 1024, 4096, 16384), 30, 1.0, 10, 3, 0.05, 3, 2, 900.0),
    ("gpu", True): CalibrationPlan((128, 512, 2048, 8192), 16, 0.5, 5, 3, 0.01, 3, 2, 120.0),
}


def calibrate(device: str = "cpu", quick: bool = False, out: str | os.PathLike | None = None,
              name: str | None = None, seed: int = 0, progress: bool = True, save: bool = True,
              plan: CalibrationPlan | None = None, threads: int | None = None,
              allreduce: bool | None = None, time_budget_seconds: float | None = None,
              max_holdout_mape_percent: float | None = DEFAULT_MAX_HOLDOUT_MAPE,
              allreduce_timeout_seconds: float = 120.0, warm_up_seconds: float = 10.0) -> DeviceProfile:
    """Measure a device and return (and save) its DeviceProfile.

    quick: a reduced sweep and step set (within 3 minutes on a 2-core CPU). out: where to write the JSON
    (default: the user's cache directory, under the profile's name). plan overrides the preset plan;
    time_budget_seconds overrides its budget (no timing pass starts that would end after it; the first
    stops early, once enough steps are timed).
    threads: CPU threads torch may use while measuring (the profile then describes training with that many;
    on a busy machine 1 thread gives the most repeatable timings).
    allreduce: also measure an all-reduce table with torch.distributed (off unless asked; NCCL between the
    GPUs of this machine, gloo between 2 CPU processes), each group size within allreduce_timeout_seconds.
    max_holdout_mape_percent: refuse (CalibrationError, nothing saved) when the roofline fit misses the
    calibration's own held-out steps by more than this; None never refuses.
    warm_up_seconds: at most this long of large products first, until a GPU's clocks are steady.
    """
    import torch

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _calibrate(device, quick, out, name, seed, progress, save, plan, allreduce, time_budget_seconds,
                          max_holdout_mape_percent, allreduce_timeout_seconds, warm_up_seconds)
    finally:
        torch.set_num_threads(previous_threads)


def _allreduce_group_sizes(kind: str, requested: bool | None) -> tuple[str, list[int]]:
    """(backend, group sizes) to measure when asked: powers of two up to the GPU count, or 2 CPU processes."""
    import torch

    if not requested:
        return "", []
    if kind == "cuda" and torch.cuda.device_count() > 1:
        count = torch.cuda.device_count()
        return "nccl", [2**p for p in range(1, count.bit_length()) if 2**p <= count]
    if kind == "cpu":
        return "gloo", [2]
    return "", []


def _allreduce_table(backend: str, group_sizes: list[int], progress, timeout_seconds: float):
    from timelaw.devices.allreduce import measure_allreduce

    if not group_sizes:
        return None
    table = {}
    for size in group_sizes:
        try:
            table[size] = measure_allreduce(size, backend, timeout_seconds=timeout_seconds)
        except TimeoutError as error:
            progress.say(f"all-reduce x{size} skipped: {error}")
        progress(f"all-reduce x{size}")
    return AllReduceTable(by_group_size=table) if table else None


def _combine(timings: list[list]):
    """Per-step median over every timed step of every pass, and the noise: the median's distance from the
    fastest timing (relative). A median, not the fastest: the fastest of more timings is lower, so it
    would depend on how many passes the budget allowed."""
    typical, spread = [], []
    for per_pass in timings:
        seconds = [t for run in per_pass if run is not None for t in run]
        typical.append(float(np.median(seconds)) if seconds else None)
        if seconds:
            spread.append(float(np.median(seconds)) / min(seconds) - 1.0)
    return typical, spread


def _calibrate(device, quick, out, name, seed, progress, save, plan, allreduce, budget, max_mape,
               allreduce_timeout, warm_up_seconds) -> DeviceProfile:
    import torch

    began = time.perf_counter()
    facts = _device_facts(device)
    kind = device.split(":")[0]
    on_cpu = kind == "cpu"
    plan = plan or PLANS[("cpu" if on_cpu else "gpu", quick)]
    budget = plan.time_budget_seconds if budget is None else budget
    # fp16 is swept too on a GPU, so that fp16 steps are priced by their own rates, not a fallback
    precisions = ["fp32"] if on_cpu else ["bf16", "fp16", "fp32"]
    sizes = list(plan.matmul_sizes)
    fit_design, holdout_design = design_steps(kind, n_fit=plan.n_fit, seed=seed, scale=plan.step_time_scale,
                                              memory_bytes=None if on_cpu else facts["free_bytes"])
    backend, group_sizes = _allreduce_group_sizes(kind, allreduce)
    n_steps = len(fit_design) + len(holdout_design)
    total = len(precisions) * len(sizes) ** 3 + 2 + len(group_sizes) + n_steps
    bar = _Progress(total, progress)

    # One CPU thread is timed by process CPU time: on a shared machine that is the idle-machine step time.
    clock = "process" if on_cpu and torch.get_num_threads() == 1 else "wall"
    timer = Timer(device, min_seconds=plan.min_seconds, repeats=plan.repeats, clock=clock)
    clocks_before = _clocks(device)
    warm = warm_up(device, max_seconds=warm_up_seconds)
    if not on_cpu:
        bar.say(f"warm-up {warm['seconds']:.1f} s ({'steady' if warm['steady'] else 'NOT steady'})")
    torch.manual_seed(seed)
    sweep = matmul_sweep(timer, sizes, precisions, progress=lambda: bar("matmul sweep"))
    elements = 2**22 if on_cpu else 2**26
    bandwidth = bandwidth_by_class(timer, elements, "fp32")
    bar("bandwidth")
    launch = kernel_seconds(timer)
    bar("kernel launch")
    allreduce_table = _allreduce_table(backend, group_sizes, bar, allreduce_timeout)

    peak = {p: float(np.max(sweep[p])) for p in precisions}
    base = DeviceProfile(
        name=name or facts["name"].lower().replace(" ", "-"), device_type=kind, source="measured",
        description=f"{facts['name']}: measured by timelaw.calibrate ({'quick' if quick else 'full'})",
        memory_bytes=facts["memory_bytes"], peak_flops=peak, memory_bandwidth=bandwidth["copy"],
        bandwidth_by_class={k: v for k, v in bandwidth.items() if k != "copy"}, kernel_seconds=launch,
        matmul=MatmulSweep(sizes=sizes, flops_per_second=sweep), allreduce=allreduce_table,
    )

    # Passes over fit and held-out steps together, each in a fresh shuffled order, so a drift in machine
    # load biases neither set; the first may stop early at the budget once enough of each set is timed.
    designed = fit_design + holdout_design
    n_fit, n_features = len(fit_design), 10  # the roofline's coefficient count

    def enough(order):
        def check(timings):
            done = [order[i] for i, t in enumerate(timings) if t is not None]
            return (sum(1 for i in done if i < n_fit) >= n_features + 2
                    and sum(1 for i in done if i >= n_fit) >= 3)
        return check

    rng = np.random.default_rng(seed)
    per_step = [[] for _ in designed]
    pass_seconds, passes = [], 0
    deadline = None if budget is None else began + budget
    while passes < plan.passes:
        if passes and deadline is not None and time.perf_counter() + 1.1 * max(pass_seconds) > deadline:
            break
        order = rng.permutation(len(designed))
        start = time.perf_counter()
        timings = _measure_steps([designed[i] for i in order], device, plan, bar, clock,
                                 deadline=deadline if passes == 0 else None, enough=enough(order))
        for i, timing in zip(order, timings):
            per_step[i].append(timing)
        pass_seconds.append(time.perf_counter() - start)
        passes += 1
        if passes == 1:
            bar.total = bar.done + (plan.passes - 1) * n_steps  # later passes, if the budget allows
    best, spread = _combine(per_step)
    fit_steps = [(*designed[i], best[i]) for i in range(n_fit) if best[i] is not None]
    holdout_steps = [(*designed[i], best[i]) for i in range(n_fit, len(designed)) if best[i] is not None]
    skipped = [i for i, b in enumerate(best) if b is None]
    if len(fit_steps) < n_features:
        raise CalibrationError(f"only {len(fit_steps)} fit steps could be timed ({len(skipped)} ran out of "
                               f"memory or time); the roofline needs {n_features}")
    coefficients, validation = _fit_all(base, fit_steps, holdout_steps)

    noise = {"passes": passes, "pass_seconds": pass_seconds,
             "step_spread_percent_median": float(np.median(spread) * 100) if spread else None,
             "step_spread_percent_max": float(np.max(spread) * 100) if spread else None,
             "statistic": "median timed step over all passes",
             "graph_captures": timer.counts["graph_captures"], "graph_failures": timer.counts["graph_failures"]}
    profile = base.model_copy(update={
        "coefficients": coefficients, "validation": validation,
        "measurements": {"bandwidth_bytes_per_second": bandwidth, "kernel_seconds": launch, "noise": noise,
                         "skipped_steps": _steps_as_records([(*designed[i], None) for i in skipped]),
                         "fit_steps": _steps_as_records(fit_steps),
                         "holdout_steps": _steps_as_records(holdout_steps)},
        "provenance": provenance(
            method="timelaw.calibrate: microbenchmarks + timed reference-model steps, bounded least squares",
            data=f"{len(fit_steps)} fit steps, {len(holdout_steps)} held-out steps, {passes} timing passes",
            source="measured", device=facts, quick=quick, seed=seed, plan=plan.__dict__, clock=clock,
            time_budget_seconds=budget, seconds=time.perf_counter() - began, warm_up=warm,
            clocks_before=clocks_before, clocks_after=_clocks(device)),
    })
    mape = validation["roofline"]["holdout_mape_percent"]
    if max_mape is not None and mape is not None and mape > max_mape:
        raise CalibrationError(
            f"the fit misses its own {len(holdout_steps)} held-out steps by {mape:.1f}% (mean absolute error; "
            f"threshold {max_mape:g}%), so the profile was not saved: the timings are too noisy to trust. "
            "Run again on a quieter machine, with --threads 1 on a CPU, or pass a larger --max-holdout-mape")
    if save:
        path = save_profile(profile, out)
        if progress:
            sys.stderr.write(f"profile written to {Path(path)}\n")
    return profile
