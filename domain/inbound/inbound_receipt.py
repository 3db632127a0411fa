"""Proof that one inbound message, (source, id), was applied.

Its id is derived from (source, id) and it is created in the same transaction as whatever
the message changed: a second delivery fails on this aggregate's version and is reported
as a duplicate, with nothing applied twice. There is no separate table that could disagree
with the event store.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.shared_kernel.value_checks import CheckedEvent

_NAMESPACE = UUID("c3a0f3a8-5d0e-4a35-9e57-2d1f0b6e7a03")


def receipt_id(source: str, event_id: str) -> UUID:
    return uuid5(_NAMESPACE, f"{source}\n{event_id}")


class InboundReceipt(Aggregate):
    class Event(CheckedEvent, Aggregate.Event):
        class_version = 1

    class Received(CheckedEvent, Aggregate.Created):
        class_version = 1
        source: str
        event_id: str
        type: str
        subject: str
        outcome: str
        incident_id: str | None

    @classmethod
    def create_id(cls, source: str, event_id: str, **_: Any) -> UUID:
        return receipt_id(source, event_id)

    @event(Received)
    def __init__(
        self,
        source: str,
        event_id: str,
        type: str,
        subject: str,
        outcome: str,
        incident_id: str | None,
    ) -> None:
        self.source, self.event_id, self.type, self.subject = source, event_id, type, subject
        self.outcome, self.incident_id = outcome, incident_id
