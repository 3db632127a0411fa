"""A one-line progress bar on stderr, for long replays and imports."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, stream=sys.stderr, width: int = 30) -> None:
        self.total, self.label, self.stream, self.width = max(total, 0), label, stream, width
        self.done, self._started, self._shown = 0, time.monotonic(), 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown >= 0.2 or self.done >= self.total:
            self._shown = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * self.width)
        rate = self.done / max(now - self._started, 1e-9)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}]"
            f" {fraction:6.1%} {self.done}/{self.total} ({rate:,.0f}/s)"
        )
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.monotonic())
        self.stream.write("\n")
