"""A practice's ticket numbers (INC0001001, PRB0001001, ...), issued by an aggregate.

Each number is an event of the practice's sequence, saved in the same transaction as the
ticket that takes it: a number exists only if its ticket does (no gaps), and two writers
that take the same number conflict on the sequence's version (no duplicates).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.shared_kernel.actor import Actor
from domain.shared_kernel.events import StampedEvent
from domain.shared_kernel.value_checks import CheckedEvent

_NAMESPACE = UUID("5b0f7a52-93a1-4c3e-8d2f-6f1f6e0c9a41")
WIDTH = 7


def sequence_id(practice: str) -> UUID:
    return uuid5(_NAMESPACE, practice)


class TicketNumberSequence(Aggregate):
    class Event(StampedEvent):
        class_version = 1

    class Started(CheckedEvent, Aggregate.Created):
        class_version = 1
        practice: str
        first: int

    @classmethod
    def create_id(cls, practice: str, **_: Any) -> UUID:
        return sequence_id(practice)

    @event(Started)
    def __init__(self, practice: str, first: int) -> None:
        self.practice, self.next_number = practice, first

    def number_at(self, prefix: str, offset: int) -> str:
        """The number `offset` places after the next one (a batch takes several at once)."""
        return f"{prefix}{self.next_number + offset:0{WIDTH}d}"

    def issue(self, prefix: str, ticket_id: UUID, by: Actor, causation_id: str) -> str:
        number = self.number_at(prefix, 0)
        self._issued(number, str(ticket_id), by, causation_id)
        return number

    @event("Issued")
    def _issued(self, number: str, ticket_id: str, by: Actor, causation_id: str) -> None:
        self.next_number += 1
