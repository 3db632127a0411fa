"""The relay: publishes the event store's notification log to Kafka, in order.

Its position is saved only after the broker acknowledged every record of a batch
(acks=all, idempotent producer), so a restart never skips an event. A crash between the
acknowledgement and the save republishes a batch; consumers drop those duplicates by
(aggregate id, version).
"""

from __future__ import annotations

import logging
import threading

from eventsourcing.persistence import Notification
from kafka import KafkaProducer

from application.desk.service_desk import ServiceDesk
from infra.audit.event_chain import EVENT_HASH_HEADER, chained
from infra.event_store.publishing import to_envelope
from infra.messaging.dead_letters import Sent
from infra.messaging.key_partitioner import KeyPartitioner
from infra.sql.database import Database

log = logging.getLogger(__name__)
_DDL = """CREATE TABLE IF NOT EXISTS itsm_relay_positions (
    topic TEXT PRIMARY KEY, next_notification_id BIGINT NOT NULL)"""


def make_producer(bootstrap: str) -> KafkaProducer:
    # Large batches: the relay flushes after every batch of notifications anyway, and each
    # batch kafka-python fills up wakes its sender thread, many times per flush with the
    # 16 KiB default.
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=512 * 1024,
        compression_type=None,
        partitioner=KeyPartitioner(),
        client_id="itsm-relay",
        reconnect_backoff_max_ms=1000,
    )


class RelayPosition:
    def __init__(self, db: Database, topic: str) -> None:
        self.db, self.topic = db, topic
        db.script([_DDL])

    def get(self) -> int:
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                "SELECT next_notification_id FROM itsm_relay_positions WHERE topic = %s",
                (self.topic,),
            ).fetchone()
        return int(row[0]) if row else 1

    def set(self, next_id: int) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO itsm_relay_positions (topic, next_notification_id)"
                " VALUES (%s, %s) ON CONFLICT (topic)"
                " DO UPDATE SET next_notification_id = excluded.next_notification_id",
                (self.topic, next_id),
            )


class Relay:
    def __init__(
        self,
        desk: ServiceDesk,
        position: RelayPosition,
        producer: KafkaProducer,
        batch_size: int = 500,
    ) -> None:
        self.desk, self.position, self.producer = desk, position, producer
        self.batch_size = batch_size
        self.published = position.get() - 1

    def step(self) -> int:
        """Publish one batch; returns how many events it published."""
        start = self.position.get()
        notifications = self.desk.recorder.select_notifications(start=start, limit=self.batch_size)
        if not notifications:
            return 0
        hashes = chained(self.position.db, notifications[0].id, notifications[-1].id)
        futures = [self._send(n, hashes.get(n.id)) for n in notifications]
        self.producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if the broker did not acknowledge
        self.position.set(notifications[-1].id + 1)
        self.published = notifications[-1].id
        return len(notifications)

    def _send(self, notification: Notification, event_hash: bytes | None) -> Sent:
        envelope = to_envelope(self.desk.publishing_mapper, notification)
        headers = [
            ("event_type", envelope.type.encode()),
            ("schema_version", str(envelope.schema_version).encode()),
            ("aggregate_version", str(envelope.aggregate_version).encode()),
            ("notification_id", str(notification.id).encode()),
        ]
        if event_hash is not None:  # its link in the store's hash chain (docs/audit.md)
            headers.append((EVENT_HASH_HEADER, event_hash.hex().encode()))
        key, value = envelope.aggregate_id.encode(), envelope.to_json()
        future: Sent = self.producer.send(
            self.position.topic, key=key, value=value, headers=headers
        )
        return future

    def run(self, stop: threading.Event, interval: float = 0.05) -> None:
        while not stop.is_set():
            try:
                if not self.step():
                    stop.wait(interval)
            except Exception:  # the broker may be away; the position is unchanged, so retry
                log.exception("relay step failed; retrying")
                stop.wait(1.0)
