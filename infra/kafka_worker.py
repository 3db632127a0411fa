"""Projection worker: consumes itsm.events in one consumer group per read model.

The read model's database, not Kafka, holds the authoritative position: on assignment the
consumer seeks to it, and each batch commits with the read-model change in one transaction.
Offsets are also committed to Kafka, but only so that standard lag tooling can see them.

A worker never stops on its own: a failed batch (the database or the broker away) is
retried with backoff from the stored position; an event the read model cannot fold is
quarantined by the runner. A consumer that stops fetching while its read model is behind
is closed and recreated (the watchdog); one whose poll does not return is replaced by the
`Supervisor`, which also ends the process with a non-zero status if a worker thread dies.
"""
from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Counter, Gauge

from infra.dead_letters import DeadLetters
from projections.base import ProjectionRunner
from projections.envelope import Envelope

log = logging.getLogger(__name__)


def group_id(topic: str, projection: str) -> str:
    """One group per read model and topic: deployments (and tests) on one cluster that use
    different topics never share a group."""
    return f"{topic}.projection.{projection}"


def member_id(worker_id: str | None, role: str) -> str:
    """A static group member's id, stable across restarts: the worker's id (the host name
    unless given), so that a restarted worker takes its partitions back at once instead of
    waiting out the old member's session. Two processes of one role on one host need
    their own ITSM_WORKER_ID."""
    return f"{worker_id or socket.gethostname()}.{role}"


def _event_type(record) -> str:
    """The relay's `event_type` header, or "" (decode and let the projection decide)."""
    for key, value in record.headers or ():
        if key == "event_type":
            return value.decode(errors="replace")
    return ""


class WorkerMetrics:
    """What `itsm worker` tells Prometheus about its consumers and read models."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.restarts = Counter("itsm_worker_consumer_restarts", "Consumers closed and "
                                "recreated", ["projection", "reason"], registry=self.registry)
        self.failures = Counter("itsm_worker_batch_failures", "Batches that failed and were "
                                "retried", ["projection"], registry=self.registry)
        self.applied = Counter("itsm_worker_events_applied", "Events folded into the read "
                               "model", ["projection"], registry=self.registry)
        self.idle = Gauge("itsm_worker_seconds_since_records", "Seconds since the consumer "
                          "last returned records", ["projection"], registry=self.registry)
        self.quarantined = Gauge("itsm_projection_quarantined_aggregates", "Aggregates a read "
                                 "model could not fold", ["projection"], registry=self.registry)


class Backoff:
    """Exponential, jittered waits between retries, up to `ceiling` seconds."""

    def __init__(self, first: float = 0.5, ceiling: float = 30.0) -> None:
        self.first, self.ceiling, self.failures = first, ceiling, 0

    def next(self) -> float:
        self.failures += 1
        return min(self.ceiling, self.first * 2 ** (self.failures - 1)) * random.uniform(0.5, 1)

    def reset(self) -> None:
        self.failures = 0


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, worker: ProjectionWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked):
        for tp in revoked:
            self.worker.expected.pop(tp.partition, None)

    def on_partitions_assigned(self, assigned):
        stored = self.worker.runner.positions(self.worker.topic)
        for tp in assigned:
            self.worker.seek(tp, stored.get(tp.partition, 0))


ConsumerFactory = Callable[..., Any]


class ProjectionWorker:
    def __init__(self, bootstrap: str, topic: str, runner: ProjectionRunner,
                 dead_letters: DeadLetters | None = None, max_records: int = 1000,
                 worker_id: str | None = None, *, stall_seconds: float = 60.0,
                 consumer_factory: ConsumerFactory = KafkaConsumer,
                 metrics: WorkerMetrics | None = None) -> None:
        self.topic, self.runner, self.dead_letters = topic, runner, dead_letters
        self.name = runner.projection.name
        self.stall_seconds = stall_seconds
        self.metrics = metrics or WorkerMetrics()
        self.expected: dict[int, int] = {}
        self._rewind = False
        self.abandoned = False  # set by the supervisor when it replaced this worker
        self.heartbeat = self.last_records = time.monotonic()
        self._factory = consumer_factory
        self._options = dict(
            bootstrap_servers=bootstrap, group_id=group_id(topic, self.name),
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=max_records,
            # The default session timeout (45 s) on purpose: a busy worker's heartbeats can
            # lag, and a shorter one evicts it again and again. Restarts are fast anyway: a
            # static member takes its partitions back without a rebalance.
            client_id=f"itsm-worker-{self.name}", group_instance_id=member_id(worker_id, self.name))
        self.consumer: Any = None

    # -- one batch -----------------------------------------------------------------------
    def seek(self, tp: TopicPartition, position: int) -> None:
        self.consumer.seek(tp, position)
        self.expected[tp.partition] = position

    def step(self, timeout_ms: int = 200) -> int:
        """Apply what one poll returned; returns how many records were new."""
        if self.consumer is None:
            self._connect()
        if self._rewind:
            self._seek_to_stored()
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        self.heartbeat = time.monotonic()
        if self.abandoned:
            return 0
        if polled:
            self.last_records = self.heartbeat
        applied = sum(self._apply(tp, records) for tp, records in polled.items())
        self.metrics.applied.labels(self.name).inc(applied)
        return applied

    def _apply(self, tp: TopicPartition, records) -> int:
        expected = self.expected.get(tp.partition, records[0].offset)
        wants = self.runner.projection.wants
        batch = [(r.offset, event) for r in records
                 if wants(_event_type(r)) and (event := self._decode(r)) is not None]
        end = records[-1].offset + 1
        if self.dead_letters is not None and self.dead_letters.pending:
            self.dead_letters.confirm()  # before the position moves past them
        reached = self.runner.apply_batch(self.topic, tp.partition, expected, batch, end=end)
        if reached != end:
            self.seek(tp, reached)  # a rebuild or another member moved the position
            return 0
        self.expected[tp.partition] = end
        self.consumer.commit_async({tp: OffsetAndMetadata(end, "", -1)})
        return len(batch)

    def _decode(self, record) -> Envelope | None:
        try:
            return Envelope.from_json(record.value)
        except Exception as error:  # a poison record must not stop the read models
            log.error("undecodable record at %s/%d@%d: %s", record.topic, record.partition,
                      record.offset, error)
            if self.dead_letters is not None:
                self.dead_letters.send(f"{self.topic}.dlq", record, str(error), "undecodable")
            return None

    # -- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        try:
            while not stop.is_set() and not self.abandoned:
                try:
                    self.step()
                    self.watch()
                    backoff.reset()
                except Exception as error:
                    self._failed(error, backoff, stop)
        finally:
            self._close()

    def _failed(self, error: Exception, backoff: Backoff, stop: threading.Event) -> None:
        self.metrics.failures.labels(self.name).inc()
        if backoff.failures == 0:
            log.warning("projection %s: batch failed (%r); retrying from the stored position",
                        self.name, error)
        # The consumer has moved past the failed batch: the next step goes back to where
        # the read model stands (inside the loop's guard, since that reads the database).
        self._rewind = True
        if backoff.failures and backoff.failures % 5 == 0:
            self.recreate("failing", f"{backoff.failures} failures in a row, the last {error!r}")
        stop.wait(backoff.next())

    def watch(self) -> None:
        """Recreate the consumer if it returned nothing for a while although the read model
        is behind: a client stuck re-joining its group fetches nothing and says nothing."""
        idle = time.monotonic() - self.last_records
        self.metrics.idle.labels(self.name).set(idle)
        if idle < self.stall_seconds:
            return
        self.last_records = time.monotonic()  # look again after another stall_seconds
        behind = self.lag()
        if behind:
            self.recreate("stalled", f"no records for {idle:.0f} s while {behind} events behind")

    def lag(self) -> int:
        """Events on the topic past the read model's stored positions."""
        probe = self.consumer
        partitions = probe.assignment() or {
            TopicPartition(self.topic, p) for p in probe.partitions_for_topic(self.topic) or ()}
        ends = probe.end_offsets(list(partitions)) if partitions else {}
        stored = self.runner.positions(self.topic)
        return sum(max(end - stored.get(tp.partition, 0), 0) for tp, end in ends.items())

    def recreate(self, reason: str, detail: str) -> None:
        log.warning("projection %s: recreating its consumer (%s): %s", self.name, reason, detail)
        self.metrics.restarts.labels(self.name, reason).inc()
        self._close()

    def _seek_to_stored(self) -> None:
        stored = self.runner.positions(self.topic)
        for tp in self.consumer.assignment():
            self.seek(tp, stored.get(tp.partition, 0))
        self._rewind = False

    def _connect(self) -> None:
        consumer = self._factory(**self._options)
        try:
            # Know the topic's partitions before joining: a leader without them assigns
            # nothing, and a static member that rejoins is handed that empty assignment.
            consumer.partitions_for_topic(self.topic)
            consumer.subscribe([self.topic], listener=_SeekToStored(self))
        except Exception:
            consumer.close()
            raise
        self.consumer, self.last_records = consumer, time.monotonic()
        self.expected.clear()
        self._rewind = False  # a new member seeks to the stored positions on assignment

    def _close(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except Exception as error:  # a broken client is dropped all the same
                log.warning("projection %s: closing its consumer failed: %r", self.name, error)


class Supervisor:
    """Runs one worker thread per read model; replaces a worker whose poll has not returned
    for `stuck_seconds`, and stops everything (status 1) if a worker thread dies."""

    def __init__(self, make_workers: dict[str, Callable[[], ProjectionWorker]],
                 metrics: WorkerMetrics, stuck_seconds: float = 120.0) -> None:
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
                log.error("projection %s: its worker thread ended; stopping so that the "
                          "process is restarted", name)
                return 1
            stuck = time.monotonic() - worker.heartbeat
            if stuck > self.stuck_seconds:
                log.warning("projection %s: poll has not returned for %.0f s; replacing its "
                            "consumer", name, stuck)
                self.metrics.restarts.labels(name, "poll-stuck").inc()
                worker.abandoned = True
                self._start(name, stop)
        return 0

    def _start(self, name: str, stop: threading.Event) -> None:
        worker = self.make_workers[name]()
        thread = threading.Thread(target=worker.run, args=(stop,), name=f"worker-{name}",
                                  daemon=True)
        thread.start()
        self.workers[name] = (worker, thread)
