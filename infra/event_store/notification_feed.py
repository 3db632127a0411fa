"""The in-process feed: projections read the event store's notification log directly.

Used when no Kafka is configured, so a single process serves the API and keeps the read
models current. It drives the same ProjectionRunner as the Kafka worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification

from infra.event_store.publishing import published, to_envelope
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner

SOURCE = "notifications"
log = logging.getLogger(__name__)


class NotificationFeed:
    def __init__(
        self,
        recorder: ApplicationRecorder,
        mapper: Mapper[UUID],
        runners: list[ProjectionRunner],
        batch_size: int = 500,
    ) -> None:
        self.recorder, self.mapper, self.runners = recorder, mapper, runners
        self.batch_size = batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> int:
        """Feed one batch to every projection; returns how many notifications it consumed."""
        return sum(self._feed(runner) for runner in self.runners)

    def _feed(self, runner: ProjectionRunner) -> int:
        # Read the stored position every time: a rebuild may have reset it meanwhile.
        expected = runner.position(SOURCE, 0)
        notifications = self.recorder.select_notifications(
            start=max(expected, 1), limit=self.batch_size
        )
        if not notifications:
            runner.quiet()
            return 0
        records = self._wanted(runner, notifications)
        end = notifications[-1].id + 1  # past the events that were not its own, too
        behind = self._behind(end) if len(notifications) == self.batch_size else 0
        moved = runner.apply_batch(SOURCE, 0, expected, records, end, behind) != expected
        return len(notifications) if moved else 0

    def _behind(self, end: int) -> int:
        """The notifications stored after a full batch."""
        return max(0, (self.recorder.max_notification_id() or 0) + 1 - end)

    def _wanted(
        self, runner: ProjectionRunner, notifications: Sequence[Notification]
    ) -> list[tuple[int, Envelope]]:
        wants = runner.projection.wants
        return [
            (n.id, published(to_envelope(self.mapper, n)))
            for n in notifications
            if wants(n.topic.partition(":")[2])
        ]

    def replay_all(self) -> int:
        """Feed until nothing is left; returns how many notifications were consumed."""
        replayed = 0
        while count := self.step():
            replayed += count
        self.settle()
        return replayed

    def catch_up(self) -> None:
        """Return once every projection has applied every event stored so far."""
        last = self.recorder.max_notification_id() or 0
        # A position is the next notification id to apply, so `last` is applied once it is past.
        while self.step() or (last and any(r.position(SOURCE, 0) <= last for r in self.runners)):
            pass
        self.settle()

    def settle(self) -> None:
        """Return once no read model owes anything its feed brought (Projection.owed), or
        one has stopped owing less."""
        for runner in self.runners:
            _settle(runner)

    def start(self, interval: float = 0.05) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), daemon=True, name="notification-feed"
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                if not self.step():
                    self._stop.wait(interval)
            except Exception:  # a worker must outlive a bad moment; the position is unchanged
                log.exception("projection feed step failed; retrying")
                self._stop.wait(1.0)


def _settle(runner: ProjectionRunner) -> None:
    """The runner's idle work, until it owes nothing (Projection.owed: the KPI read model
    counting its incidents after a rebuild, say) or stops owing less."""
    owed: int | None = None
    runner.projection.catching_up(0)  # the feed is at its end
    while True:
        runner.idle(force=True)
        now = runner.owed()
        if not now or (owed is not None and now >= owed):
            return
        owed = now
