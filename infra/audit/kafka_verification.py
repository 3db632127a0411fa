"""`itsm audit verify --kafka`: the events topic read from offset 0 on every partition and
compared, position by position, with the store as its verification recomputed it.

The store is the record; the topic is its copy. Each record names its position (the
`notification_id` header) and carries its hash (`event_hash`): a record whose hash, key,
version or bytes are not the store's is `altered`; a published position with no record is
`deleted`; a record for a position the store does not have is `inserted`; a position
published twice is `duplicated` (the relay's at-least-once delivery does that after a crash
between the broker's acknowledgement and the saved position: the detail says whether the
copies are identical); a partition whose positions go backwards is `reordered`.

A record's bytes are compared with the envelope the store's event gives today. An event
whose class was upcast since it was published (another schema version) is compared by its
hash, key and version only.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eventsourcing.persistence import Notification
from kafka import KafkaConsumer, TopicPartition

from infra.audit.event_chain import EVENT_HASH_HEADER
from infra.audit.store_verification import Finding

_PAGE = 5_000


@dataclass(frozen=True)
class Copy:
    """One record of the topic, as much of it as the comparison needs."""

    partition: int
    offset: int
    key: bytes | None
    version: int | None
    schema_version: int | None
    event_hash: bytes | None
    value_digest: bytes

    def where(self) -> str:
        return f"partition {self.partition} offset {self.offset}"


class KafkaVerification:
    def __init__(
        self,
        hashes: dict[int, bytes],
        published_up_to: int,
        notifications: Callable[[int, int], Sequence[Notification]],
        envelope_of: Callable[[Notification], Any],
    ) -> None:
        """`hashes`: the store's recomputed hashes by position; `published_up_to`: the last
        position the relay says it published; `notifications(after, limit)`: the store's
        events; `envelope_of`: the envelope the relay would publish for one."""
        self.hashes, self.published_up_to = hashes, published_up_to
        self.notifications, self.envelope_of = notifications, envelope_of
        self.findings: list[Finding] = []

    def run(self, records: Iterator[Any]) -> list[Finding]:
        copies = self._copies(records)
        for notification in self._stored():
            self._compare(notification, copies.pop(notification.id, []))
        for position, extra in sorted(copies.items()):
            for copy in extra:
                self._find(
                    "inserted", position, None, f"{copy.where()}: the store has no such event"
                )
        return self.findings

    def _copies(self, records: Iterator[Any]) -> dict[int, list[Copy]]:
        copies: defaultdict[int, list[Copy]] = defaultdict(list)
        last: dict[int, int] = {}
        for record in records:
            headers = {k: v for k, v in record.headers or ()}
            position = _int(headers.get("notification_id"))
            copy = Copy(
                record.partition,
                record.offset,
                record.key,
                _int(headers.get("aggregate_version")),
                _int(headers.get("schema_version")),
                _hex(headers.get(EVENT_HASH_HEADER)),
                hashlib.sha256(record.value or b"").digest(),
            )
            if position is None:
                self._find("inserted", None, None, f"{copy.where()}: a record with no position")
                continue
            if position < last.get(record.partition, 0):
                self._find(
                    "reordered",
                    position,
                    None,
                    f"{copy.where()}: after position {last[record.partition]}",
                )
            if position in self.hashes:  # a made-up position is reported as inserted only
                last[record.partition] = position
            copies[position].append(copy)
        return copies

    def _stored(self) -> Iterator[Notification]:
        after = 0
        while batch := self.notifications(after, _PAGE):
            for notification in batch:
                if notification.id > self.published_up_to:
                    return
                yield notification
            after = batch[-1].id

    def _compare(self, notification: Notification, copies: list[Copy]) -> None:
        position, aggregate = notification.id, str(notification.originator_id)
        if not copies:
            self._find("deleted", position, aggregate, "published, but no record on the topic")
            return
        if len(copies) > 1:
            same = len({(c.value_digest, c.event_hash) for c in copies}) == 1
            self._find(
                "duplicated",
                position,
                aggregate,
                f"{len(copies)} records ({', '.join(c.where() for c in copies)});"
                f" {'identical copies' if same else 'the copies differ'}",
            )
        envelope = self.envelope_of(notification)
        expected = hashlib.sha256(envelope.to_json()).digest()
        for copy in copies:
            problem = self._problem(notification, envelope, expected, copy)
            if problem:
                self._find("altered", position, aggregate, f"{copy.where()}: {problem}")

    def _problem(
        self, notification: Notification, envelope: Any, expected: bytes, copy: Copy
    ) -> str | None:
        if copy.event_hash != self.hashes.get(notification.id):
            return "its event_hash is not the store's"
        if copy.key != str(notification.originator_id).encode():
            return "its key is not the event's aggregate"
        if copy.version != notification.originator_version:
            return "its version is not the event's"
        upcast = copy.schema_version != envelope.schema_version
        if not upcast and copy.value_digest != expected:
            return "its bytes are not the event's"
        return None

    def _find(self, kind: str, position: int | None, aggregate: str | None, detail: str) -> None:
        self.findings.append(Finding(kind, position, aggregate, f"on Kafka, {detail}"))


def topic_records(bootstrap: str, topic: str, progress: Callable[[int], None]) -> Iterator[Any]:
    """Every record of the topic from offset 0 to where each partition ended when the read
    began, partition by partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            yield from _partition(consumer, tp, cast(int, ends[tp]), progress)
    finally:
        consumer.close()


def _partition(
    consumer: KafkaConsumer, tp: TopicPartition, end: int, progress: Callable[[int], None]
) -> Iterator[Any]:
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    while consumer.position(tp) < end:
        for records in consumer.poll(timeout_ms=500).values():
            kept = [r for r in records if r.offset < end]
            progress(len(kept))
            yield from kept


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _hex(value: bytes | None) -> bytes | None:
    try:
        return bytes.fromhex(value.decode()) if value is not None else None
    except (ValueError, UnicodeDecodeError):
        return None
