"""Consumer lag of each read model: records on Kafka not yet in the read model."""

from __future__ import annotations

import threading
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from projections.runtime.runner import ProjectionRunner

Ends = dict[TopicPartition, int]  # the next offset of each partition of the topic


def consumer_lag(
    bootstrap: str, topic: str, runners: list[ProjectionRunner], timeout_ms: int = 1000
) -> Callable[[], dict[str, int] | None]:
    """A probe for /metrics and /health/ready: records behind, per read model."""
    return LagProbe(bootstrap, topic, runners, timeout_ms)


class LagProbe:
    """Opens one metadata-only consumer and reuses it. It waits for the broker at most
    `timeout_ms`, and only one probe runs at a time: another caller meanwhile gets None
    (unknown) at once. With the broker away, a probe waiting out the client's 30 s request
    timeout would hold one of the readiness checks' few threads, and the database pings
    queued behind it would time out."""

    def __init__(
        self, bootstrap: str, topic: str, runners: list[ProjectionRunner], timeout_ms: int
    ) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.runners, self.timeout_ms = runners, timeout_ms
        self._consumer: KafkaConsumer | None = None
        self._busy = threading.Lock()

    def __call__(self) -> dict[str, int] | None:
        ends = self._ends()
        if ends is None:
            return None
        return {r.projection.name: _behind(r.positions(self.topic), ends) for r in self.runners}

    def _ends(self) -> Ends | None:
        if not self._busy.acquire(blocking=False):
            return None
        try:
            return self._end_offsets(self._connected())
        finally:
            self._busy.release()

    def _connected(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                client_id="itsm-lag-probe",
                bootstrap_timeout_ms=self.timeout_ms,
                reconnect_backoff_max_ms=1000,
            )
        return self._consumer

    def _end_offsets(self, consumer: KafkaConsumer) -> Ends:
        topic = self.topic
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return {}
        ends: Ends = consumer.end_offsets(partitions, timeout_ms=self.timeout_ms)
        return ends


def _behind(stored: dict[int, int], ends: Ends) -> int:
    return sum(max(end - stored.get(tp.partition, 0), 0) for tp, end in ends.items())
