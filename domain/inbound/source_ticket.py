"""A ticket of another ticketing tool, as far as this desk has followed its audit log.

One `SourceTicket` per (source, ref): its id is derived from both, so every consumer and
every API instance finds the same one. It links the external reference to our incident and
keeps the previous snapshot that the next one is compared with. It is saved in the same
transaction as the incident events that snapshot produced, so the link, the previous
snapshot and the incident can never disagree. Each of its events names the message that
caused it, which makes it the ticket's receipt too: a message it has seen is a duplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.shared_kernel.personal_data import PersonalData
from domain.shared_kernel.value_checks import CheckedEvent

_NAMESPACE = UUID("2b0f4f0e-8f0c-4a1e-9d67-6c1f3c1f5a01")


def source_ticket_id(source: str, ref: str) -> UUID:
    return uuid5(_NAMESPACE, f"{source}\n{ref}")


class SourceTicket(Aggregate):
    class Event(CheckedEvent, Aggregate.Event):
        class_version = 1

    class Linked(CheckedEvent, Aggregate.Created):
        """First snapshot of a ticket: it opened `incident_id` here."""

        class_version = 1
        source: str
        ref: str
        incident_id: str
        mod_count: int
        snapshot: dict[str, Any]
        event_id: str
        at: datetime | None

    @classmethod
    def create_id(cls, source: str, ref: str, **_: Any) -> UUID:
        return source_ticket_id(source, ref)

    @event(Linked)
    def __init__(
        self,
        source: str,
        ref: str,
        incident_id: str,
        mod_count: int,
        snapshot: dict[str, Any],
        event_id: str,
        at: datetime | None = None,
    ) -> None:
        self.source, self.ref, self.incident_id = source, ref, incident_id
        self.mod_count, self.snapshot = mod_count, snapshot
        self.last_event_id = event_id
        self.event_ids = {event_id}  # every message of this ticket seen: its idempotency
        self.applied = 1
        self.stale = 0

    def has_seen(self, event_id: str) -> bool:
        """Whether the message (by its CloudEvent id) was applied or ignored already."""
        return event_id in self.event_ids

    @event("SnapshotApplied")
    def applied_snapshot(
        self, mod_count: int, snapshot: dict[str, Any], event_id: str, at: datetime | None = None
    ) -> None:
        """A newer snapshot was applied; it is what the next one is compared with."""
        self.mod_count, self.snapshot, self.last_event_id = mod_count, snapshot, event_id
        self.event_ids.add(event_id)
        self.applied += 1

    @event("StaleSnapshotIgnored")
    def ignored_stale(self, mod_count: int, event_id: str, at: datetime | None = None) -> None:
        """A snapshot not newer than the last applied one arrived; it changed nothing."""
        self.event_ids.add(event_id)
        self.stale += 1


# What a mirrored ticket remembers of people: the other tool's agents (its caller and text
# go to the incident, sealed there).
_AGENTS = ("snapshot.updated_by", "snapshot.assignee")
PERSONAL_DATA = PersonalData(
    subject_field="",
    people={"Linked": _AGENTS, "SnapshotApplied": _AGENTS},
    snapshot_people=_AGENTS,
)
