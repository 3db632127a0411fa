"""Consumer lag of each read model: records on Kafka not yet in the read model."""
from __future__ import annotations

from typing import Callable

from kafka import KafkaConsumer, TopicPartition

from projections.base import ProjectionRunner


def consumer_lag(bootstrap: str, topic: str,
                 runners: list[ProjectionRunner]) -> Callable[[], dict[str, int]]:
    """A probe for /metrics; it opens one metadata-only consumer and reuses it."""
    consumer: KafkaConsumer | None = None

    def probe() -> dict[str, int]:
        nonlocal consumer
        if consumer is None:
            consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                     client_id="itsm-lag-probe")
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions) if partitions else {}
        lag = {}
        for runner in runners:
            stored = runner.positions(topic)
            lag[runner.projection.name] = sum(
                max(end - stored.get(tp.partition, 0), 0) for tp, end in ends.items())
        return lag

    return probe
