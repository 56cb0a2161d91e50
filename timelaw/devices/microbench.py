"""Microbenchmarks with torch on one device: matmul sweep, bandwidth per op class, launch cost, clock warm-up.

Each benchmark repeats its operation until a minimum time has passed (so small ops are timed over many calls)
and reports the fastest of several such repeats: on a shared machine interference only ever adds time.

On a CUDA GPU the device's own time is measured, not the host's: CUDA events around the timed region, and
for matrix products a CUDA graph of the repeated calls, so that a product of a few microseconds is timed as
a kernel rather than as Python dispatch (`Timer(..., method="host")` keeps the host's view, which is what
the launch-cost benchmark wants). Every synchronisation names the device being measured.
"""
from __future__ import annotations

import time
from typing import Callable

from timelaw.ledger import ADAMW_BYTES_READ, ADAMW_BYTES_WRITTEN

__all__ = ["Timer", "matmul_sweep", "bandwidth_by_class", "kernel_seconds", "warm_up", "DTYPES"]


def _torch():
    import torch

    return torch


DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MAX_CALLS = 2000  # per timed repeat (and per captured graph)


class Timer:
    """Fastest seconds per call of a function on a device, over `repeats` timed runs of many calls.

    method: "auto" (CUDA events on a CUDA device, the clock elsewhere), "graph" (CUDA events around a CUDA
    graph replay of the calls; falls back to events if the capture fails) or "host" (the host clock with a
    synchronisation at each end, on every device).
    """

    def __init__(self, device: str, min_seconds: float = 0.02, repeats: int = 3, clock: str = "wall",
                 method: str = "auto"):
        self.device, self.min_seconds, self.repeats, self.method = device, min_seconds, repeats, method
        # process CPU time on a shared CPU: see timelaw.reference.time_training_steps
        self.now = time.process_time if clock == "process" else time.perf_counter
        self.cuda = device.startswith("cuda")
        self.counts = {"graph_captures": 0, "graph_failures": 0}  # shared with timers made by with_method

    def with_method(self, method: str) -> "Timer":
        timer = Timer(self.device, self.min_seconds, self.repeats, method=method)
        timer.now, timer.counts = self.now, self.counts
        return timer

    def sync(self):
        from timelaw.reference import synchronize

        synchronize(_torch().device(self.device))

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.cuda and self.method != "host":
            return self._cuda(fn, graph=self.method == "graph")
        fn()  # warm-up: allocation, kernel selection
        self.sync()
        start = self.now()
        fn()
        self.sync()
        once = max(self.now() - start, 1e-7)
        calls = min(MAX_CALLS, max(1, int(self.min_seconds / once)))
        results = []
        for _ in range(self.repeats):
            self.sync()
            start = self.now()
            for _ in range(calls):
                fn()
            self.sync()
            results.append((self.now() - start) / calls)
        return min(results)

    def _cuda(self, fn, graph: bool) -> float:
        torch = _torch()
        device = torch.device(self.device)
        fn()  # warm-up: allocation, cuBLAS heuristics
        self.sync()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        once = max(start.elapsed_time(end) / 1e3, 1e-7)
        calls = min(MAX_CALLS, max(1, int(self.min_seconds / once)))
        replay = self._capture(fn, calls, device) if graph else None
        results = []
        for _ in range(self.repeats):
            start.record()
            if replay is not None:
                replay.replay()
            else:
                for _ in range(calls):
                    fn()
            end.record()
            end.synchronize()
            results.append(start.elapsed_time(end) / 1e3 / calls)
        return min(results)

    def _capture(self, fn, calls: int, device):
        """A CUDA graph of `calls` calls of fn (which must write into preallocated outputs), or None."""
        torch = _torch()
        try:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs requires
                for _ in range(3):
                    fn()
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(calls):
                    fn()
            graph.replay()  # the first replay uploads the graph
            self.sync()
            self.counts["graph_captures"] += 1
            return graph
        except Exception:  # a capture that fails is timed with events instead, never fatally
            self.counts["graph_failures"] += 1
            self.sync()
            return None


def warm_up(device: str, max_seconds: float = 10.0, window_seconds: float = 0.25, tolerance: float = 0.01) -> dict:
    """Run large matrix products until their rate is steady (GPUs start from idle clocks).

    Stops when two consecutive windows of `window_seconds` agree within `tolerance`, after at least one
    second, or after `max_seconds`. Returns what it saw (for the profile's provenance). CPUs return at once.
    """
    torch = _torch()
    if not device.startswith("cuda"):
        return {"seconds": 0.0, "windows": 0, "steady": True}
    dev = torch.device(device)
    size = 8192
    a = torch.randn(size, size, device=dev, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=dev, dtype=torch.bfloat16)
    out = torch.empty(size, size, device=dev, dtype=torch.bfloat16)
    flops = 2.0 * size**3
    rates, began, steady = [], time.perf_counter(), False
    while time.perf_counter() - began < max_seconds:
        torch.cuda.synchronize(dev)
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < window_seconds:
            for _ in range(4):
                torch.mm(a, b, out=out)
            calls += 4
            torch.cuda.synchronize(dev)
        rates.append(flops * calls / (time.perf_counter() - start))
        if (len(rates) >= 2 and time.perf_counter() - began >= 1.0
                and abs(rates[-1] / rates[-2] - 1) < tolerance):
            steady = True
            break
    del a, b, out
    return {"seconds": time.perf_counter() - began, "windows": len(rates), "steady": steady,
            "bf16_flops_per_second_by_window": rates}


def matmul_sweep(timer: Timer, sizes: list[int], precisions: list[str], progress=None) -> dict[str, list]:
    """Achieved flops/s of (m x k) @ (k x n) for every m, n, k in `sizes`: precision -> [m][n][k].

    On a CUDA GPU each product is timed as a kernel (a CUDA graph of repeated products, CUDA events).
    """
    torch = _torch()
    timer = timer.with_method("graph") if timer.cuda else timer
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
                    out = torch.empty(m, n, device=timer.device, dtype=dtype)
                    row.append(2.0 * m * n * k / timer(lambda: torch.mm(a, b, out=out)))
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
    """AdamW update on fp32 tensors: 16 bytes read and 12 written per parameter, as in the ledger.

    torch's default implementation for the device is used (per tensor on a CPU, foreach on a GPU), as in the
    reference model's training steps.
    """
    torch = _torch()
    params = [torch.nn.Parameter(torch.randn(elements // 8, device=timer.device)) for _ in range(8)]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    return (ADAMW_BYTES_READ + ADAMW_BYTES_WRITTEN) * elements / timer(optimizer.step)


def kernel_seconds(timer: Timer) -> float:
    """Host cost of one eager op on a tiny tensor: launch and dispatch, no real work (host clock)."""
    torch = _torch()
    timer = timer.with_method("host")
    x = torch.ones(8, device=timer.device)
    ops_per_call = 50

    def fifty_adds():
        y = x
        for _ in range(ops_per_call):
            y = y + 1.0
        return y

    return timer(fifty_adds) / ops_per_call
