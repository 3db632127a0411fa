"""The improvement record: the one fold of an improvement's published events.

What an improvement is after some of its events (its design, goals, plan, approval,
verification, cause analyses and outcome) is said here, once: the register read model
stores a summary of the record, the audit trail diffs it before and after each event, and
the API folds the stored events with it for `as_of`. The record has the fields of the
improvement document (GET /v1/improvements/{id}), so a past view reads like a present one.

The lifecycle rules are the aggregate's: every event says what it decided (a revision says
whether it revoked an approval), so the fold only records. Times are the events'
`occurred_at`, as fixed-width UTC text.
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
AGGREGATE = "Improvement"

# What a newly proposed improvement starts with besides its number and design.
NEW: Record = {
    "state": "proposed",
    "outcome": None,
    "goals": [],
    "plan": {"actions": [], "raci": []},
    "plan_version": 0,
    "approved_version": None,
    "approved_by": None,
    "approved_at": None,
    "hold_reason": None,
    "reason": None,  # why it was declined or withdrawn
    "verification": None,  # the latest: a verdict rests on it
    "cause_analyses": {},  # by goal id
    "summary": None,
    "proposed_by": None,
    "proposed_at": None,
    "closed_at": None,
    # The last review reminder (Improvement.ReviewReminded): when it was recorded, and the
    # review date it reminded of.
    "review_reminded_at": None,
    "review_reminded_for": None,
}
FIELDS = ("id", "number", "design", *NEW, "version", "updated_at")
_NO_APPROVAL = {"approved_version": None, "approved_by": None, "approved_at": None}


def _proposed(r: Record, p: Payload, e: Envelope, at: str) -> None:
    r.update(NEW, number=p["number"], design=p["design"])
    r.update(proposed_by=e.actor["id"], proposed_at=at)


def _revised(field: str) -> Callable[[Record, Payload, Envelope, str], None]:
    """A design, goals or plan revision: a new plan version; an approval it revokes is gone
    and the improvement is designed again (the event says so)."""

    def step(r: Record, p: Payload, e: Envelope, at: str) -> None:
        r[field] = p[field]
        r["plan_version"] = p["plan_version"]
        if p["revokes_approval"]:
            r.update(_NO_APPROVAL, state="designed", hold_reason=None)

    return step


def _approved(r: Record, p: Payload, e: Envelope, at: str) -> None:
    r.update(state="approved", approved_version=p["plan_version"])
    r.update(approved_by=e.actor["id"], approved_at=at)


def _action(status: str, why: str) -> Callable[[Record, Payload, Envelope, str], None]:
    """An action completed or dropped: a new plan value, the other actions as they were."""

    def step(r: Record, p: Payload, e: Envelope, at: str) -> None:
        reason = p[why] if why else ""
        actions = [
            {**a, "status": status, "reason": reason} if a["id"] == p["action_id"] else a
            for a in r["plan"]["actions"]
        ]
        r["plan"] = {**r["plan"], "actions": actions}

    return step


def _verified(r: Record, p: Payload, e: Envelope, at: str) -> None:
    r["verification"] = {
        "number": p["verification"],
        "control_table": p["control_table"],
        "pinned": p["pinned"],
        "by": e.actor["id"],
        "at": at,
    }


def _cause_analysed(r: Record, p: Payload, e: Envelope, at: str) -> None:
    analysis = {key: p[key] for key in ("cause", "follow_up_measures", "follow_up_improvement")}
    r["cause_analyses"] = {**r["cause_analyses"], p["goal_id"]: analysis}


def _closed(r: Record, p: Payload, e: Envelope, at: str) -> None:
    r.update(state="closed", outcome=p["verdict"], summary=p["summary"], closed_at=at)


def _withdrawn(r: Record, p: Payload, e: Envelope, at: str) -> None:
    r.update(state="closed", outcome="withdrawn", reason=p["reason"], hold_reason=None)
    r["closed_at"] = at


def _review_reminded(r: Record, p: Payload, e: Envelope, at: str) -> None:
    r.update(review_reminded_at=at, review_reminded_for=_moment_text(p["review_date"]))


def _moment_text(value: Any) -> str:
    """A time of a payload (ISO text on the feed) as fixed-width UTC text."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return iso(moment)


def _state(state: str, **more: Any) -> Callable[[Record, Payload, Envelope, str], None]:
    return lambda r, p, e, at: r.update(state=state, **more)


def _unchanged(r: Record, p: Payload, e: Envelope, at: str) -> None:
    """An event this fold does not know (a later version's): the audit trail shows it."""


STEPS: dict[str, Callable[[Record, Payload, Envelope, str], None]] = {
    "Proposed": _proposed,
    "Accepted": _state("accepted"),
    "Declined": lambda r, p, e, at: r.update(state="declined", reason=p["reason"], closed_at=at),
    "DesignRevised": _revised("design"),
    "GoalsRevised": _revised("goals"),
    "PlanRevised": _revised("plan"),
    "DesignSubmitted": _state("designed"),
    "Approved": _approved,
    "ImplementationStarted": _state("in_implementation"),
    "PutOnHold": lambda r, p, e, at: r.update(state="on_hold", hold_reason=p["reason"]),
    "Resumed": _state("in_implementation", hold_reason=None),
    "ActionCompleted": _action("done", ""),
    "ActionDropped": _action("dropped", "reason"),
    "ImplementationCompleted": _state("in_review"),
    "VerificationRecorded": _verified,
    "CauseAnalysed": _cause_analysed,
    "Closed": _closed,
    "Withdrawn": _withdrawn,
    "ReviewReminded": _review_reminded,
}


def fold(record: Record | None, event: Envelope) -> Record:
    """The record after `event`; unknown event types change nothing but the version."""
    after = dict(record or {"id": event.aggregate_id})
    at = iso(event.occurred_at)
    STEPS.get(event.name, _unchanged)(after, event.payload, event, at)
    after.update(version=event.aggregate_version, updated_at=at)
    return after


def replay(events: Iterable[Envelope]) -> Record | None:
    """The record after every one of `events` (one improvement's, in version order); other
    aggregates' events are left out, so an id of another kind folds to nothing."""
    record = None
    for event in events:
        if event.aggregate_type == AGGREGATE:
            record = fold(record, event)
    return record


def as_of(events: Iterable[Envelope], moment: datetime) -> Record | None:
    """The record as it stood at `moment`."""
    return replay(takewhile(lambda event: event.occurred_at <= moment, events))


def was_proposed(record: Record | None) -> bool:
    """Whether the fold saw the improvement proposed (a read model may start after that)."""
    return record is not None and "state" in record


# -- what the register lists of a record --------------------------------------------------------


def review_date(record: Record) -> str | None:
    """When the last goal's review period ends: from then on every figure can be verified."""
    # As fixed-width UTC text, like every time of the read models: string order is time order.
    ends = [datetime.fromisoformat(goal["review"]["end"]) for goal in record.get("goals", [])]
    return iso(max(ends)) if ends else None


def open_actions(record: Record) -> int:
    return sum(a["status"] == "open" for a in record.get("plan", {}).get("actions", []))
