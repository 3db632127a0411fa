"""The incident timeline: the audit trail of one incident, as GET .../timeline shows it."""

from __future__ import annotations

from typing import Any

from projections.audit import audit_trail
from projections.runtime.read_store import Transaction

FIELDS = (
    "version",
    "event_id",
    "event",
    "occurred_at",
    "actor",
    "causation_id",
    "changes",
    "details",
)


def entries(tx: Transaction, incident_id: str) -> list[dict[str, Any]]:
    lines = audit_trail.entries(tx, incident_id, "Incident")
    return [{key: line[key] for key in FIELDS} for line in lines]
