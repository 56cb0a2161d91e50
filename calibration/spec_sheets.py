"""Write the spec-sheet profiles of common GPUs into timelaw/data/profiles/ (run from the repo root).

These numbers were NOT measured: they are vendors' published dense peaks (bf16/fp16 tensor-core with fp32
accumulation, the mode PyTorch uses; fp32 without TF32), memory bandwidth and memory size. The efficiencies
and launch cost are assumptions, and every prediction made with these profiles says it is uncalibrated.
Run `timelaw calibrate --device cuda` on the GPU to replace them with measurements.
"""
from __future__ import annotations

from timelaw.devices.profile import DeviceProfile
from timelaw.devices.registry import save_profile, shipped_dir
from timelaw.provenance import provenance
from timelaw.timing.roofline import RooflineEstimator

TB, GB = 1e12, 1e9
GIB = 2**30

# name: (description, bf16 dense flops/s, fp32 flops/s, memory bytes/s, memory bytes, interconnect bytes/s)
SPECS = {
    "a100-sxm-40gb": ("NVIDIA A100 SXM4 40GB", 312 * TB, 19.5 * TB, 1555 * GB, 40 * GIB, 300 * GB),
    "a100-sxm-80gb": ("NVIDIA A100 SXM4 80GB", 312 * TB, 19.5 * TB, 2039 * GB, 80 * GIB, 300 * GB),
    "h100-sxm": ("NVIDIA H100 SXM5 80GB", 989 * TB, 67 * TB, 3350 * GB, 80 * GIB, 450 * GB),
    "h100-pcie": ("NVIDIA H100 PCIe 80GB", 756 * TB, 51 * TB, 2000 * GB, 80 * GIB, 300 * GB),
    "h200": ("NVIDIA H200 SXM 141GB", 989 * TB, 67 * TB, 4800 * GB, 141 * GB, 450 * GB),
    "l4": ("NVIDIA L4 24GB", 121 * TB, 30.3 * TB, 300 * GB, 24 * GIB, 32 * GB),
    "rtx-3090": ("NVIDIA GeForce RTX 3090 24GB", 71 * TB, 35.6 * TB, 936 * GB, 24 * GIB, 32 * GB),
    "rtx-4090": ("NVIDIA GeForce RTX 4090 24GB", 165.2 * TB, 82.6 * TB, 1008 * GB, 24 * GIB, 32 * GB),
}

ASSUMED_MATMUL_EFFICIENCY = 0.7  # large bf16 matmuls typically reach 60-80% of the dense peak
ASSUMED_BANDWIDTH_EFFICIENCY = 0.8
ASSUMED_KERNEL_SECONDS = 5e-6  # eager PyTorch launch + dispatch cost per kernel
ASSUMED_UTILISATION = 0.4  # the flops rule of thumb's "40% MFU"
# Every roofline term at face value; launches add their assumed cost (no fitted host/device overlap).
UNFITTED_ROOFLINE = {**{f: 1.0 for f in RooflineEstimator.feature_names},
                     "host_bound_seconds": 0.0, "constant_seconds": 0.0}


def spec_profile(name: str) -> DeviceProfile:
    description, bf16, fp32, bandwidth, memory, link = SPECS[name]
    return DeviceProfile(
        name=name, device_type="cuda", source="spec sheet",
        description=f"{description}: spec-sheet numbers, not measured; efficiencies assumed",
        memory_bytes=memory, peak_flops={"bf16": bf16, "fp16": bf16, "fp32": fp32},
        memory_bandwidth=ASSUMED_BANDWIDTH_EFFICIENCY * bandwidth, kernel_seconds=ASSUMED_KERNEL_SECONDS,
        matmul_efficiency=ASSUMED_MATMUL_EFFICIENCY, interconnect_bandwidth=link,
        interconnect_latency_seconds=10e-6,
        coefficients={
            "flops": {"flops_at_peak_seconds": 1 / ASSUMED_UTILISATION},
            "memcopy": {"bytes_at_bandwidth_seconds": 1.0, "constant_seconds": 0.0},
            "roofline": UNFITTED_ROOFLINE,
        },
        provenance=provenance(
            method="vendor spec sheet; efficiencies and launch cost assumed, not fitted",
            data="published dense peaks, memory bandwidth and size", source="spec sheet",
            peak_memory_bandwidth=bandwidth,
        ),
    )


if __name__ == "__main__":
    for name in SPECS:
        print(save_profile(spec_profile(name), shipped_dir() / f"{name}.json"))
