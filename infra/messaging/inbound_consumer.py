"""`itsm inbound`: the consumer of itsm.inbound, scaled out as members of one consumer group.

Senders key messages by ticket ref (incident.snapshot) or fingerprint service/check (alerts),
so one ticket's messages stay in one partition, in order. Each poll is one batch for the
`InboundProcessor` (the same code path as POST /v1/inbound). A message it rejects goes to
`<topic>.dlq` with its original key and bytes and a `reason` header; offsets are committed
only after the batch was applied and every dead letter acknowledged, so nothing is lost. A
redelivery after a crash is harmless: every message is recorded with its effects (an
alert's receipt, a snapshot's ticket), so a second delivery is a duplicate.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata

from application.inbound.inbound_processor import InboundProcessor
from infra.messaging.dead_letters import DeadLetters, dead_letter_topic
from infra.messaging.supervised_consumer import (
    ConsumerFactory,
    ConsumerMetrics,
    Polled,
    Record,
    SupervisedConsumer,
    consumer_options,
    member_id,
)

if TYPE_CHECKING:
    from infra.composition_root import Container

log = logging.getLogger(__name__)
GROUP = "itsm.inbound"


def group_for(topic: str) -> str:
    """The consumer group of a topic's `itsm inbound` members: the topic's own name, so that
    deployments (and tests) that share a cluster but not a topic never share a group."""
    return topic


class InboundConsumer(SupervisedConsumer):
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        processor: InboundProcessor,
        dead_letters: DeadLetters,
        max_records: int = 1000,
        worker_id: str | None = None,
        group_id: str = GROUP,
        *,
        stall_seconds: float = 60.0,
        consumer_factory: ConsumerFactory = KafkaConsumer,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        member = member_id(worker_id, f"inbound.{topic}")
        options = consumer_options(bootstrap, group_id, "itsm-inbound", member, max_records)
        super().__init__(
            "inbound",
            topic,
            options,
            stall_seconds=stall_seconds,
            consumer_factory=consumer_factory,
            metrics=metrics,
        )
        self.processor, self.dead_letters = processor, dead_letters
        self.applied = self.rejected = 0
        self.busy_seconds = 0.0

    def handle(self, polled: Polled) -> int:
        """Apply one poll's records as one batch; commit once every dead letter is in."""
        records = [record for batch in polled.values() for record in batch]
        started = time.perf_counter()
        self._apply(records)
        sent = self.dead_letters.confirm()  # raises if the broker did not take one: no commit
        self.consumer.commit(
            {tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1) for tp, batch in polled.items()}
        )
        self.rejected += sent
        self.applied += len(records) - sent
        self.busy_seconds += time.perf_counter() - started
        return len(records)

    def _apply(self, records: list[Record]) -> None:
        """One batch for the processor; what it rejects is queued for the dead-letter topic."""
        outcomes = self.processor.process_batch([r.value or b"" for r in records])
        for record, outcome in zip(records, outcomes, strict=True):
            if outcome.status == "rejected":
                self._dead_letter(record, outcome.reason or "rejected", outcome.kind or "")

    def _dead_letter(self, record: Record, reason: str, kind: str) -> None:
        log.warning(
            "dead-lettering %s/%d@%d: %s", record.topic, record.partition, record.offset, reason
        )
        self.dead_letters.send(dead_letter_topic(self.topic), record, reason, kind)

    def positions(self) -> dict[int, int]:
        """The committed offsets: a batch counts as done once they moved past it."""
        return {tp.partition: self.consumer.committed(tp) or 0 for tp in self.consumer.assignment()}

    def rewind(self) -> None:
        """Back to the last committed offsets, to retry a batch that failed."""
        for tp in self.consumer.assignment():
            committed = self.consumer.committed(tp)
            if committed is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)


def consumer_for(
    container: Container, bootstrap: str, dead_letters: DeadLetters, max_records: int | None = None
) -> InboundConsumer:
    """`itsm inbound`'s consumer, from the settings; it counts in the processor's registry."""
    settings, processor = container.settings, container.inbound
    return InboundConsumer(
        bootstrap,
        settings.inbound_topic,
        processor,
        dead_letters,
        metrics=ConsumerMetrics(processor.registry),
        stall_seconds=settings.worker_stall_seconds,
        max_records=max_records or settings.inbound_batch_size,
        worker_id=settings.worker_id,
        group_id=group_for(settings.inbound_topic),
    )


__all__ = ["InboundConsumer", "consumer_for", "group_for", "GROUP"]
