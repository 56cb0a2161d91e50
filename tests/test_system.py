"""Systems (nodes, links, measured tables), nccl-tests tables, and collectives priced by network tier.

Expected times are worked out by hand in each test from the shipped spec-sheet numbers:
dgx-a100-80gb: NVLink 300 GB/s x efficiency 0.8 = 240 GB/s, 10 us per step inside a node;
HDR InfiniBand 25 GB/s x 0.9 = 22.5 GB/s, 10 us per step between nodes; 8 GPUs per node.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import timelaw
from timelaw import TrainSetup, TransformerConfig
from timelaw.devices import AllReduceTable, load_profile
from timelaw.devices.nccl_tests import NcclTestsError
from timelaw.devices.system import Link, System, SystemFileError, load_system, read_system
from timelaw.timing import RooflineEstimator, get_estimator
from timelaw.timing.network import (
    all_reduce_seconds, collective_seconds, group_spread, pipeline_crosses_nodes,
)

NCCL = Path(__file__).parent / "data" / "nccl_tests"
VTRAIN = Path(__file__).parent / "data" / "vtrain"
GIB = 2 ** 30
CFG = TransformerConfig(d_model=1024, n_layers=8, n_heads=16, seq_len=512)
NVLINK_A100, HDR = 300e9 * 0.8, 25e9 * 0.9


def dgx_a100(**update) -> System:
    return load_system("dgx-a100-80gb").model_copy(update=update)


def op_named(step, name):
    return next(op for op in step.ops if op.name == name)


# ---- shipped systems, files, validation ------------------------------------------------------------------

def test_shipped_systems_hold_the_published_link_rates_and_say_spec_sheet():
    assert {"dgx-a100-80gb", "dgx-h100-80gb", "workstation-4x-rtx-4090"} <= set(timelaw.list_systems())
    a100, h100, ws = (load_system(n) for n in ("dgx-a100-80gb", "dgx-h100-80gb", "workstation-4x-rtx-4090"))
    # NVLink 3: 600 GB/s both directions -> 300 per direction; HDR 200 Gb/s -> 25 GB/s per GPU
    assert (a100.devices_per_node, a100.intra_node.bandwidth, a100.inter_node.bandwidth) == (8, 300e9, 25e9)
    # NVLink 4: 900 GB/s both directions -> 450; NDR 400 Gb/s -> 50 GB/s per GPU
    assert (h100.devices_per_node, h100.intra_node.bandwidth, h100.inter_node.bandwidth) == (8, 450e9, 50e9)
    # PCIe 4.0 x16: 16 GT/s x 16 lanes x 128/130 / 8 bits = 31.5 GB/s per direction
    assert ws.devices_per_node == 4 and ws.intra_node.bandwidth == pytest.approx(16e9 * 16 * 128 / 130 / 8, rel=2e-3)
    assert (a100.device.name, h100.device.name, ws.device.name) == ("a100-sxm-80gb", "h100-sxm", "rtx-4090")
    for system in (a100, h100, ws):
        assert system.source == "spec sheet" and system.provenance["source"] == "spec sheet"
        assert system.provenance["sources"] and not system.calibrated
        assert "spec-sheet" in system.label


def test_a_system_round_trips_through_json_with_its_device_inline(tmp_path):
    system = dgx_a100(nodes=4)
    path = timelaw.devices.system.save_system(system, tmp_path / "mine.json")
    again = load_system(path)
    assert again == system and again.n_devices == 32
    assert json.loads(path.read_text())["device"]["name"] == "a100-sxm-80gb"


def test_a_bad_system_file_names_the_file_and_the_field(tmp_path):
    data = json.loads((timelaw.devices.system.systems_dir() / "dgx-a100-80gb.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "devices_per_node": 0,
                               "intra_node": {**data["intra_node"], "efficiency": 1.5}}))
    with pytest.raises(SystemFileError) as error:
        read_system(bad)
    assert str(bad) in str(error.value)
    assert "devices_per_node" in str(error.value) and "intra_node.efficiency" in str(error.value)
    bad.write_text(json.dumps({**data, "device": "no-such-gpu"}))
    with pytest.raises(SystemFileError, match="device"):
        read_system(bad)
    bad.write_text(json.dumps(data)[:-20])
    with pytest.raises(SystemFileError, match="not valid JSON"):
        read_system(bad)
    with pytest.raises(ValueError, match="dgx-h100-80gb"):  # an unknown name lists the known ones
        load_system("dgx-z900")


def test_measured_tables_must_fit_the_nodes():
    eight = AllReduceTable(by_group_size={16: ([1e6], [1e-4])})
    with pytest.raises(ValidationError, match="intra_node_allreduce"):
        System.model_validate({**dgx_a100().model_dump(), "intra_node_allreduce": eight.model_dump()})
    twelve = AllReduceTable(by_group_size={12: ([1e6], [1e-4])})
    with pytest.raises(ValidationError, match="inter_node_allreduce"):
        System.model_validate({**dgx_a100().model_dump(), "inter_node_allreduce": twelve.model_dump()})
    with pytest.raises(ValidationError, match="efficiency"):
        Link(bandwidth=1e9, latency_seconds=0, efficiency=0)


# ---- nccl-tests -------------------------------------------------------------------------------------------

def test_all_reduce_perf_output_is_read_in_place_by_default():
    table = AllReduceTable.from_nccl_tests(NCCL / "all_reduce_perf_8gpu.txt")
    sizes, seconds = table.by_group_size[8]  # 8 '#  Rank' lines
    assert list(table.by_group_size) == [8]
    assert sizes == [1048576, 2097152, 4194304, 8388608]
    assert seconds == pytest.approx([58.25e-6, 69.5e-6, 94.0e-6, 138.5e-6], rel=1e-12)
    out_of_place = AllReduceTable.from_nccl_tests(NCCL / "all_reduce_perf_8gpu.txt", in_place=False)
    assert out_of_place.by_group_size[8][1] == pytest.approx([60.5e-6, 70.0e-6, 95.25e-6, 140.0e-6], rel=1e-12)


def test_several_files_make_one_table_and_an_old_format_needs_its_rank_count():
    both = AllReduceTable.from_nccl_tests([NCCL / "all_reduce_perf_8gpu.txt", NCCL / "all_reduce_perf_16gpu_2node.txt"])
    assert sorted(both.by_group_size) == [8, 16]
    assert both.by_group_size[16][1] == pytest.approx([118e-6, 296e-6], rel=1e-12)
    old = NCCL / "all_reduce_perf_old_format.txt"  # no root column, 'N/A' errors, no rank lines
    with pytest.raises(NcclTestsError, match="group_size"):
        AllReduceTable.from_nccl_tests(old)
    assert AllReduceTable.from_nccl_tests(old, group_size=4).by_group_size[4] == (
        [1048576, 4194304], pytest.approx([205e-6, 640e-6], rel=1e-12))
    with pytest.raises(NcclTestsError, match="lists 8 ranks"):
        AllReduceTable.from_nccl_tests(NCCL / "all_reduce_perf_8gpu.txt", group_size=4)


# ---- placement ---------------------------------------------------------------------------------------------

def test_groups_are_placed_tensor_innermost_then_data_then_pipeline():
    # tp = 16 on nodes of 8: ranks 0-7 and 8-15 -> 8 members on each of 2 nodes
    assert group_spread(1, 16, 16, 8) == (8, 2)
    # tp = 2, dp = 8: a data-parallel group is ranks 0, 2, ..., 14 -> 4 on node 0 (0-6), 4 on node 1
    assert group_spread(2, 8, 16, 8) == (4, 2)
    # tp = 4, dp = 2 in one node: {0, 4}
    assert group_spread(4, 2, 8, 8) == (2, 1)
    # tp = 8, dp = 4: ranks 0, 8, 16, 24, one per node
    assert group_spread(8, 4, 32, 8) == (1, 4)
    # pipeline stages tp x dp = 4 ranks apart on 16 ranks: rank 4 -> 8 crosses from node 0 to node 1
    assert pipeline_crosses_nodes(4, 16, 8) and not pipeline_crosses_nodes(4, 8, 8)
    assert pipeline_crosses_nodes(8, 16, 8)


# ---- collective times by hand --------------------------------------------------------------------------

def test_a_1_gib_all_reduce_over_16_gpus_on_2_nodes_by_hand():
    system = dgx_a100()
    # NCCL's ring through 16 ranks: the node's 8 network links (8 x 22.5 GB/s = 180 GB/s, below NVLink's
    # 240) carry 2 x 15/16 of 1 GiB; 2 of the 30 steps cross the network, 28 stay inside, 10 us each:
    #   2013265920 / 180e9 + 30 x 10 us = 11.184811e-3 + 0.300e-3 = 11.484811e-3 s
    # the tree: 2 x 1 GiB / 180e9 + 2 x (7 + 1) x 10 us = 11.930465e-3 + 0.160e-3 = 12.090465e-3 s: the ring wins
    assert float(all_reduce_seconds(GIB, 8, 2, system)) == pytest.approx(11.484811e-3, rel=1e-6)
    # on 4 nodes (32 ranks) the ring's 62 steps (0.62 ms) make the tree faster:
    #   ring 2 x 31/32 x 1 GiB / 180e9 + 0.62e-3 = 12.177638e-3; tree 11.930465e-3 + 2 x (7 + 2) x 10 us = 12.110465e-3
    assert float(all_reduce_seconds(GIB, 8, 4, system)) == pytest.approx(12.110465e-3, rel=1e-6)
    # in one node: a ring over 8 at 240 GB/s, 2 x 7/8 x 1 GiB / 240e9 + 14 x 10 us = 7.969367e-3 s
    assert float(all_reduce_seconds(GIB, 8, 1, system)) == pytest.approx(7.969367e-3, rel=1e-6)
    # the bus bandwidth is bounded by the node's network (180 GB/s) and the time grows with the node count
    times = [float(all_reduce_seconds(GIB, 8, n, system)) for n in (2, 4, 8, 16, 32, 64)]
    assert times == sorted(times)
    assert all(2 * (8 * n - 1) / (8 * n) * GIB / t < 180e9 for n, t in zip((2, 4, 8, 16, 32, 64), times))


def test_two_nodes_of_an_nvlink_sharp_system_reduce_inside_the_node_first():
    system = dgx_a100().model_copy(update={"inter_node_algorithm": "hierarchical"})
    # reduce-scatter + all-gather inside each node, 7.969367e-3 s, pipelined with the all-reduce of 1 GiB / 8
    # between the 2 nodes on each GPU's own link, 2 x 1/2 x 134217728 / 22.5e9 + 2 x 10 us = 5.985232e-3 s:
    # the slower tier, 7.969367e-3 s, a bus bandwidth of 252.6 GB/s, above the 180 GB/s of the network
    assert float(all_reduce_seconds(GIB, 8, 2, system)) == pytest.approx(7.969367e-3, rel=1e-6)
    # on 4 nodes no algorithm beats the node's network: the same price as the plain ring system
    assert float(all_reduce_seconds(GIB, 8, 4, system)) == float(all_reduce_seconds(GIB, 8, 4, dgx_a100()))
    assert timelaw.load_system("dgx-h100-80gb").inter_node_algorithm == "hierarchical"
    assert timelaw.load_system("dgx-a100-80gb").inter_node_algorithm == "ring"


def test_the_data_parallel_all_reduce_of_a_step_is_priced_over_both_tiers():
    setup = TrainSetup(micro_batch_size=4, data_parallel=16)
    op = op_named(timelaw.ledger(CFG, setup), "grads.dp_all_reduce")
    message = float(op.message_bytes)  # 4 bytes per parameter
    assert message == 4 * timelaw.count_params(CFG).total
    node_network = min(8 * HDR, NVLINK_A100)
    ring = 2 * 15 / 16 * message / node_network + 30 * 10e-6
    tree = 2 * message / node_network + 2 * (7 + 1) * 10e-6
    assert float(collective_seconds(op, dgx_a100(), setup)) == pytest.approx(min(ring, tree), rel=1e-12)
    # the bare profile keeps pricing it as one node: a ring over all 16 on its 300 GB/s link
    bare = load_profile("a100-sxm-80gb")
    times = {o.name: s for o, s, _ in RooflineEstimator(bare, bare.coefficients["roofline"]).op_times(CFG, setup)}
    assert float(times["grads.dp_all_reduce"]) == pytest.approx(2 * 15 / 16 * message / 300e9 + 30 * 10e-6, rel=1e-12)


def test_a_tensor_parallel_group_larger_than_a_node_is_priced_over_the_network():
    cfg = TransformerConfig(d_model=4096, n_layers=2, n_heads=64, seq_len=512)
    message = 8 * 512 * 4096 * 2  # micro batch x seq x d_model x 2 bytes (bf16) = 32 MiB
    intra = 2 * 7 / 8 * message / NVLINK_A100 + 14 * 10e-6  # 244.7 us + 140 us = 384.7 us inside one node
    assert intra == pytest.approx(384.70e-6, rel=1e-4)
    # tp = 16 on 2 nodes: ring 2 x 15/16 x M / 180e9 + 30 x 10 us = 649.5 us; tree 2 M / 180e9 + 2 x 8 x 10 us
    # = 372.8 + 160 = 532.8 us: the tree, slower than inside one node
    setup = TrainSetup(micro_batch_size=8, tensor_parallel=16)
    op = op_named(timelaw.ledger(cfg, setup), "attn.tp_all_reduce")
    assert float(op.message_bytes) == message
    seconds = float(collective_seconds(op, dgx_a100(), setup))
    assert seconds == pytest.approx(2 * message / (8 * HDR) + 16 * 10e-6, rel=1e-12)
    assert seconds == pytest.approx(532.83e-6, rel=1e-4) and seconds > intra
    # tp = 64 on 8 nodes: the ring's 126 steps cost 1.26 ms; the tree 372.8 us + 2 x (7 + 3) x 10 us = 572.8 us
    setup = TrainSetup(micro_batch_size=8, tensor_parallel=64)
    op = op_named(timelaw.ledger(cfg, setup), "attn.tp_all_reduce")
    seconds = float(collective_seconds(op, dgx_a100(), setup))
    assert seconds == pytest.approx(572.83e-6, rel=1e-4)
    assert timelaw.predict_step_time(cfg, setup, "dgx-a100-80gb") > 0


def test_pipeline_sends_across_nodes_use_the_network_link():
    setup = TrainSetup(micro_batch_size=2, global_batch_size=8, tensor_parallel=8, pipeline_parallel=2)
    op = op_named(timelaw.ledger(CFG, setup), "pipeline.p2p")
    message = 2 * 512 * 1024 * 4 / 8  # each of the 8 tensor ranks sends its eighth of the fp32 stream
    assert float(op.message_bytes) == message
    assert float(collective_seconds(op, dgx_a100(), setup)) == pytest.approx(message / HDR + 10e-6, rel=1e-12)
    inside = TrainSetup(micro_batch_size=2, global_batch_size=8, tensor_parallel=4, pipeline_parallel=2)
    assert float(collective_seconds(op, dgx_a100(), inside)) == pytest.approx(message / NVLINK_A100 + 10e-6,
                                                                               rel=1e-12)


def test_measured_tables_replace_the_ring_where_they_apply():
    intra = AllReduceTable.from_nccl_tests(NCCL / "all_reduce_perf_8gpu.txt")
    whole = AllReduceTable.from_nccl_tests(NCCL / "all_reduce_perf_16gpu_2node.txt")
    system = dgx_a100(intra_node_allreduce=intra, inter_node_allreduce=whole)
    assert float(all_reduce_seconds(4194304, 8, 1, system)) == pytest.approx(94.0e-6, rel=1e-12)
    assert float(all_reduce_seconds(4194304, 8, 2, system)) == pytest.approx(296e-6, rel=1e-12)  # whole nodes
    # 4 per node on 2 nodes: no table measured that; NCCL's ring or tree over the 4 links (90 GB/s) per node
    m = 4194304
    ring = 2 * 7 / 8 * m / (4 * HDR) + 14 * 10e-6
    tree = 2 * m / (4 * HDR) + 2 * (3 + 1) * 10e-6
    expected = min(ring, tree)
    assert float(all_reduce_seconds(m, 4, 2, system)) == pytest.approx(expected, rel=1e-12)


def test_a_measured_cluster_table_carries_its_efficiency_to_other_node_counts():
    whole = AllReduceTable.from_nccl_tests(NCCL / "all_reduce_perf_16gpu_2node.txt")  # 2 nodes of 8
    system = dgx_a100(inter_node_allreduce=whole)
    m = 4194304
    # the model at 2 nodes, by hand: ring 2 x 15/16 x m / 180e9 + 30 x 10 us = 343.7 us; tree
    # 2 m / 180e9 + 2 x 8 x 10 us = 206.6 us: the tree. Measured: 296 us, 1.43 x slower.
    model_2 = min(2 * 15 / 16 * m / (8 * HDR) + 30 * 10e-6, 2 * m / (8 * HDR) + 16 * 10e-6)
    # at 4 nodes the model gives the tree, 2 m / 180e9 + 2 x (7 + 2) x 10 us, times the measured ratio
    model_4 = min(2 * 31 / 32 * m / (8 * HDR) + 62 * 10e-6, 2 * m / (8 * HDR) + 18 * 10e-6)
    assert float(all_reduce_seconds(m, 8, 4, system)) == pytest.approx(model_4 * 296e-6 / model_2, rel=1e-9)
    # a two-node table faster than the model is not carried to 3+ nodes
    fast = AllReduceTable(by_group_size={16: ([float(m)], [0.5 * model_2])})
    assert float(all_reduce_seconds(m, 8, 4, dgx_a100(inter_node_allreduce=fast))) == pytest.approx(model_4, rel=1e-9)
    # groups that are not whole nodes keep the model
    assert float(all_reduce_seconds(m, 4, 4, system)) == float(all_reduce_seconds(m, 4, 4, dgx_a100()))


# ---- one node stays as it was ---------------------------------------------------------------------------

def test_a_one_node_system_with_the_profiles_link_predicts_exactly_as_the_bare_profile():
    profile = load_profile("a100-sxm-80gb")
    from timelaw.datasets.vtrain import load_allreduce_table

    profile = profile.model_copy(update={"allreduce": load_allreduce_table(VTRAIN / "vtrain_a100_allreduce")})
    link = Link(bandwidth=profile.interconnect_bandwidth, latency_seconds=profile.interconnect_latency_seconds)
    system = System(name="one-node", source="measured", device=profile, devices_per_node=8, intra_node=link,
                    inter_node=Link(bandwidth=1e9, latency_seconds=1e-3))
    for setup in (TrainSetup(micro_batch_size=2, global_batch_size=16, tensor_parallel=2, pipeline_parallel=2,
                             data_parallel=2),
                  TrainSetup(micro_batch_size=4, tensor_parallel=4, data_parallel=2),
                  TrainSetup(micro_batch_size=1, global_batch_size=8, pipeline_parallel=8)):
        bare = timelaw.predict_step_time(CFG, setup, profile)
        assert timelaw.predict_step_time(CFG, setup, system) == bare  # bit for bit


# ---- bad layouts --------------------------------------------------------------------------------------------

def test_a_layout_must_use_the_systems_devices_when_it_has_a_size():
    system = dgx_a100(nodes=2)
    with pytest.raises(ValidationError) as error:
        timelaw.predict_step_time(CFG, TrainSetup(tensor_parallel=2, data_parallel=4), system)
    assert error.value.errors()[0]["loc"] == ("data_parallel",)
    assert "2 x 1 x 4 = 8 devices" in str(error.value) and "16" in str(error.value)
    assert timelaw.predict_step_time(CFG, TrainSetup(tensor_parallel=2, data_parallel=8), system) > 0


@pytest.mark.parametrize("cfg, setup, field", [
    (TransformerConfig(d_model=1024, n_layers=8, n_heads=16), TrainSetup(tensor_parallel=32), "tensor_parallel"),
    (TransformerConfig(d_model=1024, n_layers=8, n_heads=16, n_kv_heads=4), TrainSetup(tensor_parallel=8),
     "tensor_parallel"),
    (TransformerConfig(d_model=1024, n_layers=6, n_heads=16), TrainSetup(global_batch_size=32, pipeline_parallel=4),
     "pipeline_parallel"),
])
def test_splits_the_model_cannot_take_name_the_field(cfg, setup, field):
    with pytest.raises(ValidationError) as error:
        timelaw.predict_step_time(cfg, setup, "dgx-h100-80gb")
    assert error.value.errors()[0]["loc"] == (field,)


# ---- a System wherever a profile is ---------------------------------------------------------------------

def test_a_system_is_accepted_by_name_object_or_path_and_labels_every_prediction(tmp_path):
    setup = TrainSetup(micro_batch_size=8, data_parallel=16)
    by_name = timelaw.predict_step_time(CFG, setup, "dgx-a100-80gb")
    path = timelaw.devices.system.save_system(dgx_a100(), tmp_path / "cluster.json")
    assert timelaw.predict_step_time(CFG, setup, dgx_a100()) == by_name == timelaw.predict_step_time(CFG, setup, path)
    assert by_name > timelaw.predict_step_time(CFG, setup, "a100-sxm-80gb")  # the bare profile: all NVLink
    prediction = timelaw.predict_loss(CFG, hours=1, setup=setup, profile="dgx-a100-80gb")
    assert prediction.spec_sheet and "dgx-a100-80gb" in prediction.profile and "spec-sheet" in prediction.profile
    assert prediction.seconds_per_step == by_name and prediction.breakdown["data_parallel"] > 0
    assert prediction.device_memory_bytes == load_profile("a100-sxm-80gb").memory_bytes
    from timelaw.plan import SearchSpace

    space = SearchSpace(d_model_max=1024, n_layers=(4, 8), tokens_per_step=(2 ** 19,), micro_batch_sizes=(4, 16))
    plan = timelaw.optimize(hours=1, profile="dgx-h100-80gb", setup=TrainSetup(data_parallel=16), space=space, top=2)
    assert "dgx-h100-80gb" in plan.best.profile and plan.best.spec_sheet


def test_fit_time_model_on_a_system_keeps_its_network():
    from timelaw.datasets.vtrain import load_allreduce_table, load_measurements

    rows = load_measurements(VTRAIN / "vtrain_a100_single_node.csv")[::12]
    table = load_allreduce_table(VTRAIN / "vtrain_a100_allreduce")
    system = dgx_a100(intra_node_allreduce=table)
    model = timelaw.fit_time_model(rows, profile=system)
    assert model.system is system and model.profile.name == "a100-sxm-80gb"
    # fitted on one node, it prices a 2-node data-parallel all-reduce on the network: NCCL's ring or tree
    # over each node's 8 x 22.5 GB/s, and a one-node fit never saw the network, so its coefficient stays 1
    assert model.coefficients["network_seconds"] == 1.0 and "network_seconds" in model.provenance_["method"]
    assert model.coefficients["data_parallel_seconds"] != 1.0 or model.coefficients["tensor_parallel_seconds"] != 1.0
    setup = TrainSetup(micro_batch_size=4, precision="fp16", data_parallel=16)
    message = 4 * timelaw.count_params(CFG).total
    hand = min(2 * 15 / 16 * message / (8 * HDR) + 30 * 10e-6, 2 * message / (8 * HDR) + 16 * 10e-6)
    parts = model.breakdown(CFG, setup)
    assert parts["data_parallel"] == pytest.approx(hand, rel=1e-9)
    # inside one node the same all-reduce keeps the fitted data-parallel coefficient and vTrain's table
    inside = TrainSetup(micro_batch_size=4, precision="fp16", data_parallel=8)
    assert model.breakdown(CFG, inside)["data_parallel"] == pytest.approx(
        model.coefficients["data_parallel_seconds"] * float(table.seconds(8, message)), rel=1e-9)
    assert math.isclose(sum(parts.values()), timelaw.predict_step_time(CFG, setup, model), rel_tol=1e-9)
    # a System's estimator from get_estimator uses its device's stored coefficients
    assert get_estimator(system).coefficients == get_estimator(system.device).coefficients
    assert np.isfinite(model.residuals_).all()


def test_the_systems_command_lists_the_shipped_systems(capsys):
    from timelaw.cli import main

    assert main(["systems", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["dgx-h100-80gb"]["devices_per_node"] == 8 and rows["dgx-h100-80gb"]["device"] == "h100-sxm"
    assert rows["dgx-a100-80gb"]["inter_node_GBps_per_device"] == 25.0
    assert main(["systems"]) == 0
    assert "workstation-4x-rtx-4090" in capsys.readouterr().out
