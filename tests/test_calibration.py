"""Calibration's control flow and fit, fast: real microbenchmarks, reference steps replaced by a known rule.

What is checked: coefficients stay in physical ranges (bounded fit), the refusal threshold leaves no file,
steps that run out of memory are skipped and recorded, the time budget bounds the passes, the GPU step
design is compute-bound and fits the device, and `timelaw calibrate` without torch prints one line.
"""
import subprocess
import sys

import numpy as np
import pytest

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.devices.registry import load_profile
from timelaw.devices.step_design import benchmark_steps, design_steps
from timelaw.ledger import ledger


def test_calibrate_without_torch_prints_one_line_naming_the_install():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from timelaw.cli import main\n"
            "raise SystemExit(main(['calibrate', '--device', 'cpu', '--quick']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "pip install" in lines[0] and "Traceback" not in done.stderr


def test_gpu_step_design_has_compute_bound_steps_of_every_kind_and_fits_a_24gb_card():
    fit, holdout = design_steps("cuda", n_fit=16, seed=0, scale=0.5, memory_bytes=80 * 2**30)
    flops = [float(ledger(c, s).total("flops")) for c, s in fit + holdout]
    # at an H100's ~400 TFLOP/s bf16, at least half the steps run 10 ms or more of matmul work
    assert np.median(flops) >= 4e12
    assert {s.precision for _, s in fit} == {"bf16", "fp32"}
    assert any(s.activation_checkpointing == "full" for _, s in fit)
    assert any(s.grad_accum_steps == 2 for _, s in fit)
    # on a 24 GB card the steps that would not fit are left out (and some would not)
    limit = 0.7 * 24 * 2**30
    unbounded = design_steps("cuda", n_fit=30, seed=0, scale=1.0)
    small = design_steps("cuda", n_fit=30, seed=0, scale=1.0, memory_bytes=24 * 2**30)
    assert any(float(ledger(c, s).memory.total_bytes) > limit for c, s in unbounded[0] + unbounded[1])
    assert all(float(ledger(c, s).memory.total_bytes) <= limit for c, s in small[0] + small[1])


def test_benchmark_steps_are_shapes_calibration_never_times():
    for kind in ("cpu", "cuda"):
        designed = set()
        for seed in range(3):
            fit, holdout = design_steps(kind, n_fit=30, seed=seed)
            designed |= {(c.d_model, c.n_layers, c.seq_len) for c, _ in fit + holdout}
        bench = benchmark_steps(kind)
        assert bench and not designed & {(c.d_model, c.n_layers, c.seq_len) for c, _ in bench}
    cpu_plain = benchmark_steps("cpu", variants=False)
    assert len(cpu_plain) == 6 and all(s.precision == "fp32" for _, s in cpu_plain)
    gpu = benchmark_steps("cuda")
    assert {s.precision for _, s in gpu} == {"bf16", "fp32"}
    assert {s.activation_checkpointing for _, s in gpu} == {"none", "full"}
    assert {s.grad_accum_steps for _, s in gpu} == {1, 2}


torch = pytest.importorskip("torch")
from timelaw.devices import calibrate as calibration  # noqa: E402
from timelaw.devices.calibrate import (  # noqa: E402
    LOWER_BOUNDS, CalibrationError, CalibrationPlan, calibrate, fit_bounded)
from timelaw.reference import StepTiming  # noqa: E402
from timelaw.timing import RooflineEstimator  # noqa: E402

FAST_PLAN = CalibrationPlan(matmul_sizes=(32, 128), n_fit=14, step_time_scale=0.25, timed_steps=3,
                            warmup_steps=1, min_seconds=0.002, repeats=2, passes=3, time_budget_seconds=None)


def rule_seconds(cfg, setup):
    """A stand-in for a timed step: flops at 20 GFLOP/s plus 3 us per kernel plus 1 ms."""
    step = ledger(cfg, setup)
    return float(step.total("flops")) / 2e10 + float(step.total("kernels")) * 3e-6 + 1e-3


@pytest.fixture
def ruled_steps(monkeypatch):
    """Reference steps replaced by rule_seconds; a config with d_model 192 'runs out of memory'."""
    calls = []

    def fake(cfg, setup=None, device="cpu", steps=5, warmup_steps=2, seed=0, clock="wall"):
        calls.append(cfg)
        if cfg.d_model == 192:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        seconds = rule_seconds(cfg, setup)
        return StepTiming(seconds, (seconds,) * steps, warmup_steps, device)

    monkeypatch.setattr("timelaw.reference.time_training_steps", fake)
    return calls


def test_bounded_fit_keeps_every_class_of_work_at_or_above_its_microbenchmark():
    profile = load_profile("cpu-2core-x86_64-1thread")
    setups = [TrainSetup(micro_batch_size=b, precision="fp32") for b in (1, 4)]
    configs = [TransformerConfig(d_model=d, n_layers=n, n_heads=max(1, d // 64), vocab_size=2048, seq_len=128)
               for d in (64, 128, 256, 512) for n in (1, 2, 4)]
    steps = [(c, s) for c in configs for s in setups]
    X = np.array([RooflineEstimator(profile).features(c, s) for c, s in steps])
    names = RooflineEstimator.feature_names
    # Steps made by a rule whose matmuls run at 0.2x their microbenchmark time: physically impossible.
    truth = dict(zip(names, np.zeros(len(names))))
    truth.update(matmul_seconds=0.2, attention_seconds=1.5, memory_bound_seconds=2.0, optimizer_seconds=1.2,
                 kernel_launch_seconds=1.5)
    seconds = X @ np.array([truth[f] for f in names])
    measurements = [(c, s, t) for (c, s), t in zip(steps, seconds)]
    estimator = fit_bounded(RooflineEstimator(profile).fit(measurements), measurements)
    coef = estimator.coefficients
    for name, lower in LOWER_BOUNDS["roofline"].items():
        assert coef[name] >= lower - 1e-12, name
    assert coef["matmul_seconds"] == pytest.approx(1.0)
    # a single device measures no collective: those terms keep their face value instead of 0
    assert coef["tensor_parallel_seconds"] == coef["pipeline_parallel_seconds"] == coef["data_parallel_seconds"] == 1.0
    assert coef["network_seconds"] == 1.0  # nor the network between nodes
    # with the matmul term at >= 1x its microbenchmark, no predicted step beats its flops at peak
    from timelaw.plan.predict import model_flops_per_step

    big = TransformerConfig(d_model=4096, n_layers=16, n_heads=32, vocab_size=2048, seq_len=256)
    setup = TrainSetup(micro_batch_size=64, precision="fp32")
    mfu = model_flops_per_step(ledger(big, setup)) / (float(estimator.predict(big, setup)) * profile.peak("fp32"))
    assert 0 < mfu <= 1


def test_bounded_fit_recovers_physical_coefficients():
    profile = load_profile("cpu-2core-x86_64-1thread")
    configs = [TransformerConfig(d_model=d, n_layers=n, n_heads=max(1, d // 64), vocab_size=v, seq_len=s)
               for d, n, v, s in [(64, 1, 512, 64), (128, 2, 2048, 128), (256, 4, 1024, 256), (512, 1, 4096, 64),
                                  (192, 3, 2048, 128), (384, 2, 512, 256), (64, 8, 2048, 64), (512, 4, 2048, 128),
                                  (128, 6, 4096, 256), (256, 1, 512, 128), (320, 2, 3000, 96), (96, 5, 1024, 160)]]
    setup = TrainSetup(micro_batch_size=2, precision="fp32")
    X = np.array([RooflineEstimator(profile).features(c, setup) for c in configs])
    names = RooflineEstimator.feature_names
    truth = dict(zip(names, np.zeros(len(names))))
    truth.update(matmul_seconds=1.3, attention_seconds=1.8, memory_bound_seconds=1.5, optimizer_seconds=1.1,
                 kernel_launch_seconds=2.0)
    seconds = X @ np.array([truth[f] for f in names])
    measurements = [(c, setup, t) for c, t in zip(configs, seconds)]
    estimator = fit_bounded(RooflineEstimator(profile).fit(measurements), measurements)
    for name in ("matmul_seconds", "memory_bound_seconds", "kernel_launch_seconds"):
        assert estimator.coefficients[name] == pytest.approx(truth[name], rel=0.05), name
    assert np.max(np.abs(estimator.residuals_)) < 1e-3


def test_out_of_memory_steps_are_skipped_and_recorded(tmp_path, ruled_steps):
    out = tmp_path / "p.json"
    profile = calibrate(device="cpu", plan=FAST_PLAN, out=out, threads=1, progress=False,
                        max_holdout_mape_percent=None)
    skipped = profile.measurements["skipped_steps"]
    assert skipped and all(r["config"]["d_model"] == 192 and r["seconds"] is None for r in skipped)
    timed = profile.measurements["fit_steps"] + profile.measurements["holdout_steps"]
    assert all(r["config"]["d_model"] != 192 for r in timed)
    # the rule is linear in the ledger's flops and kernels, so the fit is near exact on held-out steps
    assert profile.validation["roofline"]["holdout_mape_percent"] < 15
    assert profile.measurements["noise"]["passes"] == 3
    assert load_profile(out).coefficients == profile.coefficients


def test_a_spent_budget_stops_the_first_pass_once_enough_steps_are_timed(tmp_path, ruled_steps):
    plan = CalibrationPlan(**{**FAST_PLAN.__dict__, "n_fit": 20, "time_budget_seconds": 0.0})
    profile = calibrate(device="cpu", plan=plan, save=False, threads=1, progress=False,
                        max_holdout_mape_percent=None)
    measured = profile.measurements
    assert measured["noise"]["passes"] == 1
    assert len(measured["fit_steps"]) >= 12 and len(measured["holdout_steps"]) >= 3
    # steps not reached are recorded as skipped beside the simulated out-of-memory ones
    assert any(r["config"]["d_model"] != 192 for r in measured["skipped_steps"])


def test_a_fit_that_misses_its_held_out_steps_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)

    def noisy(cfg, setup=None, device="cpu", steps=5, warmup_steps=2, seed=0, clock="wall"):
        seconds = rule_seconds(cfg, setup) * float(rng.lognormal(0.0, 1.0))  # ~100% noise
        return StepTiming(seconds, (seconds,) * steps, warmup_steps, device)

    monkeypatch.setattr("timelaw.reference.time_training_steps", noisy)
    out = tmp_path / "p.json"
    with pytest.raises(CalibrationError, match="not saved"):
        calibrate(device="cpu", plan=FAST_PLAN, out=out, threads=1, progress=False, max_holdout_mape_percent=5.0)
    assert not out.exists()


def test_progress_prints_plain_lines_when_not_a_terminal(capsys):
    bar = calibration._Progress(3, enabled=True, every_seconds=0.0)
    for label in ("a", "b", "c"):
        bar(label)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [line.split()[-1] for line in err.strip().splitlines()] == ["a", "b", "c"]


def test_cli_calibrates_one_cpu_thread_unless_told(monkeypatch):
    from timelaw.cli import main

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return load_profile("cpu-2core-x86_64-1thread")

    monkeypatch.setattr("timelaw.devices.calibrate.calibrate", fake)
    assert main(["calibrate", "--device", "cpu", "--quick"]) == 0
    assert seen["threads"] == 1 and seen["quick"] and seen["max_holdout_mape_percent"] == 25.0
    assert seen["max_holdout_mape_percent"] == calibration.DEFAULT_MAX_HOLDOUT_MAPE
    assert main(["calibrate", "--device", "cpu", "--threads", "2", "--time-budget", "30"]) == 0
    assert seen["threads"] == 2 and seen["time_budget_seconds"] == 30.0 and seen["allreduce"] is False


def test_memcopy_never_prices_a_step_below_its_flops_at_peak():
    """Bytes alone priced a compute-bound step 20x faster than the device computes (MFU 2000%)."""
    from timelaw.plan.predict import model_flops_per_step
    from timelaw.timing import get_estimator

    profile = load_profile("cpu-2core-x86_64-1thread")
    cfg = TransformerConfig(d_model=4096, n_layers=16, n_heads=32, vocab_size=2048, seq_len=256)
    setup = TrainSetup(micro_batch_size=64, precision="fp32")
    step = ledger(cfg, setup)
    seconds = float(get_estimator(profile, "memcopy").predict(cfg, setup))
    assert seconds >= float(step.total("flops")) / profile.peak("fp32")
    assert model_flops_per_step(step) / (seconds * profile.peak("fp32")) <= 1


def test_the_cuda_apis_calibration_calls_exist_in_this_torch():
    """No GPU here: at least every torch.cuda name the GPU path uses must exist (a typo would cost a session)."""
    for name in ("Event", "Stream", "stream", "current_stream", "CUDAGraph", "graph", "synchronize", "set_device",
                 "mem_get_info", "get_device_properties", "empty_cache", "OutOfMemoryError", "device_count"):
        assert hasattr(torch.cuda, name), name
    assert hasattr(torch.backends.cuda.matmul, "allow_tf32") and hasattr(torch, "get_float32_matmul_precision")


class _FakeCuda:
    """Just enough of torch.cuda to run the Timer's CUDA path on the CPU (events read the host clock)."""

    def __init__(self, capture_fails=False):
        import contextlib
        import time

        self.capture_fails, self.synced, self.replays = capture_fails, [], 0
        fake = self

        class Event:
            def __init__(self, enable_timing=False):
                self.t = None

            def record(self):
                self.t = time.perf_counter()

            def synchronize(self):
                pass

            def elapsed_time(self, end):
                return (end.t - self.t) * 1e3

        class Graph:
            def replay(self):
                fake.replays += 1

        @contextlib.contextmanager
        def graph(g):
            if fake.capture_fails:
                raise RuntimeError("capture failed (simulated)")
            yield

        self.Event, self.CUDAGraph, self.graph = Event, Graph, graph
        stream_type = type("Stream", (), {"wait_stream": lambda self, other: None})
        self.Stream = self.current_stream = lambda device=None: stream_type()
        self.stream = lambda s: contextlib.nullcontext()
        self.synchronize = lambda device=None: fake.synced.append(device)


@pytest.mark.parametrize("capture_fails", [False, True])
def test_cuda_timer_path_names_the_device_and_falls_back_from_a_failed_graph(monkeypatch, capture_fails):
    from timelaw.devices.microbench import Timer

    fake = _FakeCuda(capture_fails)
    for name in ("Event", "CUDAGraph", "graph", "Stream", "stream", "current_stream", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    x = torch.ones(64, 64)
    timer = Timer("cuda:1", min_seconds=0.001, repeats=2, method="graph")
    seconds = timer(lambda: torch.mm(x, x))
    assert seconds >= 0 and np.isfinite(seconds)
    assert fake.synced and all(d == torch.device("cuda:1") for d in fake.synced)  # never the default device
    if capture_fails:
        assert timer.counts == {"graph_captures": 0, "graph_failures": 1} and fake.replays == 0
    else:
        assert timer.counts == {"graph_captures": 1, "graph_failures": 0} and fake.replays == 1 + 2
    host = timer.with_method("host")
    assert host(lambda: torch.mm(x, x)) > 0 and host.counts is timer.counts
