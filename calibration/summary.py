"""The short table that ends a GPU session: what the profile measured and how well it predicts.

Reads the files calibration/gpu_session.sh leaves in its output folder (plain JSON, no timelaw import), so
it still prints what exists when a stage failed.

    python3 calibration/summary.py OUT
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

METHODS = ("flops", "memcopy", "roofline")


def _mapes(estimators: dict) -> str:
    return " ".join(f"{estimators[m]['mape_percent']:8.1f}" if m in estimators else f"{'-':>8s}" for m in METHODS)


def main(argv=None) -> int:
    out = Path((argv or sys.argv[1:] or ["."])[0])
    profile_path = out / "profile.json"
    if not profile_path.exists():
        print("summary: no profile.json (calibration did not finish)")
        return 1
    profile = json.loads(profile_path.read_text())
    prov, noise = profile.get("provenance", {}), profile.get("measurements", {}).get("noise", {})
    device = prov.get("device", {})
    peaks = ", ".join(f"{p} {v / 1e12:.1f} TFLOP/s" for p, v in profile["peak_flops"].items())
    print(f"\n== profile {profile['name']} ({profile['source']}, {prov.get('seconds', 0):.0f} s, "
          f"{noise.get('passes', '?')} timing passes)")
    print(f"device      {device.get('name', '?')}, torch {device.get('torch', '?')}, CUDA {device.get('cuda', '-')}, "
          f"TF32 matmul {device.get('tf32_matmul', '-')}")
    print(f"peaks       {peaks}")
    print(f"bandwidth   copy {profile['memory_bandwidth'] / 1e9:.0f} GB/s; "
          f"launch {profile['kernel_seconds'] * 1e6:.2f} us; "
          f"host/kernel {profile['coefficients'].get('roofline', {}).get('host_seconds_per_kernel', 0) * 1e6:.2f} us")
    print(f"noise       step spread median {noise.get('step_spread_percent_median') or 0:.1f}%, "
          f"max {noise.get('step_spread_percent_max') or 0:.1f}%; graph captures {noise.get('graph_captures')}, "
          f"failures {noise.get('graph_failures')}; warm-up {prov.get('warm_up', {}).get('seconds', 0):.1f} s "
          f"steady={prov.get('warm_up', {}).get('steady')}")
    print(f"clocks      before {prov.get('clocks_before')}\n            after  {prov.get('clocks_after')}")
    roofline = profile["coefficients"].get("roofline", {})
    print("roofline    " + ", ".join(f"{k.removesuffix('_seconds')} {v:.3g}" for k, v in roofline.items()
                                      if k != "host_seconds_per_kernel"))
    skipped = profile.get("measurements", {}).get("skipped_steps", [])
    if skipped:
        print(f"skipped     {len(skipped)} designed steps (out of memory or time)")
    print(f"\n{'MAPE %':34s} {'flops':>8s} {'memcopy':>8s} {'roofline':>8s}")
    validation = profile.get("validation", {})
    own = {m: {"mape_percent": v["holdout_mape_percent"]} for m, v in validation.items()
           if v.get("holdout_mape_percent") is not None}
    print(f"{'calibration held-out (%d steps)' % validation.get('roofline', {}).get('n_holdout', 0):34s} {_mapes(own)}")
    for path in sorted(out.glob("time_accuracy_*.json")):
        result = json.loads(path.read_text())
        bench = result.get("benchmark", {})
        if bench.get("steps"):
            print(f"{'benchmark steps (%d of %d)' % (len(bench['steps']), bench.get('n_designed', 0)):34s} "
                  f"{_mapes(bench['estimators'])}")
            for name, estimators in bench.get("compare", {}).items():
                print(f"{'  same steps, ' + name:34s} {_mapes(estimators)}")
            by_precision = bench["estimators"].get("roofline", {}).get("mape_percent_by_precision", {})
            if by_precision:
                print("  roofline by precision: " + ", ".join(f"{k} {v:.1f}%" for k, v in by_precision.items()))
    multi = out / "multi_gpu.json"
    if multi.exists():
        print(f"\nmulti-GPU   {json.loads(multi.read_text()).get('summary', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
