"""A Kafka consumer loop that never stops on its own, and says why it restarted.

Shared by the projection workers and the inbound consumer:
- a failed batch (the database or the broker away) is retried with backoff from the last
  safe position; after five failures in a row the consumer is closed and recreated;
- the watchdog recreates a consumer that returned no records for `stall_seconds` while
  there is something to read: a client stuck re-joining its group fetches nothing and
  reports nothing;
- each consumer is a static group member (`member_id`), so a restart takes its partitions
  back at once.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)
ConsumerFactory = Callable[..., Any]


class Record(Protocol):
    """A record as kafka-python's consumer returns it (ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes]] | None: ...


Polled = dict[TopicPartition, list[Record]]  # one poll's records, per partition


def consumer_options(
    bootstrap: str, group_id: str, client_id: str, member: str, max_records: int
) -> dict[str, Any]:
    """A static member of `group_id` that commits its offsets itself.

    Kafka's default session timeout (45 s) on purpose: a busy worker's heartbeats can lag,
    and a shorter one evicts it again and again; a static member takes its partitions back
    at once after a restart anyway. kafka-python's default backs off reconnecting up to
    30 s, so after a broker restart a consumer would wait that long to fetch again; the
    Java client's is 1 s."""
    return dict(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        client_id=client_id,
        group_instance_id=member,
        reconnect_backoff_max_ms=1000,
    )


def member_id(worker_id: str | None, role: str) -> str:
    """A static group member's id, stable across restarts: the worker's id (the host name
    unless given), so that a restarted worker takes its partitions back at once instead of
    waiting out the old member's session. Two processes of one role on one host need
    their own ITSM_WORKER_ID."""
    return f"{worker_id or socket.gethostname()}.{role}"


class ConsumerMetrics:
    """What a consumer process tells Prometheus about its consumers."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.restarts = Counter(
            "itsm_consumer_restarts",
            "Consumers closed and recreated",
            ["consumer", "reason"],
            registry=self.registry,
        )
        self.failures = Counter(
            "itsm_consumer_batch_failures",
            "Batches that failed and were retried",
            ["consumer"],
            registry=self.registry,
        )
        self.idle = Gauge(
            "itsm_consumer_seconds_since_records",
            "Seconds since the consumer last returned records",
            ["consumer"],
            registry=self.registry,
        )


class Backoff:
    """Exponential, jittered waits between retries, up to `ceiling` seconds."""

    def __init__(self, first: float = 0.5, ceiling: float = 5.0) -> None:
        self.first, self.ceiling, self.failures = first, ceiling, 0

    def next(self) -> float:
        self.failures += 1
        return min(self.ceiling, self.first * 2.0 ** (self.failures - 1)) * random.uniform(0.5, 1)

    def reset(self) -> None:
        self.failures = 0


class SupervisedConsumer(ABC):
    def __init__(
        self,
        name: str,
        topic: str,
        options: dict[str, Any],
        *,
        stall_seconds: float = 60.0,
        consumer_factory: ConsumerFactory = KafkaConsumer,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self.name, self.topic, self.stall_seconds = name, topic, stall_seconds
        self.metrics = metrics or ConsumerMetrics()
        self.abandoned = False  # set by a supervisor that replaced this consumer
        self.heartbeat = self.last_records = time.monotonic()
        self.consumer: Any = None
        # Set by a failed batch: the consumer has moved past it, so no poll until a rewind
        # to the safe position has succeeded.
        self.must_rewind = False
        self._factory, self._options = consumer_factory, options

    # -- what a subclass does ------------------------------------------------------------
    @abstractmethod
    def handle(self, polled: Polled) -> int:
        """Use one poll's records; returns how many were used."""

    @abstractmethod
    def positions(self) -> dict[int, int]:
        """Where this consumer's work stands, per partition (the next offset to handle)."""

    def rewind(self) -> None:  # noqa: B027 (an optional hook: most consumers keep nothing)
        """Go back to the last safe position after a failed batch."""

    def listener(self) -> Any:
        return None

    def quiet(self) -> None:  # noqa: B027 (an optional hook)
        """A poll brought nothing: time for work that waits for a quiet moment."""

    # -- the loop ------------------------------------------------------------------------
    def step(self, timeout_ms: int = 200) -> int:
        if self.consumer is None:
            self._connect()
        if self.must_rewind:
            self.rewind()
            self.must_rewind = False
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        self.heartbeat = time.monotonic()
        if self.abandoned:
            return 0
        if not polled:
            self.quiet()
            return 0
        self.last_records = self.heartbeat
        return self.handle(polled)

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        try:
            while not stop.is_set() and not self.abandoned:
                self._step_or_back_off(stop, backoff)
                # Alive, even while failing: only a call that never returns is "stuck".
                self.heartbeat = time.monotonic()
        finally:
            self.close()

    def _step_or_back_off(self, stop: threading.Event, backoff: Backoff) -> None:
        try:
            self.step()
            self.watch()
            backoff.reset()
        except Exception as error:
            self.must_rewind = True
            self._failed(error, backoff)
            stop.wait(backoff.next())

    def _failed(self, error: Exception, backoff: Backoff) -> None:
        self.metrics.failures.labels(self.name).inc()
        if backoff.failures == 0:
            log.warning("%s: batch failed (%r); retrying", self.name, error)
        if backoff.failures and backoff.failures % 5 == 0:
            self.recreate("failing", f"{backoff.failures} failures in a row, the last {error!r}")

    # -- the watchdog --------------------------------------------------------------------
    def watch(self) -> None:
        idle = time.monotonic() - self.last_records
        self.metrics.idle.labels(self.name).set(idle)
        if idle < self.stall_seconds:
            return
        self.last_records = time.monotonic()  # look again after another stall_seconds
        behind = self.lag()
        if behind:
            self.recreate("stalled", f"no records for {idle:.0f} s while {behind} behind")

    def lag(self) -> int:
        """Records on the topic past this consumer's positions."""
        probe = self.consumer
        partitions = probe.assignment() or {
            TopicPartition(self.topic, p) for p in probe.partitions_for_topic(self.topic) or ()
        }
        ends = probe.end_offsets(list(partitions)) if partitions else {}
        stored = self.positions()
        return sum(max(end - stored.get(tp.partition, 0), 0) for tp, end in ends.items())

    def recreate(self, reason: str, detail: str) -> None:
        log.warning("%s: recreating its consumer (%s): %s", self.name, reason, detail)
        self.metrics.restarts.labels(self.name, reason).inc()
        self.close()

    # -- membership ----------------------------------------------------------------------
    def _connect(self) -> None:
        consumer = self._factory(**self._options)
        try:
            # Know the topic's partitions before joining: a leader without them assigns
            # nothing, and a static member that rejoins is handed that empty assignment.
            consumer.partitions_for_topic(self.topic)
            consumer.subscribe([self.topic], listener=self.listener())
        except Exception:
            consumer.close()
            raise
        self.consumer, self.last_records = consumer, time.monotonic()
        self.must_rewind = False  # a new member starts from the safe position
        self.connected()

    def connected(self) -> None:  # noqa: B027 (an optional hook)
        """A new consumer joined (subclasses reset what they remembered of the old one)."""

    def close(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except Exception as error:  # a broken client is dropped all the same
                log.warning("%s: closing its consumer failed: %r", self.name, error)
