"""Rebuild one read model: empty it, then replay every event from the start.

From Kafka offset 0 when Kafka is configured (history topics keep everything), else from
the event store's notification log. A worker running meanwhile notices the reset through
the stored position and re-seeks; the runner's transactions keep the two from applying an
event twice.
"""

from __future__ import annotations

from typing import cast

from kafka import KafkaConsumer, TopicPartition

from infra.composition_root import Container
from infra.event_store.notification_feed import NotificationFeed
from infra.messaging.supervised_consumer import Record
from infra.progress import Progress
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner

# Events per batch of a replay: a read model that diffs an incident once per batch (the
# KPI cells) diffs it less often the more of its life one batch holds; at a million
# incidents 50,000 events are some four days of the desk's work.
REPLAY_BATCH = 50_000


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
    feed = NotificationFeed(
        container.desk.recorder,
        container.desk.publishing_mapper,
        [runner],
        batch_size=REPLAY_BATCH,
    )
    replayed = 0
    while count := feed.step():
        replayed += count
        if progress:
            progress.advance(count)
    if progress:
        progress.close()
    return replayed


def _from_kafka(container: Container, runner: ProjectionRunner, show: bool) -> int:
    consumer = KafkaConsumer(
        bootstrap_servers=container.settings.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=REPLAY_BATCH,
    )
    try:
        return _KafkaReplay(consumer, container.settings.events_topic, runner).run(show)
    finally:
        consumer.close()


class _KafkaReplay:
    """The topic from offset 0 to where it ended when the replay started: the consumer is
    assigned every partition, at its start."""

    def __init__(self, consumer: KafkaConsumer, topic: str, runner: ProjectionRunner) -> None:
        self.consumer, self.topic, self.runner = consumer, topic, runner
        self.partitions = [
            TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(self.partitions)
        consumer.seek_to_beginning(*self.partitions)
        self.ends: dict[TopicPartition, int] = consumer.end_offsets(self.partitions)
        self.expected = {tp.partition: 0 for tp in self.partitions}

    def run(self, show: bool) -> int:
        total = sum(self.ends.values())
        progress = Progress(total, f"rebuild {self.runner.projection.name}") if show else None
        replayed = 0
        while any(self.consumer.position(tp) < self.ends[tp] for tp in self.partitions):
            for tp, records in self.consumer.poll(timeout_ms=500).items():
                count = self._apply(tp, records)
                replayed += count
                if progress and count:
                    progress.advance(count)
        if progress:
            progress.close()
        return replayed

    def _apply(self, tp: TopicPartition, polled: list[Record]) -> int:
        """Apply the records before the end; returns how many there were."""
        records = [r for r in polled if r.offset < self.ends[tp]]
        if not records:
            return 0
        # The relay writes every record with a value; one without fails like any poison one.
        batch = [(r.offset, Envelope.from_json(cast(bytes, r.value))) for r in records]
        end = records[-1].offset + 1
        self.expected[tp.partition] = self.runner.apply_batch(
            self.topic, tp.partition, self.expected[tp.partition], batch, end=end
        )
        return len(records)
