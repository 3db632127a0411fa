"""Projection worker: consumes itsm.events in one consumer group per read model.

The read model's database, not Kafka, holds the authoritative position: on assignment the
consumer seeks to it, and each batch commits with the read-model change in one transaction.
Offsets are also committed to Kafka, but only so that standard lag tooling can see them.
"""
from __future__ import annotations

import logging
import threading

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from projections.base import ProjectionRunner
from projections.envelope import Envelope

log = logging.getLogger(__name__)


def group_id(topic: str, projection: str) -> str:
    """One group per read model and topic: deployments (and tests) on one cluster that use
    different topics never share a group."""
    return f"{topic}.projection.{projection}"


def _event_type(record) -> str:
    """The relay's `event_type` header, or "" (decode and let the projection decide)."""
    for key, value in record.headers or ():
        if key == "event_type":
            return value.decode(errors="replace")
    return ""


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


class ProjectionWorker:
    def __init__(self, bootstrap: str, topic: str, runner: ProjectionRunner,
                 dead_letters: KafkaProducer | None = None, max_records: int = 1000,
                 worker_id: str | None = None) -> None:
        self.topic, self.runner, self.dead_letters = topic, runner, dead_letters
        self.expected: dict[int, int] = {}
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id(topic, runner.projection.name),
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=max_records,
            # The default session timeout (45 s) on purpose: a busy worker's heartbeats can
            # lag, and a shorter one evicts it again and again. Restarts are fast anyway: a
            # static member (worker_id) takes its partitions back without a rebalance.
            client_id=f"itsm-worker-{runner.projection.name}",
            group_instance_id=f"{worker_id}.{runner.projection.name}" if worker_id else None)
        # Know the topic's partitions before joining: a leader without them assigns nothing,
        # and a static member that rejoins is handed that empty assignment again.
        self.consumer.partitions_for_topic(topic)
        self.consumer.subscribe([topic], listener=_SeekToStored(self))

    def seek(self, tp: TopicPartition, position: int) -> None:
        self.consumer.seek(tp, position)
        self.expected[tp.partition] = position

    def step(self, timeout_ms: int = 200) -> int:
        """Apply what one poll returned; returns how many records were new."""
        applied = 0
        for tp, records in self.consumer.poll(timeout_ms=timeout_ms).items():
            applied += self._apply(tp, records)
        return applied

    def _apply(self, tp: TopicPartition, records) -> int:
        expected = self.expected.get(tp.partition, records[0].offset)
        wants = self.runner.projection.wants
        batch = [(r.offset, event) for r in records
                 if wants(_event_type(r)) and (event := self._decode(r)) is not None]
        end = records[-1].offset + 1
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
                self.dead_letters.send(f"{self.topic}.dlq", key=record.key, value=record.value,
                                       headers=[("reason", str(error).encode()[:1000])])
            return None

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:  # keep the worker alive; the stored position is unchanged
                    log.exception("projection %s failed a batch; retrying",
                                  self.runner.projection.name)
                    for partition, position in self.runner.positions(self.topic).items():
                        self.seek(TopicPartition(self.topic, partition), position)
                    stop.wait(1.0)
        finally:
            self.consumer.close()
