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


class ProvenEvent(BaseModel):
    """A stored event as recorded, with what proves it: its hash over its bytes and place,
    and the Merkle path from it to a signed checkpoint."""

    position: int
    aggregate_id: str
    version: int
    topic: str
    state: str = Field(description="The stored bytes, base64 (ciphertext where encrypted)")
    readable: Any = Field(description="The stored bytes as JSON, when they are JSON")
    hash: str = Field(description="SHA-256, hex: infra/audit/proof.py's event_hash")
    log_previous: str = Field(description="The log's previous event's hash, hex")
    aggregate_previous: str = Field(description="The aggregate's previous event's hash, hex")
    checkpoint: int = Field(description="The sequence number of the checkpoint that signed it")
    leaf_index: int
    tree_size: int
    path: list[str] = Field(description="Sibling hashes from the leaf up (RFC 9162), hex")


class SignedCheckpoint(BaseModel):
    seq: int
    first_position: int
    position: int
    head: str
    root: str
    previous: str
    signed_at: str
    key_id: str
    signature: str = Field(description="Ed25519 over the other fields as canonical JSON, base64")


class InclusionProof(BaseModel):
    """Check it with the signing key's public half, obtained apart from this system:
    `proven_event_problems(event, checkpoint)` and `signature_valid(checkpoint, key)` of
    infra/audit/proof.py."""

    event: ProvenEvent
    checkpoint: SignedCheckpoint


class AuditEventPage(BaseModel):
    limit: int
    next: str | None = Field(description="The `cursor` of the next page; null on the last")
    items: list[AuditEvent]


class AggregateState(BaseModel):
    aggregate_id: str
    aggregate_type: str
    version: int = Field(description="Its version then: the last event at or before as_of")
    as_of: str
    state: dict[str, Any]
