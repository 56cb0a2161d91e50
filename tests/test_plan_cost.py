"""Device counts, money and the cheapest plan for a target loss (timelaw.plan.cost, timelaw.plan.cheapest)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from timelaw import TrainSetup, cheapest, optimize, predict_loss
from timelaw.plan.cost import device_counts
from timelaw.plan.space import SearchSpace

H100 = "h100-sxm"
# A small space keeps each device count's search well under a second.
SMALL = SearchSpace(d_model_max=1536, n_layers=(4, 6, 8, 12, 16), tokens_per_step=(2 ** 15, 2 ** 17, 2 ** 19),
                    micro_batch_sizes=(8, 32))
PRICE = 2.5


def test_device_counts_are_powers_of_two_and_the_maximum():
    assert device_counts(1) == (1,)
    assert device_counts(8) == (1, 2, 4, 8)
    assert device_counts(12) == (1, 2, 4, 8, 12)
    with pytest.raises(ValueError, match="max_devices"):
        device_counts(0)
    # on a System of 8-device nodes: powers of two inside a node, then whole nodes
    assert device_counts(64, devices_per_node=8) == (1, 2, 4, 8, 16, 32, 64)
    assert device_counts(40, devices_per_node=8) == (1, 2, 4, 8, 16, 32, 40)
    assert device_counts(4, devices_per_node=8) == (1, 2, 4)


def test_devices_on_a_system_cross_nodes_and_never_hurt():
    losses = []
    for most in (1, 8, 16):
        best = optimize(hours=2, profile="dgx-h100-80gb", space=SMALL, max_devices=most,
                        dollars_per_device_hour=PRICE).best
        losses.append(best.loss)
        assert best.dollars == pytest.approx(best.devices * 2 * PRICE, rel=1e-12)
    assert losses[0] >= losses[1] >= losses[2]


def test_more_devices_never_hurt_and_costs_add_up():
    losses = []
    for most in (1, 2, 4):
        best = optimize(hours=2, profile=H100, space=SMALL, max_devices=most, dollars_per_device_hour=PRICE,
                        watts_per_device=700).best
        losses.append(best.loss)
        assert best.devices <= most and best.setup.n_devices == best.devices
        assert best.dollars == pytest.approx(best.devices * 2 * PRICE, rel=1e-12)
        assert best.energy_kwh == pytest.approx(best.devices * 2 * 0.7, rel=1e-12)
    assert losses[0] >= losses[1] >= losses[2]


def test_a_budget_in_dollars_buys_devices_times_hours():
    best = optimize(dollars=50, dollars_per_device_hour=PRICE, profile=H100, space=SMALL, max_devices=4).best
    assert best.devices * best.hours * PRICE == pytest.approx(50, rel=1e-12) and best.dollars == pytest.approx(50)
    with pytest.raises(ValueError, match="dollars_per_device_hour"):
        optimize(dollars=50, profile=H100, space=SMALL)
    # money and a deadline together: each count gets the hours the money buys, or the deadline if shorter
    both = optimize(hours=3, dollars=50, dollars_per_device_hour=PRICE, profile=H100, space=SMALL, max_devices=4).best
    assert both.hours == pytest.approx(min(3, 50 / (PRICE * both.devices)), rel=1e-12)
    assert both.dollars <= 50 * (1 + 1e-12) and both.hours <= 3 * (1 + 1e-12)
    with pytest.raises(ValueError, match="give a budget"):
        optimize(profile=H100, space=SMALL)


def test_cheapest_keeps_its_promise_and_is_minimal():
    plan = optimize(hours=2, profile=H100, space=SMALL, max_devices=4, dollars_per_device_hour=PRICE).best
    found = cheapest(plan.loss, 2, profile=H100, space=SMALL, max_devices=4, dollars_per_device_hour=PRICE)
    assert found.loss <= plan.loss and found.hours <= 2 and found.dollars <= plan.dollars * (1 + 1e-9)
    assert found.dollars == pytest.approx(found.devices * found.hours * PRICE, rel=1e-12)
    # one step fewer of the same plan misses the target: the steps are the fewest that reach it
    shorter = predict_loss(found.config, seconds=(found.steps - 1) * found.seconds_per_step * (1 + 1e-12),
                           setup=found.setup, profile=H100)
    assert shorter.steps == found.steps - 1 and shorter.loss > plan.loss
    # an easier target costs less
    easier = cheapest(plan.loss + 0.2, 2, profile=H100, space=SMALL, max_devices=4, dollars_per_device_hour=PRICE)
    assert easier.dollars < found.dollars


def test_cheapest_says_what_the_deadline_allows():
    with pytest.raises(ValueError, match=r"best loss reachable by then is \d\.\d{4}"):
        cheapest(1.5, 0.5, profile=H100, space=SMALL, max_devices=2, dollars_per_device_hour=PRICE)
    with pytest.raises(ValueError, match="target_loss"):
        cheapest(-1, 1, profile=H100, space=SMALL)


def test_cli_plan_prints_the_cheapest_plan(capsys):
    from timelaw.cli import main

    code = main(["plan", "--target-loss", "3.4", "--deadline", "2h", "--profile", H100, "--price", "2.5",
                 "--max-devices", "2", "--max-params", "3e8", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    import json

    result = json.loads(out)
    assert result["loss"] <= 3.4 and result["hours"] <= 2 and math.isclose(
        result["dollars"], result["devices"] * result["hours"] * 2.5, rel_tol=1e-12)
    assert isinstance(TrainSetup(**result["setup"]), TrainSetup)


def test_a_step_dominated_by_communication_says_so():
    from timelaw import TransformerConfig

    cfg = TransformerConfig(d_model=2048, n_layers=8, n_heads=16)
    across_nodes = predict_loss(cfg, hours=1, profile="dgx-a100-80gb",
                                setup=TrainSetup(micro_batch_size=4, tensor_parallel=16, global_batch_size=4))
    alone = predict_loss(cfg, hours=1, profile="dgx-a100-80gb", setup=TrainSetup(micro_batch_size=4))
    assert any("communication takes" in n and "tensor parallel" in n for n in across_nodes.notes)
    assert not any("communication takes" in n for n in alone.notes)


def test_tensor_parallel_sizes_let_models_too_big_for_one_device_in():
    # ~20B+ parameters need ~16 bytes each to train (bf16 weights and grads, fp32 Adam and master): over
    # 300 GB, so no single 80 GB H100 holds one, and data parallelism alone has no candidate.
    big = SearchSpace(d_model_min=6144, d_model_max=6144, n_layers=(48,), tokens_per_step=(2 ** 20,),
                      micro_batch_sizes=(1,), min_params=2e10, min_steps=1)
    with pytest.raises(ValueError, match="no candidate"):
        optimize(hours=24, profile="dgx-h100-80gb", space=big, max_devices=8)
    searched = optimize(hours=24, profile="dgx-h100-80gb", space=big, max_devices=8, tensor_parallel_sizes=(1, 8),
                        refine_layout=False).best
    assert searched.setup.tensor_parallel == 8 and searched.devices == 8 and searched.n_params > 2e10
    # refined by best_layout: the same model on the 8 devices, split some faster way (never across nodes),
    # so more steps in the 24 h and a lower loss
    best = optimize(hours=24, profile="dgx-h100-80gb", space=big, max_devices=8, tensor_parallel_sizes=(1, 8)).best
    s = best.setup
    assert best.config == searched.config and best.devices == 8 and s.n_devices == 8
    assert s.tensor_parallel * s.pipeline_parallel > 1 and s.tensor_parallel <= 8
    assert best.seconds_per_step < searched.seconds_per_step and best.loss < searched.loss
    assert any(n.startswith("layout refined by best_layout") for n in best.notes)


def test_pipeline_parallel_sizes_are_searched_and_split_the_layers():
    space = SearchSpace(d_model_min=1024, d_model_max=1024, n_layers=(6, 8), tokens_per_step=(2 ** 17,),
                        micro_batch_sizes=(4,), min_steps=1)
    best = optimize(hours=1, profile="dgx-h100-80gb", space=space, max_devices=8, pipeline_parallel_sizes=(4,),
                    refine_layout=False).best
    # only depths that split over 4 stages are candidates; every count is a multiple of 4
    assert best.setup.pipeline_parallel == 4 and best.config.n_layers == 8
    assert best.setup.n_devices == best.devices and best.devices in (4, 8)
    with pytest.raises(ValueError, match="pipeline_parallel_sizes"):
        optimize(hours=1, profile="dgx-h100-80gb", space=space, max_devices=8, pipeline_parallel_sizes=(0,))


def test_the_pruned_bisection_finds_the_same_fastest_plan_as_bisecting_every_candidate():
    from timelaw.plan.cost import fastest_to_reach, steps_to_reach
    from timelaw.plan.inputs import resolve_device, resolve_law, resolve_setup
    from timelaw.plan.search import outcome, price_candidates

    estimator, device = resolve_device(H100, "roofline")
    law = resolve_law(None)
    candidates = price_candidates(SMALL, resolve_setup(None, device), estimator)
    at_deadline = outcome(candidates, 2 * 3600.0, law, None, SMALL.min_steps)
    target = float(np.quantile(at_deadline.loss[np.isfinite(at_deadline.loss)], 0.3))
    able = np.flatnonzero(at_deadline.loss <= target)
    assert able.size > 50
    steps = steps_to_reach(candidates, able, target, law, None, SMALL.min_steps, at_deadline.steps[able])
    seconds = steps * candidates.column("seconds_per_step")[able]
    k, steps_k = fastest_to_reach(candidates, able, target, law, None, SMALL.min_steps, at_deadline.steps[able])
    assert k == int(np.argmin(seconds)) and steps_k == steps[k]


def test_a_searched_optimum_that_fills_a_device_says_memory_bound_it():
    # two months on 8 H100s would train a larger model than fits one GPU beside its copies (ZeRO 1 in the
    # search); the answer says memory chose it and how to search further. One hour: far from the limit.
    space = SearchSpace(d_model_min=3072, d_model_max=4096, n_layers=(16, 24, 32, 40, 48), tokens_per_step=(2 ** 20,),
                        micro_batch_sizes=(1,), min_steps=1)
    long = optimize(hours=24 * 60, profile="dgx-h100-80gb", space=space, max_devices=8)
    note = [n for n in long.notes if "GiB per device" in n]
    assert note and "tensor_parallel_sizes" in note[0] and long.best.devices == 8
    short = optimize(hours=1, profile="dgx-h100-80gb", space=space, max_devices=8)
    assert not any("GiB per device" in n for n in short.notes)
    # the search shards the optimizer state of data-parallel copies; without refinement the user's setup stays
    assert long.best.setup.zero_stage >= 1
    plain = optimize(hours=1, profile="dgx-h100-80gb", space=space, max_devices=8, refine_layout=False).best
    assert plain.setup.zero_stage == 0


def test_a_prediction_says_how_the_step_runs():
    from timelaw import TransformerConfig

    cfg = TransformerConfig(d_model=1024, n_layers=8, n_heads=16)
    setup = TrainSetup(micro_batch_size=4, global_batch_size=64, data_parallel=8, zero_stage=1,
                       weights_in_16_bits=True)
    line = next(l for l in predict_loss(cfg, hours=1, setup=setup, profile="dgx-a100-80gb").text.splitlines()
                if l.strip().startswith("layout"))
    assert "64 sequences/step = micro-batch 4 x 2 accumulation x 8 data parallel" in line
    assert "tensor 1 x pipeline 1, ZeRO 1" in line and "16-bit weights" in line
