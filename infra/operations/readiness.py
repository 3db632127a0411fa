"""Readiness: whether this instance can serve, and what the read models are doing.

Each component is checked in a thread with a time limit, so that a database that does not
answer makes the check fail in `health_timeout` seconds instead of hanging the probe. A
read model is *stalled* when it is behind and its position has not moved for
`health_stall_seconds`; the instance is not ready while one is stalled, while one has
quarantined more than `health_max_quarantined` aggregates, or while a database or the data
directory fails. Kafka itself does not decide readiness: the store of record still takes
commands while the broker is away, and a read model it cannot feed shows as stalled.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as Timeout
from typing import TYPE_CHECKING, Any

from infra.event_store.notification_feed import SOURCE
from projections.runtime.runner import ProjectionRunner

if TYPE_CHECKING:
    from infra.composition_root import Container

Report = dict[str, Any]
Heads = dict[str, tuple[int, int]]  # read model -> (position, events behind)


class Readiness:
    def __init__(self, container: Container, clock: Callable[[], float] = time.monotonic) -> None:
        self.container, self.settings, self.clock = container, container.settings, clock
        self._moved: dict[str, tuple[int, float]] = {}  # projection -> (position, since)
        # Few threads: a hung database blocks them, and later checks then time out in the
        # queue rather than piling up threads.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readiness")

    def check(self) -> tuple[bool, Report]:
        checks = {
            "event_store": self.container.store_db.ping,
            "read_database": self.container.read_db.ping,
            "data_dir": self._data_dir,
            "projections": self._projections,
        }
        futures = {name: self._pool.submit(_timed, check) for name, check in checks.items()}
        deadline = self.clock() + self.settings.health_timeout
        components = {name: self._outcome(future, deadline) for name, future in futures.items()}
        components["kafka"] = {"status": "configured" if self.container.uses_kafka else "embedded"}
        return self._verdict(components)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- components ----------------------------------------------------------------------
    def _outcome(self, future: Future[Report | None], deadline: float) -> Report:
        try:
            result = future.result(timeout=max(deadline - self.clock(), 0.0))
        except Timeout:
            return {
                "status": "unavailable",
                "detail": f"no answer within {self.settings.health_timeout:g} s",
            }
        except Exception as error:
            return {"status": "unavailable", "detail": f"{type(error).__name__}: {error}"[:500]}
        return result if isinstance(result, dict) else {"status": "ok"}

    def _data_dir(self) -> Report | None:
        """Write, sync and remove a small file: a full or read-only disk fails here."""
        uses_sqlite = any(
            url.startswith("sqlite:///")
            for url in (self.settings.store_url, self.settings.read_url)
        )
        if not uses_sqlite:
            return {"status": "ok", "detail": "not used: both databases are PostgreSQL"}
        with tempfile.NamedTemporaryFile(dir=self.settings.data_dir, prefix=".ready-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
        return None

    def _projections(self) -> Report:
        heads = self._heads()
        return {
            runner.projection.name: self._projection(runner, heads)
            for runner in self.container.runners
        }

    def _projection(self, runner: ProjectionRunner, heads: Heads | None) -> Report:
        name = runner.projection.name
        quarantined = runner.quarantine_count()
        report: Report = {"status": "ok", "quarantined": quarantined}
        if heads is None:
            report["status"] = "unknown"  # Kafka did not say where the topic ends
        else:
            report.update(self._progress(name, *heads[name]))
        if quarantined > self.settings.health_max_quarantined:
            report["status"] = "quarantined"
        return report

    def _progress(self, name: str, position: int, lag: int) -> Report:
        stalled = self._stalled_for(name, position, lag)
        report: Report = {"position": position, "lag": lag, "stalled_seconds": round(stalled, 1)}
        if stalled > self.settings.health_stall_seconds:
            report["status"] = "stalled"
        elif lag:
            report["status"] = "catching_up"
        return report

    def _heads(self) -> Heads | None:
        """(position, events behind) per read model."""
        if not self.container.uses_kafka:
            return self._feed_heads()
        lags = self._kafka_lags()
        if lags is None:
            return None
        topic = self.settings.events_topic
        return {
            r.projection.name: (
                sum(r.positions(topic).values()),
                lags.get(r.projection.name, 0) + r.owed(),
            )
            for r in self.container.runners
        }

    def _feed_heads(self) -> Heads:
        last = self.container.desk.recorder.max_notification_id() or 0
        return {
            r.projection.name: (p := r.position(SOURCE, 0), max(last - p + 1, 0) + r.owed())
            for r in self.container.runners
        }

    def _kafka_lags(self) -> dict[str, int] | None:
        """Records behind per read model; None when Kafka did not say in time."""
        probes = self.container.kafka
        try:
            return probes.consumer_lag() if probes is not None else None
        except Exception:
            return None

    def _stalled_for(self, name: str, position: int, lag: int) -> float:
        now = self.clock()
        previous = self._moved.get(name)
        if lag == 0 or previous is None or previous[0] != position:
            self._moved[name] = (position, now)
            return 0.0
        return now - previous[1]

    # -- the verdict ---------------------------------------------------------------------
    def _verdict(self, components: Report) -> tuple[bool, Report]:
        failing = [
            name
            for name in ("event_store", "read_database", "data_dir")
            if components[name]["status"] != "ok"
        ]
        projections = components["projections"]
        # Unknown when the positions or the topic's end could not be read in time (the
        # read database, already judged above, or the broker, which does not decide).
        degraded = projections.get("status") == "unavailable"
        if not degraded:
            failing += _failing_projections(projections)
            degraded = any(r["status"] in ("unknown", "catching_up") for r in projections.values())
        status = "unavailable" if failing else "degraded" if degraded else "ok"
        return not failing, {"status": status, "failing": failing, "components": components}


def _failing_projections(projections: Report) -> list[str]:
    return [
        f"projection {name}"
        for name, report in projections.items()
        if report["status"] in ("stalled", "quarantined")
    ]


def _timed(check: Callable[[], Any]) -> Any:
    return check()
