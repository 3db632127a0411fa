"""The incident record: the one fold of an incident's published events.

Whatever is said about an incident after some of its events (its fields, its state, who it
is assigned to, how often it was reassigned or reopened, why it is on hold) is said here,
once. The incidents read model stores the record; the audit trail diffs it before and after
each event; the KPI facts and the SLA clocks read it; the API folds the incident's stored
events with it when the read model has not caught up and for `as_of`. The record is the
public document of GET /v1/incidents/{id}.

Times are the events' `occurred_at`: the time at the source, for imported events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import takewhile
from typing import Any

from projections.runtime.envelope import Envelope
from projections.runtime.time_text import iso

Record = dict[str, Any]  # field: value, the fields of FIELDS
Payload = dict[str, Any]  # an event's own fields (Envelope.payload)

# What the Logged event carries, taken as it is.
LOGGED = (
    "number",
    "title",
    "description",
    "caller",
    "channel",
    "service",
    "category",
    "subcategory",
    "impact",
    "urgency",
    "priority",
    "source",
    "external_ref",
)
# What a newly logged incident starts with besides that (opened_at: the Logged event's time).
NEW = {
    "state": "new",
    "hold_reason": None,
    "assignment_group": None,
    "assignee": None,
    "tier": "L1",
    "major": False,
    "reassignment_count": 0,
    "reopen_count": 0,
    "opened_at": None,
    "acknowledged_at": None,
    "resolved_at": None,
    "closed_at": None,
    "cancelled_at": None,
    "resolution_code": None,
    "satisfaction": None,
}
# Every field of the record: the columns of the incidents read model.
FIELDS = ("id", *LOGGED, *NEW, "version", "updated_at")
BOOKKEEPING = ("version", "updated_at", "id")
TERMINAL_STATES = frozenset({"closed", "cancelled"})


def _logged(r: Record, p: Payload, at: str) -> None:
    r.update({key: p.get(key) for key in LOGGED}, **NEW)
    r["opened_at"] = at


def _assigned(r: Record, p: Payload, at: str) -> None:
    # Whether it was a reassignment is the writer's judgement (the source's, for imports).
    r.update(assignment_group=p["group"], assignee=p["agent"])
    r["reassignment_count"] += int(bool(p.get("reassignment")))


def _escalated(r: Record, p: Payload, at: str) -> None:
    if p["kind"] == "hierarchical":
        r["major"] = True
        return
    if p["group"] != r["assignment_group"]:
        # Moving to another group is a reassignment, unless nobody had it yet.
        r["reassignment_count"] += int(r["assignment_group"] is not None)
        r.update(assignment_group=p["group"], assignee=None)
    r["tier"] = p["tier"]


def _resolved(r: Record, p: Payload, at: str) -> None:
    r.update(state="resolved", hold_reason=None, resolution_code=p["code"], resolved_at=at)


def _reopened(r: Record, p: Payload, at: str) -> None:
    r.update(state="in_progress", resolution_code=None, resolved_at=None)
    r["reopen_count"] += 1


def _unchanged(r: Record, p: Payload, at: str) -> None:
    """Comments, and the SLA scheduler's notices: the SLA clocks fold those, the audit
    trail shows them, the record does not change."""


STEPS: dict[str, Callable[[Record, Payload, str], None]] = {
    "Logged": _logged,
    "Assigned": _assigned,
    "Acknowledged": lambda r, p, at: r.update(state="in_progress", acknowledged_at=at),
    "Escalated": _escalated,
    "PutOnHold": lambda r, p, at: r.update(state="on_hold", hold_reason=p["reason"]),
    "Resumed": lambda r, p, at: r.update(state="in_progress", hold_reason=None),
    "Resolved": _resolved,
    "Reopened": _reopened,
    "Closed": lambda r, p, at: r.update(
        state="closed", closed_at=at, satisfaction=p.get("satisfaction")
    ),
    "Cancelled": lambda r, p, at: r.update(state="cancelled", hold_reason=None, cancelled_at=at),
    "Commented": _unchanged,
    "Reprioritised": lambda r, p, at: r.update(
        impact=p["impact"], urgency=p["urgency"], priority=p["priority"]
    ),
    "Recategorised": lambda r, p, at: r.update(
        category=p["category"], subcategory=p["subcategory"], service=p["service"]
    ),
    "SlaWarningReached": _unchanged,
    "SlaBreached": _unchanged,
}


def fold(record: Record | None, event: Envelope) -> Record:
    """The record after `event`; unknown event types change nothing but the version."""
    after = dict(record or {"id": event.aggregate_id})
    at = iso(event.occurred_at)
    STEPS.get(event.name, _unchanged)(after, event.payload, at)
    after.update(version=event.aggregate_version, updated_at=at)
    return after


def replay(events: Iterable[Envelope]) -> Record | None:
    """The record after every one of `events` (one incident's, in version order)."""
    record = None
    for event in events:
        record = fold(record, event)
    return record


def as_of(events: Iterable[Envelope], moment: datetime) -> Record | None:
    """The record as it stood at `moment`; an imported event counts at its source time."""
    return replay(takewhile(lambda event: event.occurred_at <= moment, events))


def was_logged(record: Record | None) -> bool:
    """Whether the fold saw the incident logged (a read model may start after that)."""
    return record is not None and "state" in record


def entered(before: Record | None, after: Record, state: str) -> bool:
    return after["state"] == state and (before or {}).get("state") != state


def changes(before: Record | None, after: Record) -> list[dict[str, Any]]:
    """Fields whose value differs, as {field, before, after}; bookkeeping fields left out."""
    before = before or {}
    return [
        {"field": key, "before": before.get(key), "after": value}
        for key, value in after.items()
        if key not in BOOKKEEPING and before.get(key) != value
    ]
