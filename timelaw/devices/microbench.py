"""Microbenchmarks with torch on one device: matmul sweep, bandwidth per op class, launch cost, attention.

Each benchmark repeats its operation until a minimum wall time has passed (so small ops are timed over many
calls) and reports the median of several such repeats, synchronising GPUs around the timed region.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

from timelaw.ledger import ADAMW_BYTES_READ, ADAMW_BYTES_WRITTEN, FLASH_BACKWARD_FLOPS, FLASH_FORWARD_FLOPS

__all__ = ["Timer", "matmul_sweep", "bandwidth_by_class", "kernel_seconds", "attention_rates", "DTYPES"]


def _torch():
    import torch

    return torch


DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class Timer:
    """Median seconds per call of a function on a device."""

    def __init__(self, device: str, min_seconds: float = 0.02, repeats: int = 3, clock: str = "wall"):
        self.device, self.min_seconds, self.repeats = device, min_seconds, repeats
        # process CPU time on a shared CPU: see timelaw.reference.time_training_steps
        self.now = time.process_time if clock == "process" else time.perf_counter

    def sync(self):
        torch = _torch()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        elif self.device.startswith("mps"):
            torch.mps.synchronize()

    def __call__(self, fn: Callable[[], object]) -> float:
        fn()  # warm-up: allocation, kernel selection
        self.sync()
        start = self.now()
        fn()
        self.sync()
        once = max(self.now() - start, 1e-7)
        calls = max(1, int(self.min_seconds / once))
        results = []
        for _ in range(self.repeats):
            self.sync()
            start = self.now()
            for _ in range(calls):
                fn()
            self.sync()
            results.append((self.now() - start) / calls)
        return statistics.median(results)


def matmul_sweep(timer: Timer, sizes: list[int], precisions: list[str], progress=None) -> dict[str, list]:
    """Achieved flops/s of (m x k) @ (k x n) for every m, n, k in `sizes`: precision -> [m][n][k]."""
    torch = _torch()
    rates = {}
    for precision in precisions:
        dtype = getattr(torch, DTYPES[precision])
        table = []
        for m in sizes:
            rows = []
            for n in sizes:
                row = []
                for k in sizes:
                    a = torch.randn(m, k, device=timer.device, dtype=dtype)
                    b = torch.randn(k, n, device=timer.device, dtype=dtype)
                    row.append(2.0 * m * n * k / timer(lambda: torch.mm(a, b)))
                    if progress:
                        progress()
                rows.append(row)
            table.append(rows)
        rates[precision] = table
    return rates


def bandwidth_by_class(timer: Timer, elements: int, precision: str) -> dict[str, float]:
    """Achieved bytes/s of the memory-bound op classes, on vectors of `elements` elements.

    Bytes are counted as the ledger counts them (each input read once, each output written once), so the
    ratio of ledger bytes to these rates is a time.
    """
    torch = _torch()
    F = torch.nn.functional
    dtype = getattr(torch, DTYPES[precision])
    size = torch.tensor([], dtype=dtype).element_size()
    width = 1024
    rows = elements // width
    x = torch.randn(rows, width, device=timer.device, dtype=dtype)
    y = torch.randn(rows, width, device=timer.device, dtype=dtype)
    weight = torch.ones(width, device=timer.device, dtype=dtype)
    ids = torch.randint(0, rows, (rows,), device=timer.device)
    n = rows * width
    out = torch.empty_like(x)  # reused, so the copy does not time fresh page faults
    cases = {
        "copy": (lambda: out.copy_(x), 2 * n * size),
        "elementwise": (lambda: torch.add(x, y, out=out), 3 * n * size),
        "norm": (lambda: F.layer_norm(x, (width,), weight), 2 * n * size),
        "softmax": (lambda: torch.softmax(x, dim=-1), 2 * n * size),
        "embedding": (lambda: F.embedding(ids, x), 2 * n * size),
        "loss": (lambda: F.cross_entropy(x.float(), ids % width), n * (size + 8)),
    }
    rates = {name: nbytes / timer(fn) for name, (fn, nbytes) in cases.items()}
    rates["optimizer"] = _adamw_bandwidth(timer, elements)
    return rates


def _adamw_bandwidth(timer: Timer, elements: int) -> float:
    """AdamW update on fp32 tensors: 16 bytes read and 12 written per parameter, as in the ledger."""
    torch = _torch()
    params = [torch.nn.Parameter(torch.randn(elements // 8, device=timer.device)) for _ in range(8)]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    return (ADAMW_BYTES_READ + ADAMW_BYTES_WRITTEN) * elements / timer(optimizer.step)


def kernel_seconds(timer: Timer) -> float:
    """Cost of one eager op on a tiny tensor: launch and dispatch, no real work."""
    torch = _torch()
    x = torch.ones(8, device=timer.device)
    ops_per_call = 50

    def fifty_adds():
        y = x
        for _ in range(ops_per_call):
            y = y + 1.0
        return y

    return timer(fifty_adds) / ops_per_call


def attention_rates(timer: Timer, precision: str, shapes: list[tuple[int, int, int, int]]) -> list[dict]:
    """Fused attention forward + backward: flops/s for (batch, heads, seq, head_dim) shapes."""
    torch = _torch()
    F = torch.nn.functional
    dtype = getattr(torch, DTYPES[precision])
    results = []
    for batch, heads, seq, head_dim in shapes:
        q, k, v = (torch.randn(batch, heads, seq, head_dim, device=timer.device, dtype=dtype,
                               requires_grad=True) for _ in range(3))

        def step():
            F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

        flops = float(FLASH_FORWARD_FLOPS + FLASH_BACKWARD_FLOPS) * batch * heads * seq * seq * head_dim
        results.append({"batch": batch, "heads": heads, "seq": seq, "head_dim": head_dim,
                        "flops_per_second": flops / timer(step)})
    return results
