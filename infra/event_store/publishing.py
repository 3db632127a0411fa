"""Stored event -> published envelope, shared by the Kafka relay and the in-process feed."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from projections.runtime.envelope import Envelope

_EVENT_IDS = UUID("6f1d3a52-4c61-4b7e-9a3e-2b8f0c7d9e11")
_NAMESPACE = _EVENT_IDS.bytes
_BOOKKEEPING = {
    "originator_id",
    "originator_version",
    "timestamp",
    "by",
    "causation_id",
    "originator_topic",
    "at",
}


def event_id(aggregate_id: Any, version: int) -> str:
    """Stable across republishing, so a duplicate is recognisable by id too.

    It is `str(uuid5(_EVENT_IDS, f"{aggregate_id}/{version}"))`, spelled out without the
    `UUID` object in between: the relay computes one per event it publishes.
    """
    digest = bytearray(
        hashlib.sha1(_NAMESPACE + f"{aggregate_id}/{version}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_envelope(mapper: Mapper[UUID], notification: Notification) -> Envelope:
    domain_event = mapper.to_domain_event(notification)
    state = vars(domain_event)
    by = state.get("by")
    return Envelope(
        event_id=event_id(notification.originator_id, notification.originator_version),
        type=type(domain_event).__qualname__,
        aggregate_id=str(notification.originator_id),
        aggregate_version=notification.originator_version,
        schema_version=getattr(type(domain_event), "class_version", 1),
        occurred_at=state.get("at") or state["timestamp"],
        recorded_at=state["timestamp"],
        actor=by.as_dict() if by is not None else {"id": "system", "kind": "automation"},
        causation_id=state.get("causation_id", ""),
        payload={k: v for k, v in state.items() if k not in _BOOKKEEPING},
        notification_id=notification.id,
    )


def published(envelope: Envelope) -> Envelope:
    """The envelope as a consumer will see it after the JSON round trip.

    The in-process feed passes events through this too, so both feeds give projections
    exactly the same input.
    """
    return Envelope.from_json(envelope.to_json())
