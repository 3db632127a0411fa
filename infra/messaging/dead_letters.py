"""Dead letters: a record a consumer cannot use goes to `<topic>.dlq` with the reason.

A consumer commits past a record only once its dead letter is acknowledged, so a dead
letter must never fail for good: the producer and the dead-letter topics accept records up
to `max_bytes`, and a record too large even for that is dead-lettered as a reference
(topic, partition, offset, size, reason) to the original, which Kafka keeps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import orjson
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

from infra.messaging.kafka_topics import ensure_topics
from infra.messaging.supervised_consumer import Record

log = logging.getLogger(__name__)
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# Headers, key and the record batch's framing on top of the value.
_OVERHEAD = 64 * 1024
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def topic_configs(max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, str]:
    """A dead-letter topic keeps its records forever and takes records of `max_bytes`."""
    return {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
        "max.message.bytes": str(max_bytes + _OVERHEAD),
    }


def ensure_with_dead_letters(bootstrap: str, topic: str, partitions: int, max_bytes: int) -> None:
    """Create `topic` and its dead-letter topic where they are missing."""
    dlq = dead_letter_topic(topic)
    ensure_topics(bootstrap, [topic, dlq], partitions, {dlq: topic_configs(max_bytes)})


def make_producer(bootstrap: str, max_bytes: int = DEFAULT_MAX_BYTES) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=max_bytes + _OVERHEAD,
        client_id="itsm-dead-letters",
        reconnect_backoff_max_ms=1000,
    )


class Sent(Protocol):
    """What kafka-python's `send` returns (FutureRecordMetadata)."""

    def get(self, timeout: float | None = None) -> object: ...


@dataclass
class _Pending:
    topic: str
    record: Record
    reason: str
    kind: str
    future: Sent


class DeadLetters:
    def __init__(self, producer: KafkaProducer) -> None:
        self.producer = producer
        self._pending: list[_Pending] = []

    def send(self, topic: str, record: Record, reason: str, kind: str = "") -> None:
        """Queue a dead letter for `record`; `confirm` waits for every queued one."""
        try:
            future: Sent = self.producer.send(
                topic, key=record.key, value=record.value, headers=_headers(record, reason, kind)
            )
        except _TOO_LARGE as error:
            future = self._reference(topic, record, reason, kind, error)
        self._pending.append(_Pending(topic, record, reason, kind, future))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def confirm(self, timeout: float = 30.0) -> int:
        """Wait until the broker took every queued dead letter; raises if it did not, so
        that the caller does not commit past them. Returns how many were confirmed."""
        pending, self._pending = self._pending, []
        self.producer.flush(timeout=timeout)
        for item in pending:
            try:
                item.future.get(timeout=timeout)
            except _TOO_LARGE as error:
                self._reference(item.topic, item.record, item.reason, item.kind, error).get(
                    timeout=timeout
                )
        return len(pending)

    def close(self) -> None:
        self.producer.close()

    def _reference(
        self, topic: str, record: Record, reason: str, kind: str, error: Exception
    ) -> Sent:
        where = (record.topic, record.partition, record.offset)
        log.warning(
            "dead letter for %s/%d@%d too large (%r); sending a reference instead", *where, error
        )
        size = len(record.value or b"")
        headers = [
            *_headers(record, reason, kind),
            ("reference", b"true"),
            ("original_size", str(size).encode()),
        ]
        value = _reference_value(record, size, reason, kind)
        future: Sent = self.producer.send(topic, key=record.key, value=value, headers=headers)
        return future


def _reference_value(record: Record, size: int, reason: str, kind: str) -> bytes:
    """Where the original record is, for a dead letter too large to carry it."""
    reference = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "size": size,
    }
    return orjson.dumps({"reference": reference, "reason": reason, "kind": kind})


def _headers(record: Record, reason: str, kind: str) -> list[tuple[str, bytes]]:
    return [
        ("reason", reason.encode(errors="replace")[:4000]),
        ("kind", kind.encode()),
        ("original_topic", record.topic.encode()),
        ("original_partition", str(record.partition).encode()),
        ("original_offset", str(record.offset).encode()),
    ]
