"""Helpers shared by the benchmarks: a throwaway Kafka broker, RSS sampling, tables.

Benchmarks run as scripts (`python bench/<name>.py`) from the repository root; `ROOT` is
put on sys.path by `bench_path()` so that they can import the project's packages.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def bench_path() -> None:
    """Make the repository's packages importable when a benchmark runs as a script."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- broker


@contextmanager
def kafka_broker(
    bootstrap: str | None = None, partitions: int = 6, heap: str = "512m"
) -> Iterator[str]:
    """Yields a bootstrap address: `bootstrap` as given, else a fresh broker in a temp dir.

    The fresh broker is stopped and its data dir removed on exit, also on errors.
    """
    if bootstrap:
        yield bootstrap
        return
    bench_path()
    from infra.local_servers.kafka_from_jars import (
        default_libs_dir,
        fetch_jars,
        start_broker,
        stop_broker,
    )

    libs = fetch_jars(ROOT / default_libs_dir())  # an absolute ITSM_DATA_DIR wins over ROOT
    data_dir = Path(tempfile.mkdtemp(prefix="itsm-bench-kafka-"))
    try:
        started = time.perf_counter()
        broker = start_broker(data_dir, libs_dir=libs, partitions=partitions, heap=heap)
        print(
            f"broker {broker.bootstrap} up in {time.perf_counter() - started:.1f}s "
            f"(data in {data_dir})",
            flush=True,
        )
        yield broker.bootstrap
    finally:
        stop_broker(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def scratch_dir(prefix: str = "itsm-bench-", keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- memory


def rss_mib() -> float:
    """Current resident set size of this process (VmRSS), in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return max_rss_mib()  # no /proc: the peak is the best we have


def max_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class RssSample:
    events: int
    seconds: float
    rss_mib: float
    extra: dict[str, Any] = field(default_factory=dict)


class RssSampler:
    """Takes one RSS sample each time progress crosses a multiple of `every` events.

    Thread-safe: several worker threads may report progress; one sample is kept per step.
    """

    def __init__(self, every: int = 10_000) -> None:
        self.every = every
        self.samples: list[RssSample] = []
        self._next = every
        self._lock = threading.Lock()
        self._started = time.perf_counter()

    def start(self) -> None:
        self._started = time.perf_counter()

    def baseline(self, **extra: Any) -> None:
        """A sample at 0 events (before any event is applied)."""
        with self._lock:
            self.samples.append(RssSample(0, 0.0, rss_mib(), extra))

    def progress(self, events: int, **extra: Any) -> None:
        if events < self._next:  # the cheap check first, without the lock
            return
        with self._lock:
            if events < self._next:
                return
            self.samples.append(
                RssSample(events, time.perf_counter() - self._started, rss_mib(), extra)
            )
            self._next = (events // self.every + 1) * self.every

    def final(self, events: int, **extra: Any) -> None:
        """Sample at the end unless the last sample already was at `events`."""
        with self._lock:
            if not self.samples or self.samples[-1].events != events:
                self.samples.append(
                    RssSample(events, time.perf_counter() - self._started, rss_mib(), extra)
                )

    def at(self, events: int) -> RssSample | None:
        """The first sample taken at or after `events`."""
        return next((s for s in self.samples if s.events >= events), None)

    def second_half(self) -> list[RssSample]:
        if not self.samples:
            return []
        last = self.samples[-1].events
        return [s for s in self.samples if s.events >= last / 2]

    def slope_per(self, per: int = 10_000) -> float:
        """Least-squares slope of RSS over the second half, in MiB per `per` events."""
        half = self.second_half()
        if len(half) < 2:
            return 0.0
        xs = [s.events / per for s in half]
        ys = [s.rss_mib for s in half]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0

    def growth_second_half(self) -> float:
        """Relative RSS growth from the start to the end of the second half (0.03 = 3%)."""
        half = self.second_half()
        if len(half) < 2 or half[0].rss_mib <= 0:
            return 0.0
        return half[-1].rss_mib / half[0].rss_mib - 1


# ---------------------------------------------------------------- output


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out=None) -> None:
    """A plain right-aligned text table; floats with one decimal unless pre-formatted."""
    out = out or sys.stdout

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in text:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)), file=out)
    out.flush()


def print_summary(title: str, items: Sequence[tuple[str, Any]], out=None) -> None:
    """`title` then aligned `key: value` lines."""
    out = out or sys.stdout
    width = max(len(k) for k, _ in items)
    print(f"\n== {title} ==", file=out)
    for key, value in items:
        print(f"  {key.ljust(width)}  {value}", file=out)
    out.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of them at or below it (of 30
    samples, p99 is the largest; of 100, the second largest)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "n/a"


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
