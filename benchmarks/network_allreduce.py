"""The hierarchical all-reduce model against published two-node nccl-tests measurements.

Each point is an all_reduce_perf result someone published for 16 GPUs on 2 nodes of 8, with the link rates
of their machine; the System is built from those rates with the efficiencies the shipped spec-sheet systems
assume (NVLink 0.8, network 0.9) and timelaw.timing.network prices the same all-reduce. Bus bandwidth is
nccl-tests' convention: message x 2 (n - 1) / n / time.

    python benchmarks/network_allreduce.py

Writes benchmarks/results/network_allreduce.json. Which of these points shaped the model (and so are not
held out) is said in docs/validation.md: the first (A3 Mega) was seen before choosing max over sum.
"""
from __future__ import annotations

import json
from pathlib import Path

from timelaw.devices import load_profile
from timelaw.devices.system import Link, System
from timelaw.provenance import provenance
from timelaw.timing.network import all_reduce_seconds

RESULTS = Path(__file__).resolve().parent / "results"

POINTS = [
    {
        "name": "2 x 8 H100 80GB HBM3, 8 x 200 Gb/s per node (GCP A3 Mega, GPUDirect-TCPXO)",
        "source": "github.com/lessizzmore/create-a3mega-ztan-fork, file ztan-NCCL-test-result "
                  "(all_reduce_perf -b 8 -e 8G -f 2 -g 1, 16 ranks, 8 per node)",
        "device": "h100-sxm", "intra_bandwidth": 450e9, "inter_bandwidth_per_gpu": 8 * 200e9 / 8 / 8,
        "measured": [(2 ** 30, 6737.4e-6), (8 * 2 ** 30, 47743e-6)],  # in-place time
        "shaped_the_model": True,
    },
    {
        "name": "2 x 8 A100 SXM, 4 x 200 Gb/s HDR per node",
        "source": "github.com/NVIDIA/nccl/issues/1048 (all-reduce between two nodes: 86 GB/s bus bandwidth; "
                  "single node 232.54 GB/s); message size of the 86 GB/s figure not stated, taken as the "
                  "largest of its -e 4G sweep",
        "device": "a100-sxm-80gb", "intra_bandwidth": 300e9, "inter_bandwidth_per_gpu": 4 * 200e9 / 8 / 8,
        "measured_busbw": [(4 * 2 ** 30, 86e9)],
        "shaped_the_model": False,
    },
]


def system_for(point: dict) -> System:
    return System(
        name=point["name"], source="spec sheet", device=load_profile(point["device"]), devices_per_node=8,
        intra_node=Link(bandwidth=point["intra_bandwidth"], latency_seconds=1e-5, efficiency=0.8),
        inter_node=Link(bandwidth=point["inter_bandwidth_per_gpu"], latency_seconds=1e-5, efficiency=0.9))


def main() -> dict:
    n, rows = 16, []
    factor = 2 * (n - 1) / n
    for point in POINTS:
        system = system_for(point)
        measured = point.get("measured") or [(m, m * factor / bw) for m, bw in point["measured_busbw"]]
        for message, seconds in measured:
            predicted = float(all_reduce_seconds(message, 8, 2, system))
            rows.append({
                "system": point["name"], "source": point["source"], "shaped_the_model": point["shaped_the_model"],
                "message_bytes": message, "measured_seconds": seconds, "predicted_seconds": predicted,
                "measured_busbw_GBps": message * factor / seconds / 1e9,
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
        print(f"{r['message_bytes'] / 2 ** 30:4.0f} GiB  measured busbw {r['measured_busbw_GBps']:6.1f} GB/s  "
              f"predicted {r['predicted_busbw_GBps']:6.1f}  time error {r['error_percent']:+6.1f}%  "
              f"{'(shaped the model) ' if r['shaped_the_model'] else ''}{r['system']}")
    return result


if __name__ == "__main__":
    main()
