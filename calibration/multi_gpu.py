"""Optional multi-GPU part of a GPU session: data-parallel reference steps (DDP, and FSDP with full sharding
per block) and the all-reduce table.

Each part has its own timeout and is skipped on a machine with one GPU. Writes one JSON file with the
measured DDP and FSDP step seconds per GPU count (with the setups timelaw prices them with: zero_stage 0 and
3, overlap_grad_reduce on, as torch runs them) and the NCCL all-reduce table (message bytes -> seconds), for
a later session to fit and check `timing/parallel.py` against. Not yet run on a multi-GPU machine.

    PYTHONPATH=. python3 calibration/multi_gpu.py --out OUT/multi_gpu.json --timeout 60
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _wrapped(model, rank: int, setup):
    """DDP for ZeRO 0; FSDP with every block its own fully sharded unit for ZeRO 3."""
    if setup.zero_stage == 0:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[rank])
    from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from timelaw.reference import Block

    return FullyShardedDataParallel(model, device_id=rank, sharding_strategy=ShardingStrategy.FULL_SHARD,
                                    auto_wrap_policy=ModuleWrapPolicy({Block}), use_orig_params=True)


def _ddp_worker(rank, world, init_file, out_file, cfg_json, setup_json, steps):
    import torch
    import torch.distributed as dist

    from timelaw.config import TrainSetup, TransformerConfig
    from timelaw.reference import build_model, make_optimizer, random_batches, train_step

    dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank, world_size=world)
    device = torch.device(f"cuda:{rank}")
    torch.cuda.set_device(device)
    cfg, setup = TransformerConfig.model_validate_json(cfg_json), TrainSetup.model_validate_json(setup_json)
    with device:
        model = build_model(cfg, setup)
    model = _wrapped(model, rank, setup)
    optimizer = make_optimizer(model, setup)
    batches = random_batches(cfg, setup, device, torch.Generator().manual_seed(rank))
    seconds = []
    for i in range(steps + 2):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        train_step(model, optimizer, batches, setup)
        torch.cuda.synchronize(device)
        if i >= 2:
            seconds.append(time.perf_counter() - start)
    if rank == 0:
        Path(out_file).write_text(json.dumps(seconds))
    dist.destroy_process_group()


def ddp_step(world: int, timeout: float, steps: int = 5, zero_stage: int = 0) -> dict:
    """A DDP (zero_stage 0) or FSDP (zero_stage 3) step of the reference model on `world` GPUs."""
    import torch.multiprocessing as mp

    from timelaw.config import TrainSetup, TransformerConfig

    cfg = TransformerConfig(d_model=2048, n_layers=8, n_heads=16, vocab_size=32768, seq_len=2048)
    setup = TrainSetup(micro_batch_size=4, precision="bf16", data_parallel=world, zero_stage=zero_stage,
                       overlap_grad_reduce=True)
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "seconds")
        context = mp.spawn(_ddp_worker, args=(world, init_file, out_file, cfg.model_dump_json(),
                                              setup.model_dump_json(), steps), nprocs=world, join=False)
        deadline = time.monotonic() + timeout
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                for process in context.processes:
                    if process.is_alive():
                        process.terminate()
                raise TimeoutError(f"data-parallel step (ZeRO {zero_stage}) on {world} GPUs did not finish in "
                                   f"{timeout:g} s")
        seconds = json.loads(Path(out_file).read_text())
    return {"gpus": world, "config": cfg.model_dump(), "setup": setup.model_dump(), "seconds": seconds,
            "min_seconds": min(seconds)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per part")
    args = parser.parse_args(argv)
    import torch

    from timelaw.devices.allreduce import measure_allreduce

    count = torch.cuda.device_count()
    result = {"gpus": count, "ddp": [], "fsdp": [], "allreduce": {}, "errors": []}
    if count < 2:
        result["summary"] = f"{count} GPU: nothing to measure"
    else:
        sizes = [2**p for p in range(1, count.bit_length()) if 2**p <= count]
        for world in sizes:
            for part, work in (("ddp", lambda: result["ddp"].append(ddp_step(world, args.timeout))),
                               ("fsdp", lambda: result["fsdp"].append(ddp_step(world, args.timeout, zero_stage=3))),
                               ("allreduce", lambda: result["allreduce"].__setitem__(
                                   world, measure_allreduce(world, "nccl", timeout_seconds=args.timeout)))):
                try:
                    work()
                    print(f"{part} on {world} GPUs: done", flush=True)
                except Exception as error:  # each part alone; one failure leaves the others
                    result["errors"].append(f"{part} x{world}: {type(error).__name__}: {error}")
                    print(f"{part} on {world} GPUs failed: {error}", flush=True)
        result["summary"] = (", ".join(f"{kind.upper()} x{d['gpus']} {d['min_seconds'] * 1e3:.1f} ms"
                                       for kind in ("ddp", "fsdp") for d in result[kind])
                             + f"; all-reduce tables for {sorted(result['allreduce'])} GPUs; "
                             f"{len(result['errors'])} errors")
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(result["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
