"""The command line of systems, parallel layouts, device counts and money: --system, predict's layout flags,
optimize's and plan's device searches, and `timelaw layout`."""
from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

import timelaw
from timelaw import TrainSetup
from timelaw.cli import build_parser, main

SMALL = ["--max-params", "2e8"]  # a small search space: each search well under a second
MODEL = ["--d-model", "768", "--layers", "12"]  # 12 heads of 64 by default


def run_json(capsys, *argv: str) -> dict:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def run_error(capsys, *argv: str) -> str:
    """The one-line error of a command that fails, by argparse (SystemExit 2) or by the clean error path."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pydantic" not in err, err
    return err.strip().splitlines()[-1]


# --- --system -------------------------------------------------------------------------------------------------

def test_the_issue_command_parses_as_written():
    args = build_parser().parse_args(["plan", "--target-loss", "2.9", "--deadline", "72h", "--system",
                                      "dgx-h100-80gb", "--price", "2.5"])
    assert (args.target_loss, args.deadline, args.system, args.price, args.profile) == (
        2.9, "72h", "dgx-h100-80gb", 2.5, None)
    assert args.tensor_parallel_sizes == [1] and args.max_devices == 8


def test_plan_on_a_system_prices_its_devices(capsys):
    result = run_json(capsys, "plan", "--target-loss", "2.9", "--deadline", "72h", "--system", "dgx-h100-80gb",
                      "--price", "2.5", *SMALL)
    assert result["loss"] <= 2.9 and result["hours"] <= 72
    assert math.isclose(result["dollars"], result["devices"] * result["hours"] * 2.5, rel_tol=1e-12)
    assert result["profile"].startswith("dgx-h100-80gb (8 x h100")  # the System's label, not a bare profile


def test_system_by_path_is_the_system_by_name(capsys):
    path = str(timelaw.list_systems()["dgx-a100-80gb"])
    flags = [*MODEL, "--hours", "1", "--data-parallel", "16"]
    by_path = run_json(capsys, "predict", *flags, "--system", path)
    by_name = run_json(capsys, "predict", *flags, "--system", "dgx-a100-80gb")
    assert by_path == by_name and by_name["profile"].startswith("dgx-a100-80gb")
    on_one_profile = run_json(capsys, "predict", *flags, "--profile", "a100-sxm-80gb")
    assert on_one_profile["seconds_per_step"] != by_name["seconds_per_step"]  # the network is priced


def test_frontier_takes_a_system(capsys):
    result = run_json(capsys, "frontier", "--hours", "0.1", "1", "--system", "dgx-a100-80gb", *SMALL)
    assert result["hours"] == [0.1, 1.0] and result["profile"].startswith("dgx-a100-80gb")


def test_profile_and_system_together_or_a_bad_system_are_one_line_errors(capsys):
    err = run_error(capsys, "predict", *MODEL, "--hours", "1", "--profile", "a100-sxm-80gb", "--system",
                    "dgx-a100-80gb")
    assert "--system" in err and "--profile" in err
    err = run_error(capsys, "optimize", "--hours", "1", "--system", "no-such-system", *SMALL)
    assert "no system named 'no-such-system'" in err and "dgx-h100-80gb" in err


# --- predict's parallel layout --------------------------------------------------------------------------------

def test_predict_layout_flags_set_the_setup(capsys):
    result = run_json(capsys, "predict", *MODEL, "--hours", "1", "--system", "dgx-a100-80gb",
                      "--tensor-parallel", "4", "--pipeline-parallel", "2", "--data-parallel", "2",
                      "--pipeline-interleave", "3", "--sequence-parallel", "--zero-stage", "2",
                      "--overlap-grad-reduce")
    setup = TrainSetup(**result["setup"])
    assert (setup.tensor_parallel, setup.pipeline_parallel, setup.data_parallel, setup.pipeline_interleave,
            setup.sequence_parallel, setup.zero_stage, setup.overlap_grad_reduce) == (4, 2, 2, 3, True, 2, True)
    assert result["devices"] == 16 and setup.global_batch_size == 16  # micro-batch 8 x 2 data-parallel ranks


def test_predict_layout_defaults_are_train_setups(capsys):
    result = run_json(capsys, "predict", *MODEL, "--hours", "1", "--profile", "a100-sxm-80gb")
    assert TrainSetup(**result["setup"]) == TrainSetup(micro_batch_size=8) and result["devices"] == 1


def test_predict_zero_and_sharded_layouts_change_the_memory(capsys):
    flags = [*MODEL, "--hours", "1", "--system", "dgx-a100-80gb", "--data-parallel", "8"]
    plain = run_json(capsys, "predict", *flags)
    sharded = run_json(capsys, "predict", *flags, "--zero-stage", "3")
    assert sharded["memory_bytes"] < plain["memory_bytes"]
    assert sharded["setup"]["zero_stage"] == 3 and "zero_stage" not in plain["setup"]  # 0 is left out of dumps


@pytest.mark.parametrize("flags, named", [
    (["--tensor-parallel", "8"], ["--tensor-parallel 8", "--heads (12)"]),  # 8 does not divide 12 heads
    (["--tensor-parallel", "0"], ["--tensor-parallel 0", "greater than 0"]),
    (["--pipeline-parallel", "5"], ["--pipeline-parallel 5", "--layers (12)"]),
    (["--pipeline-interleave", "2"], ["--pipeline-interleave 2", "--pipeline-parallel > 1"]),
    (["--data-parallel", "2", "--global-batch-size", "12"], ["--global-batch-size 12", "--data-parallel (16)"]),
    (["--zero-stage", "5"], ["--zero-stage", "invalid choice: 5"]),
    (["--sequence-parallel", "--tensor-parallel", "4", "--seq-len", "1026"], ["--sequence-parallel",
                                                                               "--seq-len (1026)"]),
])
def test_bad_layout_flags_name_the_flag(capsys, flags, named):
    err = run_error(capsys, "predict", *MODEL, "--hours", "1", "--system", "dgx-a100-80gb", *flags)
    for text in named:
        assert text in err, err


def test_a_validation_error_of_the_new_fields_is_told_in_flags():
    from timelaw.cli_errors import explain

    with pytest.raises(ValidationError) as info:
        TrainSetup(zero_stage=5)
    assert explain(info.value, "predict") == "--zero-stage 5: must be less than or equal to 3"
    with pytest.raises(ValidationError) as info:
        TrainSetup(data_parallel=0)
    assert explain(info.value, "predict").startswith("--data-parallel 0: ")


# --- optimize and plan: devices, tensor-parallel groups, money --------------------------------------------------

def test_optimize_and_plan_pass_the_device_flags_to_the_library(capsys, monkeypatch):
    import timelaw.plan

    calls = {}

    def spy(name):
        def record(*args, **kwargs):
            calls[name] = (args, kwargs)
            raise ValueError("stop here")
        return record

    monkeypatch.setattr(timelaw.plan, "optimize", spy("optimize"))
    monkeypatch.setattr(timelaw.plan, "cheapest", spy("cheapest"))
    run_error(capsys, "optimize", "--dollars", "50", "--price", "3", "--watts", "400", "--max-devices", "16",
              "--tensor-parallel-sizes", "1", "2", "4", "--system", "dgx-a100-80gb", *SMALL)
    _, kwargs = calls["optimize"]
    assert (kwargs["dollars"], kwargs["dollars_per_device_hour"], kwargs["watts_per_device"], kwargs["max_devices"],
            kwargs["tensor_parallel_sizes"]) == (50.0, 3.0, 400.0, 16, (1, 2, 4))
    assert isinstance(kwargs["profile"], timelaw.System) and kwargs["profile"].name == "dgx-a100-80gb"
    assert not {"hours", "minutes", "seconds"} & set(kwargs)
    run_error(capsys, "plan", "--target-loss", "3", "--deadline", "90m", "--tensor-parallel-sizes", "8",
              "--system", "dgx-h100-80gb", *SMALL)
    args, kwargs = calls["cheapest"]
    assert args == (3.0, 1.5) and kwargs["tensor_parallel_sizes"] == (8,) and kwargs["max_devices"] == 8
    assert kwargs["profile"].name == "dgx-h100-80gb"
    assert kwargs["pipeline_parallel_sizes"] == (1,) and kwargs["refine_layout"] is True
    run_error(capsys, "plan", "--target-loss", "3", "--deadline", "90m", "--pipeline-parallel-sizes", "1", "4",
              "--no-layout-refinement", "--system", "dgx-h100-80gb", *SMALL)
    _, kwargs = calls["cheapest"]
    assert kwargs["pipeline_parallel_sizes"] == (1, 4) and kwargs["refine_layout"] is False


def test_optimize_searches_devices_and_tensor_parallel_groups(capsys):
    result = run_json(capsys, "optimize", "--hours", "1", "--system", "dgx-a100-80gb", "--max-devices", "2",
                      "--tensor-parallel-sizes", "2", "--price", "3", "--watts", "400", *SMALL)
    best = result["best"]
    assert best["devices"] == 2 == TrainSetup(**best["setup"]).n_devices  # 1 device has no group of 2
    assert math.isclose(best["dollars"], 2 * best["hours"] * 3, rel_tol=1e-12)
    assert math.isclose(best["energy_kwh"], 2 * best["hours"] * 0.4, rel_tol=1e-12)


def test_optimize_with_a_money_budget(capsys):
    result = run_json(capsys, "optimize", "--dollars", "100", "--price", "2.5", "--max-devices", "4",
                      "--system", "dgx-h100-80gb", *SMALL)
    best = result["best"]
    assert best["devices"] in (1, 2, 4)
    assert math.isclose(best["dollars"], 100, rel_tol=1e-9)
    assert math.isclose(best["hours"] * best["devices"] * 2.5, 100, rel_tol=1e-9)


def test_optimize_needs_a_budget_and_a_price_for_dollars(capsys):
    err = run_error(capsys, "optimize", *SMALL)
    assert "--hours" in err and "--dollars" in err
    both = run_json(capsys, "optimize", "--hours", "1", "--dollars", "100", "--price", "2", "--max-devices", "2",
                    *SMALL)["best"]
    assert both["hours"] <= 1 + 1e-9 and both["dollars"] <= 100 * (1 + 1e-9)
    err = run_error(capsys, "optimize", "--dollars", "100", "--system", "dgx-h100-80gb", *SMALL)
    assert err == "timelaw optimize: error: a budget in dollars needs --price"
    err = run_error(capsys, "predict", *MODEL, "--dollars", "10")  # predict has no money budget
    assert err.endswith("one of the arguments --hours --minutes --seconds is required")


def test_plan_takes_tensor_parallel_sizes(capsys):
    result = run_json(capsys, "plan", "--target-loss", "3.6", "--deadline", "2h", "--max-devices", "2",
                      "--tensor-parallel-sizes", "2", "--system", "dgx-a100-80gb", *SMALL)
    assert result["devices"] == 2 == TrainSetup(**result["setup"]).n_devices  # 1 device has no group of 2
    for sizes in (["0"], ["16"]):  # not a size; no count up to --max-devices 8 has a group of 16 in a node
        err = run_error(capsys, "plan", "--target-loss", "3.6", "--deadline", "2h", "--tensor-parallel-sizes",
                        *sizes, "--system", "dgx-a100-80gb", *SMALL)
        assert "--tensor-parallel-sizes" in err and "tensor_parallel_sizes" not in err


# --- timelaw layout ------------------------------------------------------------------------------------------

LAYOUT = ["layout", "--d-model", "4096", "--layers", "32", "--heads", "32", "--devices", "16",
          "--global-batch-size", "16", "--system", "dgx-a100-80gb"]


def test_layout_json_is_the_fastest_layout_that_fits(capsys):
    result = run_json(capsys, *LAYOUT, "--top", "100000")
    setup = TrainSetup(**result["setup"])
    assert result["devices"] == 16 == setup.n_devices and setup.global_batch_size == 16
    assert setup.tensor_parallel <= 8  # a tensor-parallel group never spans the nodes of 8
    table = result["table"]
    assert len(table) == result["n_feasible"] and table[0]["seconds_per_step"] == result["seconds_per_step"]
    assert all(r["seconds_per_step"] >= result["seconds_per_step"] for r in table)
    across_nodes = [r["seconds_per_step"] for r in table if r["tensor_parallel"] > 8]
    assert all(s > result["seconds_per_step"] for s in across_nodes)  # if tried at all, they lose
    assert result["memory_bytes"] <= result["device_memory_bytes"]
    assert result["config"]["d_model"] == 4096 and result["profile"] == "dgx-a100-80gb"
    assert result["notes"] == ["profile 'dgx-a100-80gb' is a spec sheet, not measured"]


def test_layout_table_and_to_dict(capsys):
    assert main([*LAYOUT, "--top", "3", "--precision", "fp16"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fastest of ") and "on 16 devices of dgx-a100-80gb" in out
    cfg = timelaw.TransformerConfig(d_model=512, n_layers=4, n_heads=8)
    layout = timelaw.best_layout(cfg, TrainSetup(micro_batch_size=1, global_batch_size=8, precision="fp16"),
                                 profile="dgx-a100-80gb", devices=2, top=2)
    d = json.loads(json.dumps(layout.to_dict()))  # JSON as it is
    assert TrainSetup(**d["setup"]) == layout.setup and d["setup"]["precision"] == "fp16"
    assert len(d["table"]) == 2 and d["n_layouts"] == layout.n_layouts and d["mfu"] == layout.mfu


def test_layout_errors_name_the_flag(capsys):
    assert "--devices" in run_error(capsys, "layout", *MODEL, "--global-batch-size", "8")  # required
    assert "--global-batch-size" in run_error(capsys, "layout", *MODEL, "--devices", "2")  # required
    err = run_error(capsys, "layout", *MODEL, "--devices", "0", "--global-batch-size", "8")
    assert err == "timelaw layout: error: --devices must be a whole number >= 1, got 0"
    err = run_error(capsys, "layout", "--d-model", "770", "--layers", "12", "--devices", "2",
                    "--global-batch-size", "8")
    assert "--heads 12 (the default, --d-model / 64)" in err
    err = run_error(capsys, "layout", "--d-model", "8192", "--layers", "80", "--devices", "1",
                    "--global-batch-size", "32", "--system", "dgx-a100-80gb")
    assert "use more devices or a smaller model" in err
    err = run_error(capsys, "layout", "--devices", "2", "--global-batch-size", "8")
    assert err == "timelaw layout: error: give the model as --config PATH, or as --d-model and --layers"


def test_weights_in_16_bits_reaches_the_setup(capsys):
    plain = run_json(capsys, "predict", *MODEL, "--hours", "1", "--system", "dgx-a100-80gb")
    megatron = run_json(capsys, "predict", *MODEL, "--hours", "1", "--system", "dgx-a100-80gb",
                        "--weights-in-16-bits")
    assert megatron["setup"]["weights_in_16_bits"] is True and "weights_in_16_bits" not in plain["setup"]
    assert megatron["memory_bytes"] < plain["memory_bytes"]  # no autocast copies, a 16-bit residual stream
