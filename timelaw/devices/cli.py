"""`timelaw calibrate` and `timelaw profiles`."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("calibrate", help="measure this device and write its profile",
                              description="Microbenchmarks and timed reference steps on a device, fitted "
                                          "into a profile written atomically to the cache directory.")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--quick", action="store_true", help="reduced sweep and step set (~3 min on a 2-core CPU)")
    p.add_argument("--out", help="write the profile JSON here instead of the cache directory")
    p.add_argument("--name", help="profile name (default: derived from the device)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads for torch while measuring (CPU devices)")
    p.add_argument("--allreduce", action="store_true",
                   help="on CPU, also measure gloo all-reduce between 2 processes (GPUs: automatic if >1)")
    p.set_defaults(func=_calibrate)

    p = subparsers.add_parser("profiles", help="list known device profiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_profiles)


def _calibrate(args: argparse.Namespace) -> int:
    from timelaw.devices.calibrate import CalibrationError, calibrate

    try:
        profile = calibrate(device=args.device, quick=args.quick, out=args.out, name=args.name, seed=args.seed,
                            threads=args.threads, allreduce=args.allreduce or None)
    except CalibrationError as error:
        print(f"calibration refused: {error}")
        return 2
    print(f"{profile.label}")
    for method, stats in profile.validation.items():
        print(f"  {method:9s} held-out MAPE {stats['holdout_mape_percent']:6.1f}%  "
              f"(fit on {stats['n_fit']} steps, tested on {stats['n_holdout']})")
    return 0


def _profiles(args: argparse.Namespace) -> int:
    from timelaw.devices.registry import list_profiles, load_profile

    rows = []
    for name, path in list_profiles().items():
        profile = load_profile(path)
        rows.append({"name": name, "source": profile.source, "memory_gib": profile.memory_bytes / 2**30,
                     "path": str(path)})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['name']:24s} {r['source']:11s} {r['memory_gib']:7.1f} GiB  {r['path']}")
    return 0
