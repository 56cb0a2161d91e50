"""DDP's bucketed gradient all-reduce overlapped with the backward (TrainSetup.overlap_grad_reduce): only the
last bucket, or what the backward is too short to hide, stays on the step's critical path."""
import pytest

import timelaw
from timelaw import TrainSetup, TransformerConfig
from timelaw.devices import load_profile
from timelaw.timing import RooflineEstimator
from timelaw.timing.parallel import DDP_BUCKET_BYTES

CFG = TransformerConfig(d_model=1024, n_layers=12, n_heads=16, seq_len=512)
P = timelaw.count_params(CFG).total


def setup(overlap: bool, dp: int = 4, model=CFG) -> TrainSetup:
    return TrainSetup(micro_batch_size=4, global_batch_size=8 * dp, data_parallel=dp, overlap_grad_reduce=overlap)


def all_reduce_and_backward(profile, overlap: bool, model=CFG, dp: int = 4):
    estimator = RooflineEstimator(profile, profile.coefficients["roofline"])
    times = estimator.op_times(model, setup(overlap, dp, model))
    reduce = next(float(s) for op, s, _ in times if op.name == "grads.dp_all_reduce")
    backward = sum(float(s / f) for op, s, f in times if op.phase == "backward") / 2  # one of 2 micro-batches
    return reduce, backward


def test_a_fast_link_leaves_only_the_last_bucket_exposed():
    profile = load_profile("a100-sxm-80gb")
    serial, backward = all_reduce_and_backward(profile, False)
    # ring over 4 ranks of 4 bytes per parameter at 300 GB/s, 10 us per step
    assert serial == pytest.approx(2 * 3 / 4 * 4 * P / 300e9 + 6 * 10e-6, rel=1e-12)
    last = DDP_BUCKET_BYTES / (4 * P)  # 25 MiB of the 4 P bytes
    assert 0 < last < 0.1 and serial < backward  # a backward longer than the all-reduce hides all but the last
    exposed, _ = all_reduce_and_backward(profile, True)
    assert exposed == pytest.approx(last * serial, rel=1e-12)


def test_a_slow_link_leaves_what_the_backward_cannot_hide():
    slow = load_profile("a100-sxm-80gb").model_copy(update={"interconnect_bandwidth": 1e9})
    serial, backward = all_reduce_and_backward(slow, False)
    last = DDP_BUCKET_BYTES / (4 * P)
    assert serial - (1 - last) * backward > last * serial
    exposed, _ = all_reduce_and_backward(slow, True)
    assert exposed == pytest.approx(serial - (1 - last) * backward, rel=1e-12)


def test_gradients_in_one_bucket_cannot_overlap():
    small = TransformerConfig(d_model=128, n_layers=2, n_heads=2, seq_len=128, vocab_size=1000)
    assert 4 * timelaw.count_params(small).total < DDP_BUCKET_BYTES
    profile = load_profile("a100-sxm-80gb")
    assert all_reduce_and_backward(profile, True, small)[0] == all_reduce_and_backward(profile, False, small)[0]


def test_overlap_shortens_the_step_and_is_left_out_of_default_dumps():
    profile = load_profile("a100-sxm-80gb")
    assert timelaw.predict_step_time(CFG, setup(True), profile) < timelaw.predict_step_time(CFG, setup(False), profile)
    assert "overlap_grad_reduce" not in setup(False).model_dump()
    assert TrainSetup(**setup(True).model_dump()) == setup(True)


def _zero_times(profile, stage: int, overlap: bool, dp: int = 4):
    estimator = RooflineEstimator(profile, profile.coefficients["roofline"])
    layout = TrainSetup(micro_batch_size=4, global_batch_size=8 * dp, data_parallel=dp, zero_stage=stage,
                        overlap_grad_reduce=overlap)
    return {(op.name, op.phase): (float(s), float(f)) for op, s, f in estimator.op_times(CFG, layout)}, \
        estimator.op_times(CFG, layout)


def _window(times, phase: str, micro: int = 2) -> float:
    """One micro-batch's compute of `phase` (everything but the data-parallel collectives)."""
    return sum(float(s / f) for op, s, f in times if op.phase == phase and op.axis != "data") / micro


def test_fsdp_gathers_hide_behind_compute_but_the_first_blocks_weights():
    slow = load_profile("a100-sxm-80gb").model_copy(update={"interconnect_bandwidth": 2e9})
    for profile in (load_profile("a100-sxm-80gb"), slow):
        serial, times = _zero_times(profile, 3, False)
        overlapped, _ = _zero_times(profile, 3, True)
        b = 1 / 12  # the first of the 12 blocks' weights is gathered before any compute can run beside it
        for name, phase, window in (("params.dp_all_gather", "forward", "forward"),
                                    ("params.dp_all_gather.bwd", "backward", "backward"),
                                    ("grads.dp_reduce_scatter", "backward", "backward")):
            seconds, factor = serial[(name, phase)]
            # the backward window carries the gather and the reduce-scatter together
            members = [k for k in serial if k[1] == phase and k[0].startswith(("params.dp_", "grads.dp_"))]
            traffic = sum(serial[k][0] / serial[k][1] for k in members) / 2
            exposed = max(b * traffic, traffic - (1 - b) * _window(times, window))
            assert overlapped[(name, phase)][0] == pytest.approx(seconds * exposed / traffic, rel=1e-12)
        assert sum(v[0] for v in overlapped.values()) < sum(v[0] for v in serial.values())


def test_zero_2_scatters_each_micro_batch_beside_its_backward_and_gathers_after_the_step():
    slow = load_profile("a100-sxm-80gb").model_copy(update={"interconnect_bandwidth": 2e9})
    serial, times = _zero_times(slow, 2, False)
    overlapped, _ = _zero_times(slow, 2, True)
    seconds, factor = serial[("grads.dp_reduce_scatter", "backward")]
    traffic = seconds / factor / 2  # one micro-batch's reduce-scatter
    last = DDP_BUCKET_BYTES / (4 * P)
    exposed = max(last * traffic, traffic - (1 - last) * _window(times, "backward"))
    assert exposed < traffic
    assert overlapped[("grads.dp_reduce_scatter", "backward")][0] == pytest.approx(exposed * factor * 2, rel=1e-12)
    # the gather of the updated weights after the step is not overlapped
    assert overlapped[("params.dp_all_gather", "communication")] == serial[("params.dp_all_gather", "communication")]
