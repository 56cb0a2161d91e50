"""A one-line progress bar on stderr, drawn only when stderr is a terminal (logs and pipes stay clean)."""
from __future__ import annotations

import sys
import time

__all__ = ["Progress"]

BAR_WIDTH = 24
REDRAW_SECONDS = 0.2


class Progress:
    def __init__(self, total_runs: int, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.run, self.label, self.last_draw = total_runs, 0, "", 0.0

    def start(self, label: str) -> None:
        self.run, self.label = self.run + 1, label
        self.update(0.0, float("nan"))

    def update(self, fraction: float, loss: float) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last_draw < REDRAW_SECONDS:
            return
        self.last_draw = now
        filled = int(BAR_WIDTH * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{self.run}/{self.total}] {self.label} |{bar}| {fraction:4.0%} loss {loss:.3f} ")
        self.stream.flush()

    def done(self, message: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\033[K[{self.run}/{self.total}] {message}\n")
            self.stream.flush()
