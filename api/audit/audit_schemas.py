"""What the audit trail shows of an event: who, why, what changed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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
