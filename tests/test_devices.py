"""Device profiles: JSON round trip, atomic saving, spec-sheet labelling, and a real quick calibration."""
import json

import numpy as np
import pytest

from timelaw.config import TrainSetup, TransformerConfig
from timelaw.devices.profile import AllReduceTable, DeviceProfile, DeviceSpec, MatmulSweep
from timelaw.devices.registry import (
    ProfileError, default_profile, list_profiles, load_profile, read_profile, save_profile, shipped_dir,
)
from timelaw.timing import predict_step_time

SPEC_SHEETS = ["a100-sxm-40gb", "a100-sxm-80gb", "h100-sxm", "h100-pcie", "h200", "l4", "rtx-3090", "rtx-4090"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TIMELAW_CACHE_DIR", str(tmp_path / "cache"))


def test_every_spec_sheet_gpu_is_shipped_and_says_it_is_uncalibrated():
    known = list_profiles()
    for name in SPEC_SHEETS:
        profile = load_profile(name)
        assert name in known and profile.source == "spec sheet" and not profile.calibrated
        assert "UNCALIBRATED" in profile.label and "not measured" in profile.description
        assert profile.peak("bf16") > profile.peak("fp32") > 0 and profile.memory_bytes >= 24 * 2**30


def test_profile_round_trips_through_json(tmp_path):
    profile = load_profile("h100-sxm")
    path = save_profile(profile, tmp_path / "p.json")
    again = load_profile(path)
    assert again == profile
    cfg = TransformerConfig(d_model=512, n_layers=8, n_heads=8)
    assert predict_step_time(cfg, profile=again) == predict_step_time(cfg, profile=profile)


def test_save_is_atomic_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_profile(load_profile("l4"), tmp_path / "device.json")
    before = path.read_text()

    def broken_dump(self, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(DeviceProfile, "to_json", broken_dump)
    with pytest.raises(RuntimeError, match="disk full"):
        save_profile(load_profile("h200"), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["device.json"]  # no temporary file left behind


def test_unknown_profile_error_lists_the_known_ones():
    with pytest.raises(ValueError, match="known profiles:.*h100-sxm"):
        load_profile("tpu-v9")


# --- validation on load ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_peak", [-1.0, 0.0, float("nan"), float("inf")])
def test_a_profile_with_an_impossible_peak_is_refused_naming_the_peak(tmp_path, bad_peak):
    record = json.loads((shipped_dir() / "h100-sxm.json").read_text())
    record["peak_flops"]["bf16"] = bad_peak
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(record))  # json writes NaN and Infinity as bare words, as a careless tool would
    with pytest.raises(ProfileError, match=r"broken\.json.*peak_flops\.bf16"):
        load_profile(path)
    with pytest.raises(ValueError, match="peak_flops"):  # built in Python: pydantic names the field too
        DeviceProfile.model_validate(record)


def test_a_truncated_profile_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text((shipped_dir() / "l4.json").read_text()[:200])
    with pytest.raises(ProfileError, match=r"cut\.json is not valid JSON") as refused:
        load_profile(path)
    assert "pydantic" not in str(refused.value)


@pytest.mark.parametrize("field, value", [
    ("memory_bandwidth", float("nan")), ("memory_bytes", 0.0), ("kernel_seconds", -1e-6),
    ("matmul_efficiency", 1.5), ("bandwidth_by_class", {"norm": -5.0}),
    ("coefficients", {"flops": {"flops_at_peak_seconds": float("nan")}}),
])
def test_other_impossible_values_are_refused_naming_the_field(tmp_path, field, value):
    record = {**json.loads((shipped_dir() / "h100-sxm.json").read_text()), field: value}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ProfileError, match=field):
        load_profile(path)


def test_sweeps_and_all_reduce_tables_must_be_positive_and_regular():
    with pytest.raises(ValueError, match="increasing"):
        MatmulSweep(sizes=[64, 16], flops_per_second={"fp32": [[[1e9] * 2] * 2] * 2})
    with pytest.raises(ValueError, match="2x2x2"):
        MatmulSweep(sizes=[16, 64], flops_per_second={"fp32": [[1e9, 1e9]]})
    with pytest.raises(ValueError, match="positive finite"):
        MatmulSweep(sizes=[16, 64], flops_per_second={"fp32": [[[1e9, float("nan")]] * 2] * 2})
    with pytest.raises(ValueError, match="increasing"):
        AllReduceTable(by_group_size={2: ([1e6, 1e3], [1e-4, 1e-5])})
    with pytest.raises(ValueError, match="positive finite"):
        AllReduceTable(by_group_size={2: ([1e3, 1e6], [0.0, 1e-4])})


def test_every_shipped_profile_passes_validation():
    for name, path in list_profiles().items():
        assert read_profile(path).name == name


def test_a_profile_missing_a_coefficient_is_refused_not_read_as_zero():
    profile = load_profile("h100-sxm")
    partial = {k: v for k, v in profile.coefficients["roofline"].items() if k != "data_parallel_seconds"}
    older = profile.model_copy(update={"coefficients": {**profile.coefficients, "roofline": partial}})
    with pytest.raises(ValueError, match="data_parallel_seconds.*recalibrate"):
        predict_step_time(TransformerConfig(d_model=256, n_layers=2, n_heads=4), profile=older)


# --- hardware facts apart from fitted coefficients -----------------------------------------------------------

def test_the_spec_holds_the_hardware_facts_and_nothing_fitted():
    profile = load_profile("cpu-2core-x86_64-1thread")
    spec = profile.spec
    assert isinstance(spec, DeviceSpec) and not isinstance(spec, DeviceProfile)
    assert not {"coefficients", "validation", "measurements"} & set(spec.model_dump())
    assert (spec.peak_flops, spec.matmul, spec.memory_bandwidth) == (
        profile.peak_flops, profile.matmul, profile.memory_bandwidth)
    assert DeviceProfile.from_spec(spec, profile.coefficients, profile.validation, profile.measurements) == profile


def test_a_recalibration_replaces_the_coefficients_and_leaves_the_spec_alone():
    profile = load_profile("cpu-2core-x86_64-1thread")
    cfg, setup = TransformerConfig(d_model=128, n_layers=2, n_heads=2), TrainSetup(precision="fp32")
    doubled = {m: {k: 2 * v for k, v in c.items()} for m, c in profile.coefficients.items()}
    doubled["roofline"]["host_seconds_per_kernel"] = profile.coefficients["roofline"]["host_seconds_per_kernel"]
    again = DeviceProfile.from_spec(profile.spec, doubled)
    assert again.spec == profile.spec
    for method in ("flops", "memcopy", "roofline"):  # every term doubled: twice the time
        assert predict_step_time(cfg, setup, again, method) == pytest.approx(
            2 * predict_step_time(cfg, setup, profile, method), rel=1e-12)


def test_an_estimator_needs_only_the_spec_and_its_coefficients():
    from timelaw.timing import ESTIMATORS

    profile = load_profile("h100-sxm")
    cfg, setup = TransformerConfig(d_model=512, n_layers=4, n_heads=8), TrainSetup(micro_batch_size=4)
    on_spec = ESTIMATORS["roofline"](profile.spec, profile.coefficients["roofline"])
    assert float(on_spec.predict(cfg, setup)) == predict_step_time(cfg, setup, profile)


# --- the default profile: this machine's device ----------------------------------------------------------

def _measured_on(host: str, cpu_name: str, name: str, device_type: str = "cpu") -> DeviceProfile:
    profile = load_profile("cpu-2core-x86_64-1thread")
    return profile.model_copy(update={"name": name, "device_type": device_type, "provenance": {
        **profile.provenance, "device": {**profile.provenance["device"], "host": host, "name": cpu_name}}})


def test_default_profile_is_the_one_measured_on_this_machines_device(monkeypatch):
    import os
    import platform
    import time

    from timelaw.devices import registry

    assert default_profile().name == registry.DEFAULT_SHIPPED_PROFILE  # nothing cached: the spec sheet
    this_cpu = f"cpu-{os.cpu_count()}core-{platform.machine()}-1thread"
    save_profile(_measured_on(platform.node(), this_cpu, "mine"))
    assert default_profile().name == "mine"
    # newer files for other devices: a CPU of another host, a GPU this machine lacks, a spec sheet, junk
    time.sleep(0.01)
    save_profile(_measured_on("elsewhere", this_cpu, "their-cpu"))
    save_profile(_measured_on(platform.node(), "NVIDIA H100 80GB HBM3", "absent-gpu", "cuda"))
    save_profile(load_profile("l4").model_copy(update={"name": "copied-spec-sheet"}))
    (registry.cache_dir() / "junk.json").write_text("{")
    monkeypatch.setattr(registry, "_gpu_names", lambda: [])
    assert default_profile().name == "mine"
    # the same GPU present: an accelerator's calibration comes before the CPU's
    monkeypatch.setattr(registry, "_gpu_names", lambda: ["NVIDIA H100 80GB HBM3"])
    assert default_profile().name == "absent-gpu"


def _sweep(rate_at_16: float, rate_at_64: float) -> MatmulSweep:
    """A 2x2x2 sweep whose rate depends only on m: rate_at_16 at m=16, rate_at_64 at m=64."""
    table = [[[rate_at_16] * 2] * 2, [[rate_at_64] * 2] * 2]
    return MatmulSweep(sizes=[16, 64], flops_per_second={"fp32": table})


def test_matmul_sweep_interpolates_in_log2_space_and_clamps_at_the_edges():
    sweep = _sweep(1e9, 4e9)
    # m = 32 is halfway between 16 and 64 in log2, so the rate is halfway in log2: sqrt(1e9 x 4e9) = 2e9
    assert sweep.rate("fp32", 32, 20, 50) == pytest.approx(2e9, rel=1e-12)
    assert sweep.rate("fp32", 16, 16, 16) == pytest.approx(1e9, rel=1e-12)
    assert sweep.rate("fp32", 4, 16, 16) == pytest.approx(1e9, rel=1e-12)  # below the grid: clamped
    assert sweep.rate("fp32", 4096, 1, 10**6) == pytest.approx(4e9, rel=1e-12)  # above: clamped
    many = sweep.rate("fp32", np.array([16.0, 32.0, 64.0]), 16, 16)
    assert many.shape == (3,) and many == pytest.approx([1e9, 2e9, 4e9], rel=1e-12)


def test_a_copied_sweep_with_a_new_table_answers_with_its_own_table():
    old = _sweep(1e9, 4e9)
    assert old.rate("fp32", 32, 32, 32) == pytest.approx(2e9)  # builds and caches old's interpolator
    new = old.model_copy(update={"flops_per_second": _sweep(3e9, 12e9).flops_per_second})
    assert new.rate("fp32", 32, 32, 32) == pytest.approx(6e9)
    assert old.rate("fp32", 32, 32, 32) == pytest.approx(2e9)
    profile = load_profile("h100-sxm").model_copy(update={"matmul": old})
    assert profile.matmul_rate("fp32", 32, 32, 32) == pytest.approx(2e9)
    faster = profile.model_copy(update={"matmul": new})
    assert faster.matmul_rate("fp32", 32, 32, 32) == pytest.approx(6e9)


try:  # the calibration tests skip one by one without torch; the ones above still run
    import torch

    from timelaw.reference import time_training_steps
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")

from timelaw.devices.calibrate import CalibrationError, CalibrationPlan, calibrate  # noqa: E402

TINY_PLAN = CalibrationPlan(matmul_sizes=(32, 128, 512), n_fit=14, step_time_scale=0.25, timed_steps=3,
                            warmup_steps=2, min_seconds=0.005)


@needs_torch
def test_calibration_refuses_a_missing_device_and_leaves_the_profile_alone(tmp_path):
    path = save_profile(load_profile("l4"), tmp_path / "mine.json")
    before = path.read_text()
    if not torch.cuda.is_available():
        with pytest.raises(CalibrationError, match="no CUDA GPU"):
            calibrate(device="cuda", out=path)
    with pytest.raises(CalibrationError, match="device must be"):
        calibrate(device="tpu", out=path)
    assert path.read_text() == before


@needs_torch
def test_interrupted_calibration_leaves_the_previous_profile_intact(tmp_path, monkeypatch):
    path = save_profile(load_profile("l4"), tmp_path / "mine.json")
    before = path.read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("timelaw.devices.calibrate._measure_steps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        calibrate(device="cpu", out=path, plan=TINY_PLAN, threads=1, progress=False)
    assert path.read_text() == before


@needs_torch
def test_quick_cpu_calibration_predicts_fresh_steps(tmp_path):
    """A reduced calibration on this CPU predicts steps timed afterwards, on shapes it never saw.

    Stated tolerance: mean absolute error under 35% for the roofline estimator on three fresh shapes; CPU
    timings on a shared 2-core machine vary by 10-20% from run to run, so tighter bounds would be noise.
    Both the calibration and the fresh steps count process CPU time (one thread), as calibrate does on CPU.
    """
    out = tmp_path / "cpu.json"
    profile = calibrate(device="cpu", out=out, plan=TINY_PLAN, threads=1, progress=False,
                        max_holdout_mape_percent=None)
    assert json.loads(out.read_text())["source"] == "measured"
    assert profile.calibrated and set(profile.coefficients) == {"flops", "memcopy", "roofline"}
    fresh = [TransformerConfig(d_model=96, n_layers=3, n_heads=2, vocab_size=1024, seq_len=96),
             TransformerConfig(d_model=160, n_layers=2, n_heads=2, vocab_size=3000, seq_len=64),
             TransformerConfig(d_model=64, n_layers=5, n_heads=1, vocab_size=512, seq_len=128)]
    setup = TrainSetup(micro_batch_size=3, precision="fp32")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as calibrated
    try:
        errors = []
        for cfg in fresh:
            measured = time_training_steps(cfg, setup, steps=5, warmup_steps=2, clock="process").seconds
            errors.append(abs(predict_step_time(cfg, setup, profile=profile) / measured - 1))
    finally:
        torch.set_num_threads(threads)
    assert sum(errors) / len(errors) < 0.35, errors


@needs_torch
def test_gloo_allreduce_between_two_processes_is_timed():
    from timelaw.devices.allreduce import measure_allreduce
    from timelaw.devices.profile import AllReduceTable

    sizes, seconds = measure_allreduce(2, "gloo", sizes=[4096, 4 * 2**20], repeats=2)
    assert sizes == [4096.0, 4 * 2**20.0] and all(0 < s < 5 for s in seconds)
    table = AllReduceTable(by_group_size={2: (sizes, seconds)})
    assert table.seconds(2, 4 * 2**20) == pytest.approx(seconds[1])
