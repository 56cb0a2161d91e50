"""The cross-node all-reduce model against published nccl-tests measurements.

Each point is an all_reduce_perf result someone published for whole nodes of 8 GPUs, with the link rates
of their machine; the System is built from those rates with the efficiencies the shipped spec-sheet systems
assume (NVLink 0.8, network 0.9) and timelaw.timing.network prices the same all-reduce. Bus bandwidth is
nccl-tests' convention: message x 2 (n - 1) / n / time.

    python benchmarks/network_allreduce.py

Writes benchmarks/results/network_allreduce.json. Every point here was seen while the model was chosen
(ring vs reduce-inside-the-node-first, and which systems get which): none is held out; docs/validation.md
says so.
"""
from __future__ import annotations

import json
from pathlib import Path

from timelaw.devices import load_profile
from timelaw.devices.system import Link, System
from timelaw.provenance import provenance
from timelaw.timing.network import all_reduce_seconds

RESULTS = Path(__file__).resolve().parent / "results"

GB = 1e9

POINTS = [
    {
        "name": "GCP A3 Mega: 8 x H100 per node, 8 x 200 Gb/s (GPUDirect-TCPXO)",
        "source": "github.com/lessizzmore/create-a3mega-ztan-fork, file ztan-NCCL-test-result "
                  "(all_reduce_perf -b 8 -e 8G -f 2 -g 1, 16 ranks, 8 per node)",
        "device": "h100-sxm", "intra_bandwidth": 450e9, "inter_bandwidth_per_gpu": 200e9 / 8,
        "algorithm": "hierarchical",
        "measured_seconds": [(2, 2 ** 30, 6737.4e-6), (2, 8 * 2 ** 30, 47743e-6)],  # (nodes, bytes, in-place time)
    },
    {
        "name": "8 x A100 SXM per node, 4 x 200 Gb/s HDR",
        "source": "github.com/NVIDIA/nccl/issues/1048 (all-reduce between two nodes: 86 GB/s bus bandwidth); "
                  "message size not stated, taken as the largest of its -e 4G sweep",
        "device": "a100-sxm-80gb", "intra_bandwidth": 300e9, "inter_bandwidth_per_gpu": 4 * 200e9 / 8 / 8,
        "algorithm": "ring", "measured_busbw": [(2, 4 * 2 ** 30, 86 * GB)],
    },
    {
        "name": "8 x H100 per node, 8 dual-port 200 Gb/s CX7 RoCE (400 Gb/s per GPU), NVLS enabled",
        "source": "github.com/NVIDIA/nccl/issues/1031 (bus bandwidth 310 GB/s on 2 nodes, 180 GB/s on 4); "
                  "message size not stated, taken as 8 GiB (bandwidth-bound)",
        "device": "h100-sxm", "intra_bandwidth": 450e9, "inter_bandwidth_per_gpu": 400e9 / 8,
        "algorithm": "hierarchical", "measured_busbw": [(2, 8 * 2 ** 30, 310 * GB), (4, 8 * 2 ** 30, 180 * GB)],
    },
    {
        "name": "8 x A100 80GB per node, 8 x 100 Gb/s RoCE on PCIe",
        "source": "github.com/NVIDIA/nccl-tests/issues/169 (all_reduce_perf -f 2 -b 1G -e 8G: about 100 GB/s "
                  "on 2 nodes, 70 on 3, 58 on 4 and 5, 40 on 6); taken at 8 GiB",
        "device": "a100-sxm-80gb", "intra_bandwidth": 300e9, "inter_bandwidth_per_gpu": 100e9 / 8,
        "algorithm": "ring",
        "measured_busbw": [(2, 8 * 2 ** 30, 100 * GB), (3, 8 * 2 ** 30, 70 * GB), (4, 8 * 2 ** 30, 58 * GB),
                           (5, 8 * 2 ** 30, 58 * GB), (6, 8 * 2 ** 30, 40 * GB)],
    },
    {
        "name": "8 x H100 per node, 4 x 400 Gb/s RoCE, NCCL_ALGO=Ring",
        "source": "github.com/NVIDIA/nccl/issues/1368 (40 ranks on 5 nodes, -b 1M -e 1G: ring bus bandwidth "
                  "190 GB/s, tree 150); taken at 1 GiB",
        "device": "h100-sxm", "intra_bandwidth": 450e9, "inter_bandwidth_per_gpu": 4 * 400e9 / 8 / 8,
        "algorithm": "ring", "measured_busbw": [(5, 2 ** 30, 190 * GB)],
    },
]


def system_for(point: dict) -> System:
    return System(
        name=point["name"], source="spec sheet", device=load_profile(point["device"]), devices_per_node=8,
        inter_node_algorithm=point["algorithm"],
        intra_node=Link(bandwidth=point["intra_bandwidth"], latency_seconds=1e-5, efficiency=0.8),
        inter_node=Link(bandwidth=point["inter_bandwidth_per_gpu"], latency_seconds=1e-5, efficiency=0.9))


def measurements(point: dict) -> list[tuple[int, int, float]]:
    """(nodes, message bytes, seconds) of a point, from its times or its bus bandwidths."""
    if "measured_seconds" in point:
        return point["measured_seconds"]
    return [(nodes, m, m * 2 * (8 * nodes - 1) / (8 * nodes) / busbw) for nodes, m, busbw in point["measured_busbw"]]


def main() -> dict:
    rows = []
    for point in POINTS:
        system = system_for(point)
        for nodes, message, seconds in measurements(point):
            predicted = float(all_reduce_seconds(message, 8, nodes, system))
            factor = 2 * (8 * nodes - 1) / (8 * nodes)
            rows.append({
                "system": point["name"], "source": point["source"], "algorithm": point["algorithm"],
                "nodes": nodes, "shaped_the_model": True, "message_bytes": message, "measured_seconds": seconds,
                "predicted_seconds": predicted, "measured_busbw_GBps": message * factor / seconds / 1e9,
                "predicted_busbw_GBps": message * factor / predicted / 1e9,
                "error_percent": (predicted / seconds - 1) * 100,
            })
    result = {"rows": rows, "provenance": provenance(
        method="timelaw.timing.network.all_reduce_seconds on Systems built from each machine's link rates",
        data="published nccl-tests all_reduce_perf results (sources per row)", source="published",
        command="python benchmarks/network_allreduce.py")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "network_allreduce.json").write_text(json.dumps(result, indent=1))
    for r in rows:
        print(f"{r['nodes']} nodes {r['message_bytes'] / 2 ** 30:4.0f} GiB  "
              f"measured busbw {r['measured_busbw_GBps']:6.1f} GB/s  "
              f"predicted {r['predicted_busbw_GBps']:6.1f}  time error {r['error_percent']:+6.1f}%  "
              f"{r['algorithm']:12s} {r['system']}")
    return result


if __name__ == "__main__":
    main()
