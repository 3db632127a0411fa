"""Incident state as plain data, folded from published events.

Both the incidents read model and the audit timeline fold the same way; the timeline diffs
the state before and after each event to show what changed.
"""

from __future__ import annotations

from typing import Any, Callable

from projections.runtime.envelope import Envelope
from projections.runtime.time_text import iso

State = dict[str, Any]


def _logged(s: State, p: dict, at: str) -> None:
    for key in (
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
    ):
        s[key] = p.get(key)
    s.update(
        state="new",
        hold_reason=None,
        assignment_group=None,
        assignee=None,
        tier="L1",
        major=False,
        reassignment_count=0,
        reopen_count=0,
        opened_at=at,
        acknowledged_at=None,
        resolved_at=None,
        closed_at=None,
        cancelled_at=None,
        resolution_code=None,
        satisfaction=None,
    )


def _assigned(s: State, p: dict, at: str) -> None:
    s.update(assignment_group=p["group"], assignee=p["agent"])
    s["reassignment_count"] += int(bool(p.get("reassignment")))


def _escalated(s: State, p: dict, at: str) -> None:
    if p["kind"] == "hierarchical":
        s["major"] = True
        return
    if p["group"] != s["assignment_group"]:
        s["reassignment_count"] += int(s["assignment_group"] is not None)
        s.update(assignment_group=p["group"], assignee=None)
    s["tier"] = p["tier"]


def _resolved(s: State, p: dict, at: str) -> None:
    s.update(state="resolved", hold_reason=None, resolution_code=p["code"], resolved_at=at)


def _reopened(s: State, p: dict, at: str) -> None:
    s.update(state="in_progress", resolution_code=None, resolved_at=None)
    s["reopen_count"] += 1


FOLDS: dict[str, Callable[[State, dict, str], None]] = {
    "Logged": _logged,
    "Assigned": _assigned,
    "Acknowledged": lambda s, p, at: s.update(state="in_progress", acknowledged_at=at),
    "Escalated": _escalated,
    "PutOnHold": lambda s, p, at: s.update(state="on_hold", hold_reason=p["reason"]),
    "Resumed": lambda s, p, at: s.update(state="in_progress", hold_reason=None),
    "Resolved": _resolved,
    "Reopened": _reopened,
    "Closed": lambda s, p, at: s.update(
        state="closed", closed_at=at, satisfaction=p.get("satisfaction")
    ),
    "Cancelled": lambda s, p, at: s.update(state="cancelled", hold_reason=None, cancelled_at=at),
    "Commented": lambda s, p, at: None,
    "Reprioritised": lambda s, p, at: s.update(
        impact=p["impact"], urgency=p["urgency"], priority=p["priority"]
    ),
    "Recategorised": lambda s, p, at: s.update(
        category=p["category"], subcategory=p["subcategory"], service=p["service"]
    ),
    # Recorded by the SLA scheduler; the SLA clock read model (sla_clocks) folds them, the
    # incident's own state does not change, the timeline shows them.
    "SlaWarningReached": lambda s, p, at: None,
    "SlaBreached": lambda s, p, at: None,
}


def fold(state: State | None, event: Envelope) -> State:
    """The state after `event`; unknown event types change nothing but the version."""
    after = dict(state or {"id": event.aggregate_id})
    step = FOLDS.get(event.name)
    at = iso(event.occurred_at)
    if step is not None:
        step(after, event.payload, at)
    after.update(version=event.aggregate_version, updated_at=at)
    return after


def changes(before: State | None, after: State) -> list[dict[str, Any]]:
    """Fields whose value differs, as {field, before, after}; bookkeeping fields left out."""
    before = before or {}
    return [
        {"field": key, "before": before.get(key), "after": value}
        for key, value in after.items()
        if key not in ("version", "updated_at", "id") and before.get(key) != value
    ]
