"""Calibrate a device: microbenchmarks, then real training steps, then fit every estimator (needs torch).

The profile is written only at the very end, atomically: a refused, failed or interrupted calibration leaves
any existing profile file as it was.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timelaw.devices.microbench import Timer, attention_rates, bandwidth_by_class, kernel_seconds, matmul_sweep
from timelaw.devices.profile import AllReduceTable, DeviceProfile, MatmulSweep
from timelaw.devices.registry import save_profile
from timelaw.devices.step_design import design_steps
from timelaw.provenance import provenance

__all__ = ["calibrate", "CalibrationError", "CalibrationPlan", "PLANS"]

MIN_FREE_BYTES = 1 * 2**30  # refuse below this: the step set needs a few hundred MB at most


class CalibrationError(RuntimeError):
    """The device cannot be calibrated (missing, too small); nothing was written."""


class _Progress:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, total: int, enabled: bool):
        # a bar of carriage returns is only readable on a terminal
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, label: str = ""):
        self.done += 1
        if self.enabled:
            filled = int(30 * self.done / self.total)
            elapsed = time.perf_counter() - self.start
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                             f"{elapsed:5.0f}s {label[:40]:40s}")
            if self.done == self.total:
                sys.stderr.write("\n")
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
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        facts.update(name=props.name, memory_bytes=float(total), free_bytes=float(free),
                     cuda=torch.version.cuda, driver=_nvidia_driver())
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


def _nvidia_driver() -> str:
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0]
    except Exception:  # the driver version is nice to have, never worth failing for
        return "unknown"


def _measure_steps(steps, device: str, plan, progress, clock: str = "wall") -> list[tuple]:
    from timelaw.reference import time_training_steps

    measured = []
    for cfg, setup in steps:
        timing = time_training_steps(cfg, setup, device=device, steps=plan.timed_steps,
                                     warmup_steps=plan.warmup_steps, clock=clock)
        measured.append((cfg, setup, timing.seconds))
        progress(f"step d={cfg.d_model} L={cfg.n_layers} S={cfg.seq_len} B={setup.micro_batch_size}")
    return measured


def _fit_all(base: DeviceProfile, fit_steps, holdout_steps) -> tuple[dict, dict]:
    from timelaw.timing import ESTIMATORS

    coefficients, validation = {}, {}
    for name, cls in ESTIMATORS.items():
        estimator = cls(base).fit(fit_steps)
        coefficients[name] = estimator.coefficients
        errors = [abs(float(estimator.predict(c, s)) / t - 1) * 100 for c, s, t in holdout_steps]
        validation[name] = {
            "holdout_mape_percent": float(np.mean(errors)) if errors else None,
            "holdout_max_ape_percent": float(np.max(errors)) if errors else None,
            "fit_mape_percent": float(np.mean(np.abs(estimator.residuals_)) * 100),
            "n_fit": len(fit_steps), "n_holdout": len(holdout_steps),
        }
    return coefficients, validation


def _steps_as_records(measured) -> list[dict]:
    return [{"config": c.model_dump(), "setup": s.model_dump(), "seconds": t} for c, s, t in measured]


@dataclass(frozen=True)
class CalibrationPlan:
    """How much to measure: matmul grid, number of fit steps, step-time limit scale, timed/warm-up steps."""

    matmul_sizes: tuple[int, ...]
    n_fit: int
    step_time_scale: float
    timed_steps: int
    warmup_steps: int
    min_seconds: float  # per microbenchmark repeat


PLANS = {
    ("cpu", False): CalibrationPlan((32, 128, 512, 2048), 24, 1.0, 5, 2, 0.05),
    ("cpu", True): CalibrationPlan((32, 128, 512), 16, 0.3, 3, 2, 0.01),
    ("gpu", False): CalibrationPlan((64, 256, 1024, 4096, 16384), 30, 1.0, 10, 3, 0.05),
    ("gpu", True): CalibrationPlan((128, 512, 2048, 8192), 12, 0.4, 5, 2, 0.02),
}


def calibrate(device: str = "cpu", quick: bool = False, out: str | os.PathLike | None = None,
              name: str | None = None, seed: int = 0, progress: bool = True, save: bool = True,
              plan: CalibrationPlan | None = None, threads: int | None = None,
              allreduce: bool | None = None) -> DeviceProfile:
    """Measure a device and return (and save) its DeviceProfile.

    quick: a reduced sweep and step set (within 3 minutes on a 2-core CPU). out: where to write the JSON
    (default: the user's cache directory, under the profile's name). plan overrides the preset plan.
    threads: CPU threads torch may use while measuring (the profile then describes training with that many;
    on a busy machine 1 thread gives the most repeatable timings).
    allreduce: measure an all-reduce table with torch.distributed; default: when there are several GPUs
    (NCCL, 2, 4, ... ranks). On CPU pass True to measure gloo between 2 local processes.
    """
    import torch

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _calibrate(device, quick, out, name, seed, progress, save, plan, allreduce)
    finally:
        torch.set_num_threads(previous_threads)


def _allreduce_group_sizes(kind: str, requested: bool | None) -> tuple[str, list[int]]:
    """(backend, group sizes) to measure: powers of two up to the GPU count, or 2 CPU processes."""
    import torch

    if kind == "cuda" and requested is not False and torch.cuda.device_count() > 1:
        count = torch.cuda.device_count()
        return "nccl", [2**p for p in range(1, count.bit_length()) if 2**p <= count]
    if kind == "cpu" and requested:
        return "gloo", [2]
    return "", []


def _allreduce_table(backend: str, group_sizes: list[int], progress) -> AllReduceTable | None:
    from timelaw.devices.allreduce import measure_allreduce

    if not group_sizes:
        return None
    table = {}
    for size in group_sizes:
        table[size] = measure_allreduce(size, backend)
        progress(f"all-reduce x{size}")
    return AllReduceTable(by_group_size=table)


def _calibrate(device, quick, out, name, seed, progress, save, plan, allreduce) -> DeviceProfile:
    import torch

    facts = _device_facts(device)
    kind = device.split(":")[0]
    on_cpu = kind == "cpu"
    plan = plan or PLANS[("cpu" if on_cpu else "gpu", quick)]
    precisions = ["fp32"] if on_cpu else ["bf16", "fp32"]
    sizes = list(plan.matmul_sizes)
    fit_design, holdout_design = design_steps(kind, n_fit=plan.n_fit, seed=seed, scale=plan.step_time_scale)
    backend, group_sizes = _allreduce_group_sizes(kind, allreduce)
    total = len(precisions) * len(sizes) ** 3 + 3 + len(group_sizes) + len(fit_design) + len(holdout_design)
    bar = _Progress(total, progress)

    # One CPU thread is timed by process CPU time: on a shared machine that is the idle-machine step time.
    clock = "process" if on_cpu and torch.get_num_threads() == 1 else "wall"
    timer = Timer(device, min_seconds=plan.min_seconds, clock=clock)
    torch.manual_seed(seed)
    sweep = matmul_sweep(timer, sizes, precisions, progress=lambda: bar("matmul sweep"))
    main_precision = precisions[0]
    elements = 2**22 if on_cpu else 2**26
    bandwidth = bandwidth_by_class(timer, elements, "fp32")
    bar("bandwidth")
    launch = kernel_seconds(timer)
    bar("kernel launch")
    attention = attention_rates(timer, main_precision, [(2, 4, 256, 64)] if on_cpu else
                                [(8, 16, 1024, 64), (4, 16, 2048, 128)])
    bar("attention")
    allreduce_table = _allreduce_table(backend, group_sizes, bar)

    peak = {p: float(np.max(sweep[p])) for p in precisions}
    base = DeviceProfile(
        name=name or facts["name"].lower().replace(" ", "-"), device_type=kind, source="measured",
        description=f"{facts['name']}: measured by timelaw.calibrate ({'quick' if quick else 'full'})",
        memory_bytes=facts["memory_bytes"], peak_flops=peak, memory_bandwidth=bandwidth["copy"],
        bandwidth_by_class={k: v for k, v in bandwidth.items() if k != "copy"}, kernel_seconds=launch,
        matmul=MatmulSweep(sizes=sizes, flops_per_second=sweep), allreduce=allreduce_table,
    )
    # Timed in one shuffled sequence, so a drift in machine load does not bias fit against held-out steps.
    order = np.random.default_rng(seed).permutation(len(fit_design) + len(holdout_design))
    designed = fit_design + holdout_design
    timed = dict(zip(order, _measure_steps([designed[i] for i in order], device, plan, bar, clock)))
    fit_steps = [timed[i] for i in range(len(fit_design))]
    holdout_steps = [timed[i] for i in range(len(fit_design), len(designed))]
    coefficients, validation = _fit_all(base, fit_steps, holdout_steps)

    profile = base.model_copy(update={
        "coefficients": coefficients, "validation": validation,
        "measurements": {"bandwidth_bytes_per_second": bandwidth, "kernel_seconds": launch,
                         "attention": attention, "fit_steps": _steps_as_records(fit_steps),
                         "holdout_steps": _steps_as_records(holdout_steps)},
        "provenance": provenance(
            method="timelaw.calibrate: microbenchmarks + timed reference-model steps, NNLS fit",
            data=f"{len(fit_steps)} fit steps, {len(holdout_steps)} held-out steps", source="measured",
            device=facts, quick=quick, seed=seed, plan=plan.__dict__, clock=clock),
    })
    if save:
        path = save_profile(profile, out)
        if progress:
            sys.stderr.write(f"profile written to {Path(path)}\n")
    return profile
