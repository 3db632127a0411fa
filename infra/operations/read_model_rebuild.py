"""Rebuild one read model: empty it, then replay every event from the start.

From Kafka offset 0 when Kafka is configured (history topics keep everything), else from
the event store's notification log. A worker running meanwhile notices the reset through
the stored position and re-seeks; the runner's transactions keep the two from applying an
event twice.
"""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from infra.composition_root import Container
from infra.event_store.notification_feed import NotificationFeed
from infra.progress import Progress
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner


def rebuild(container: Container, name: str, show_progress: bool = True) -> int:
    """Returns how many events were replayed."""
    runner = container.runner(name)
    runner.reset()
    if container.uses_kafka:
        return _from_kafka(container, runner, show_progress)
    return _from_notification_log(container, runner, show_progress)


def _from_notification_log(container: Container, runner: ProjectionRunner, show: bool) -> int:
    total = container.desk.stored_events()
    progress = Progress(total, f"rebuild {runner.projection.name}") if show else None
    feed = NotificationFeed(container.desk.recorder, container.desk.mapper, [runner])
    replayed = 0
    while count := feed.step():
        replayed += count
        if progress:
            progress.advance(count)
    if progress:
        progress.close()
    return replayed


def _from_kafka(container: Container, runner: ProjectionRunner, show: bool) -> int:
    topic = container.settings.events_topic
    consumer = KafkaConsumer(
        bootstrap_servers=container.settings.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        expected = {tp.partition: 0 for tp in partitions}
        progress = (
            Progress(sum(ends.values()), f"rebuild {runner.projection.name}") if show else None
        )
        replayed = 0
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for tp, records in consumer.poll(timeout_ms=500).items():
                records = [r for r in records if r.offset < ends[tp]]
                if not records:
                    continue
                batch = [(r.offset, Envelope.from_json(r.value)) for r in records]
                end = records[-1].offset + 1
                expected[tp.partition] = runner.apply_batch(
                    topic, tp.partition, expected[tp.partition], batch, end=end
                )
                replayed += len(records)
                if progress:
                    progress.advance(len(records))
        if progress:
            progress.close()
        return replayed
    finally:
        consumer.close()
