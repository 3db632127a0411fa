"""What the audit trail shows of an event: who, why, what changed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Actor(BaseModel):
    id: str
    kind: str


class Change(BaseModel):
    field: str
    before: Any = None
    after: Any = None


class TimelineEntry(BaseModel):
    version: int
    event_id: str
    event: str
    occurred_at: str
    actor: Actor
    causation_id: str
    changes: list[Change]
    details: dict[str, Any]


class AuditEvent(BaseModel):
    """One event of any aggregate, as the audit trail recorded it."""

    aggregate_id: str
    aggregate_type: str = Field(description="Incident, SlaPolicy, SourceTicket, ...")
    version: int
    event_id: str
    event: str
    occurred_at: str = Field(description="When it happened (at the source, if imported)")
    recorded_at: str | None = Field(description="When this event store recorded it")
    position: int = Field(description="Its place in the event store's log (0: not known)")
    actor: Actor
    causation_id: str
    changes: list[dict[str, Any]] = Field(
        description="Incidents: {field, before, after} of the incident record; other "
        "aggregates: {field, after} of each field the event carries"
    )
    details: dict[str, Any]
