"""Consumer lag of each read model: records on Kafka not yet in the read model."""

from __future__ import annotations

import threading
from typing import Callable

from kafka import KafkaConsumer, TopicPartition

from projections.runtime.runner import ProjectionRunner


def consumer_lag(
    bootstrap: str, topic: str, runners: list[ProjectionRunner], timeout_ms: int = 1000
) -> Callable[[], dict[str, int] | None]:
    """A probe for /metrics and /health/ready; it opens one metadata-only consumer and
    reuses it. It waits for the broker at most `timeout_ms`, and only one probe runs at a
    time: another caller meanwhile gets None (unknown) at once. With the broker away, a
    probe that waited the client's 30 s request timeout held one of the readiness checks'
    few threads each time, until the database pings queued behind them and timed out."""
    consumer: KafkaConsumer | None = None
    busy = threading.Lock()

    def probe() -> dict[str, int] | None:
        nonlocal consumer
        if not busy.acquire(blocking=False):
            return None
        try:
            if consumer is None:
                consumer = KafkaConsumer(
                    bootstrap_servers=bootstrap,
                    group_id=None,
                    client_id="itsm-lag-probe",
                    bootstrap_timeout_ms=timeout_ms,
                    reconnect_backoff_max_ms=1000,
                )
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
            ends = consumer.end_offsets(partitions, timeout_ms=timeout_ms) if partitions else {}
        finally:
            busy.release()
        lag = {}
        for runner in runners:
            stored = runner.positions(topic)
            lag[runner.projection.name] = sum(
                max(end - stored.get(tp.partition, 0), 0) for tp, end in ends.items()
            )
        return lag

    return probe
