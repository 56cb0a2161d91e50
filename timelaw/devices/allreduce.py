"""Measure all-reduce time against message size with torch.distributed, one process per rank.

Used by calibration when more than one rank is available (several GPUs: NCCL; CPU: gloo, on request).
The table it returns is what timing/parallel.py interpolates for data- and tensor-parallel collectives.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

__all__ = ["measure_allreduce", "MESSAGE_BYTES"]

MESSAGE_BYTES = [2**p for p in range(12, 27, 2)]  # 4 KiB .. 64 MiB


def _worker(rank: int, world_size: int, backend: str, init_file: str, out_file: str, sizes, repeats: int):
    import torch
    import torch.distributed as dist

    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    device = torch.device(f"cuda:{rank}") if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    seconds = []
    for size in sizes:
        tensor = torch.ones(size // 4, dtype=torch.float32, device=device)
        dist.all_reduce(tensor)  # warm-up: connection set-up, buffers
        times = []
        for _ in range(repeats):
            dist.barrier()
            if backend == "nccl":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            dist.all_reduce(tensor)
            if backend == "nccl":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        seconds.append(statistics.median(times))
    if rank == 0:
        Path(out_file).write_text(",".join(repr(s) for s in seconds))
    dist.destroy_process_group()


def measure_allreduce(world_size: int, backend: str, sizes=None, repeats: int = 5,
                      timeout_seconds: float | None = None) -> tuple[list, list]:
    """(message bytes, median seconds) of float32 all-reduce across `world_size` local processes.

    Raises TimeoutError (after ending the processes) if they have not finished within timeout_seconds.
    """
    import torch.multiprocessing as mp

    sizes = list(sizes or MESSAGE_BYTES)
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "seconds")
        context = mp.spawn(_worker, args=(world_size, backend, init_file, out_file, sizes, repeats),
                           nprocs=world_size, join=False)
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        while not context.join(timeout=1.0):
            if deadline is not None and time.monotonic() > deadline:
                for process in context.processes:
                    if process.is_alive():
                        process.terminate()
                raise TimeoutError(f"{world_size}-rank {backend} all-reduce did not finish in {timeout_seconds:g} s")
        seconds = [float(s) for s in Path(out_file).read_text().split(",")]
    return [float(s) for s in sizes], seconds
