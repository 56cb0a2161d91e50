"""`timelaw calibrate`, `timelaw profiles` and `timelaw systems`."""
from __future__ import annotations

import argparse
import json
import sys

MAX_HOLDOUT_MAPE = 25.0  # = calibrate.DEFAULT_MAX_HOLDOUT_MAPE (not imported: `timelaw --help` stays light)


def register(subparsers) -> None:
    p = subparsers.add_parser("calibrate", help="measure this device and write its profile",
                              description="Microbenchmarks and timed reference steps on a device, fitted "
                                          "into a profile written atomically to the cache directory.")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--quick", action="store_true", help="reduced sweep and step set (~3 min on a 2-core CPU)")
    p.add_argument("--out", help="write the profile JSON here instead of the cache directory")
    p.add_argument("--name", help="profile name (default: derived from the device)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int,
                   help="CPU threads for torch while measuring (default on a CPU: 1, timed by process CPU time, "
                        "which stays repeatable on a shared machine; more threads are timed by the wall clock)")
    p.add_argument("--allreduce", action="store_true",
                   help="also measure all-reduce: NCCL between this machine's GPUs, gloo between 2 CPU processes")
    p.add_argument("--allreduce-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="give up on an all-reduce group size after this long (default 120)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="wall-clock budget: no timing pass starts that would end after it (default: the plan's, "
                        "150 s for a quick CPU run, 120 s for a quick GPU run)")
    p.add_argument("--max-holdout-mape", type=float, default=MAX_HOLDOUT_MAPE, metavar="PERCENT",
                   help="refuse to save a profile whose fit misses its own held-out steps by more than this "
                        f"(default {MAX_HOLDOUT_MAPE:g})")
    p.add_argument("--json", action="store_true", help="print the profile's name, path and errors as JSON")
    p.set_defaults(func=_calibrate)

    p = subparsers.add_parser("profiles", help="list known device profiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_profiles)

    p = subparsers.add_parser("systems", help="list known multi-node systems (devices per node, links)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_systems)


def _calibrate(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401  (calibration measures with it)
    except ImportError:
        print('timelaw calibrate needs torch, which is not installed: pip install "timelaw[torch]"',
              file=sys.stderr)
        return 1
    from timelaw.devices.calibrate import CalibrationError, calibrate

    try:
        threads = args.threads if args.threads or not args.device.startswith("cpu") else 1
        profile = calibrate(device=args.device, quick=args.quick, out=args.out, name=args.name, seed=args.seed,
                            threads=threads, allreduce=args.allreduce, time_budget_seconds=args.time_budget,
                            max_holdout_mape_percent=args.max_holdout_mape,
                            allreduce_timeout_seconds=args.allreduce_timeout)
    except CalibrationError as error:
        print(f"calibration refused: {error}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        import json

        from timelaw.devices.registry import cache_dir

        path = args.out or str(cache_dir() / f"{profile.name}.json")
        print(json.dumps({"profile": profile.name, "label": profile.label, "path": str(path),
                          "validation": profile.validation}, indent=1))
        return 0
    print(f"{profile.label}")
    for method, stats in profile.validation.items():
        mape = stats["holdout_mape_percent"]
        print(f"  {method:9s} held-out MAPE " + ("   n/a " if mape is None else f"{mape:6.1f}%") +
              f"  (fit on {stats['n_fit']} steps, tested on {stats['n_holdout']})")
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


def _systems(args: argparse.Namespace) -> int:
    from timelaw.devices.system import list_systems, load_system

    rows = []
    for name, path in list_systems().items():
        system = load_system(path)
        rows.append({"name": name, "source": system.source, "devices_per_node": system.devices_per_node,
                     "device": system.device.name,
                     "intra_node_GBps": system.intra_node.bandwidth / 1e9,
                     "inter_node_GBps_per_device": system.inter_node.bandwidth / 1e9,
                     "inter_node_algorithm": system.inter_node_algorithm, "path": str(path)})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['name']:26s} {r['source']:11s} {r['devices_per_node']} x {r['device']:16s} "
                  f"{r['intra_node_GBps']:6.1f} GB/s in a node, {r['inter_node_GBps_per_device']:6.2f} GB/s "
                  f"per device between nodes ({r['inter_node_algorithm']})  {r['path']}")
    return 0
