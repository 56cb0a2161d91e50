"""A one-line progress bar on stderr, drawn only when stderr is a terminal (logs and pipes stay clean).

With tqdm installed (`pip install "timelaw[progress]"`) each run gets a tqdm bar (rate, elapsed, remaining);
without it, the plain bar below.
"""
from __future__ import annotations

import sys
import time

__all__ = ["Progress"]

BAR_WIDTH = 24
REDRAW_SECONDS = 0.2


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    def __init__(self, total_runs: int, enabled: bool | None = None, stream=None, use_tqdm: bool | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.run, self.label, self.last_draw = total_runs, 0, "", 0.0
        self.tqdm = (_tqdm() if use_tqdm is None else (_tqdm() if use_tqdm else None)) if self.enabled else None
        self.bar = None

    def start(self, label: str) -> None:
        self.run, self.label = self.run + 1, label
        if self.tqdm is not None:
            self.bar = self.tqdm(total=100, desc=f"[{self.run}/{self.total}] {label}", file=self.stream,
                                 leave=False, bar_format="{desc} |{bar}| {n:.0f}% {elapsed}<{remaining}{postfix}")
            return
        self.update(0.0, float("nan"))

    def update(self, fraction: float, loss: float) -> None:
        if self.bar is not None:
            self.bar.n = 100 * min(max(fraction, 0.0), 1.0)
            self.bar.set_postfix_str(f"loss {loss:.3f}", refresh=False)
            self.bar.refresh()
            return
        now = time.monotonic()
        if not self.enabled or now - self.last_draw < REDRAW_SECONDS:
            return
        self.last_draw = now
        filled = int(BAR_WIDTH * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{self.run}/{self.total}] {self.label} |{bar}| {fraction:4.0%} loss {loss:.3f} ")
        self.stream.flush()

    def done(self, message: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.tqdm.write(f"[{self.run}/{self.total}] {message}", file=self.stream)
            return
        if self.enabled:
            self.stream.write(f"\r\033[K[{self.run}/{self.total}] {message}\n")
            self.stream.flush()
