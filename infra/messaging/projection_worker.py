"""Projection worker: consumes itsm.events in one consumer group per read model.

The read model's database, not Kafka, holds the authoritative position: on assignment the
consumer seeks to it, and each batch commits with the read-model change in one transaction.
Offsets are also committed to Kafka, but only so that standard lag tooling can see them.

A worker never stops on its own (infra/messaging/supervised_consumer.py): a failed batch is retried
from the stored position, and a consumer that stops fetching while its read model is
behind is recreated; an event the read model cannot fold is quarantined by the runner. A
consumer whose poll does not return is replaced by the `Supervisor`, which also ends the
process with a non-zero status if a worker thread dies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import cast

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from infra.messaging.dead_letters import DeadLetters
from infra.messaging.supervised_consumer import (
    ConsumerFactory,
    ConsumerMetrics,
    Polled,
    Record,
    SupervisedConsumer,
    consumer_options,
    member_id,
)
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner

log = logging.getLogger(__name__)


def group_id(topic: str, projection: str) -> str:
    """One group per read model and topic: deployments (and tests) on one cluster that use
    different topics never share a group."""
    return f"{topic}.projection.{projection}"


def _event_type(record: Record) -> str:
    """The relay's `event_type` header, or "" (decode and let the projection decide)."""
    for key, value in record.headers or ():
        if key == "event_type":
            return value.decode(errors="replace")
    return ""


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, worker: ProjectionWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.worker.expected.pop(tp.partition, None)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        stored = self.worker.runner.positions(self.worker.topic)
        for tp in assigned:
            self.worker.seek(tp, stored.get(tp.partition, 0))


class ProjectionWorker(SupervisedConsumer):
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        runner: ProjectionRunner,
        dead_letters: DeadLetters | None = None,
        max_records: int = 1000,
        worker_id: str | None = None,
        *,
        stall_seconds: float = 60.0,
        consumer_factory: ConsumerFactory = KafkaConsumer,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        name = runner.projection.name
        member = member_id(worker_id, name)
        group = group_id(topic, name)
        options = consumer_options(bootstrap, group, f"itsm-worker-{name}", member, max_records)
        super().__init__(
            name,
            topic,
            options,
            stall_seconds=stall_seconds,
            consumer_factory=consumer_factory,
            metrics=metrics,
        )
        self.runner, self.dead_letters = runner, dead_letters
        self.expected: dict[int, int] = {}

    def seek(self, tp: TopicPartition, position: int) -> None:
        self.consumer.seek(tp, position)
        self.expected[tp.partition] = position

    def handle(self, polled: Polled) -> int:
        return sum(self._apply(tp, records) for tp, records in polled.items())

    def positions(self) -> dict[int, int]:
        return self.runner.positions(self.topic)

    def quiet(self) -> None:
        self.runner.quiet()

    def rewind(self) -> None:
        stored = self.positions()
        for tp in self.consumer.assignment():
            self.seek(tp, stored.get(tp.partition, 0))

    def listener(self) -> _SeekToStored:
        return _SeekToStored(self)

    def connected(self) -> None:
        self.expected.clear()  # the new member seeks to the stored positions on assignment

    def _apply(self, tp: TopicPartition, records: list[Record]) -> int:
        expected = self.expected.get(tp.partition, records[0].offset)
        batch = self._wanted(records)
        end = records[-1].offset + 1
        if self.dead_letters is not None and self.dead_letters.pending:
            self.dead_letters.confirm()  # before the position moves past them
        behind = self._behind(tp, end)
        reached = self.runner.apply_batch(self.topic, tp.partition, expected, batch, end, behind)
        if reached != end:
            self.seek(tp, reached)  # a rebuild or another member moved the position
            return 0
        self.expected[tp.partition] = end
        self.consumer.commit_async({tp: OffsetAndMetadata(end, "", -1)})
        return len(batch)

    def _behind(self, tp: TopicPartition, end: int) -> int:
        """The records after this batch in every partition this member reads (the read model
        catches up until all of them have), by the high watermarks of the last fetches:
        known without asking the broker."""
        behind = 0
        for other in self.consumer.assignment():
            position = end if other == tp else self.expected.get(other.partition)
            high = self.consumer.highwater(other)
            if position is not None and high is not None:
                behind += max(0, high - position)
        return behind

    def _wanted(self, records: list[Record]) -> list[tuple[int, Envelope]]:
        """(offset, event) of the records the read model wants and that decode."""
        wants = self.runner.projection.wants
        return [
            (r.offset, event)
            for r in records
            if wants(_event_type(r)) and (event := self._decode(r)) is not None
        ]

    def _decode(self, record: Record) -> Envelope | None:
        try:  # a tombstone (no value) fails to decode like any other poison record
            return Envelope.from_json(cast(bytes, record.value))
        except Exception as error:  # a poison record must not stop the read models
            self._undecodable(record, error)
            return None

    def _undecodable(self, record: Record, error: Exception) -> None:
        where = (record.topic, record.partition, record.offset)
        log.error("undecodable record at %s/%d@%d: %s", *where, error)
        if self.dead_letters is not None:
            self.dead_letters.send(f"{self.topic}.dlq", record, str(error), "undecodable")


class Supervisor:
    """Runs one worker thread per read model; replaces a worker whose poll has not returned
    for `stuck_seconds`, and stops everything (status 1) if a worker thread dies."""

    def __init__(
        self,
        make_workers: dict[str, Callable[[], ProjectionWorker]],
        metrics: ConsumerMetrics,
        stuck_seconds: float = 120.0,
    ) -> None:
        self.make_workers, self.metrics, self.stuck_seconds = make_workers, metrics, stuck_seconds
        self.workers: dict[str, tuple[ProjectionWorker, threading.Thread]] = {}

    def run(self, stop: threading.Event, check_every: float = 1.0) -> int:
        for name in self.make_workers:
            self._start(name, stop)
        status = 0
        while not stop.wait(check_every):
            status = self.check(stop)
            if status:
                stop.set()
        for _, thread in self.workers.values():
            thread.join(timeout=30)
        return status

    def check(self, stop: threading.Event) -> int:
        for name, (worker, thread) in list(self.workers.items()):
            if not thread.is_alive():
                log.error(
                    "projection %s: its worker thread ended; stopping so that the "
                    "process is restarted",
                    name,
                )
                return 1
            self._replace_if_stuck(name, worker, stop)
        return 0

    def _replace_if_stuck(self, name: str, worker: ProjectionWorker, stop: threading.Event) -> None:
        stuck = time.monotonic() - worker.heartbeat
        if not stuck > self.stuck_seconds:
            return
        log.warning(
            "projection %s: poll has not returned for %.0f s; replacing its consumer", name, stuck
        )
        self.metrics.restarts.labels(name, "poll-stuck").inc()
        worker.abandoned = True
        self._start(name, stop)

    def _start(self, name: str, stop: threading.Event) -> None:
        worker = self.make_workers[name]()
        thread = threading.Thread(
            target=worker.run, args=(stop,), name=f"worker-{name}", daemon=True
        )
        thread.start()
        self.workers[name] = (worker, thread)
