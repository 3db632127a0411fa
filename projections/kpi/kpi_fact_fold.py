"""The KPI fact of one incident, folded event by event, and its state intervals.

A fact is one row of `kpi_facts` (column: value, FACT_COLUMNS): what every KPI needs about one
incident. Its `record` is the incident record (projections/incident/incident_record.py) after
the latest event, kept to fold the next one from; the fact adds what only the KPIs need. A
state interval is one row of `kpi_intervals`: a stretch of time the incident spent in one
state with one assignment group (and hold reason).

Times are kept twice: fixed-width UTC text (readable, sortable) and epoch seconds (durations
and period arithmetic in portable SQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from projections.incident import incident_record
from projections.incident.incident_record import TERMINAL_STATES, Record
from projections.runtime.envelope import Envelope
from projections.runtime.time_text import iso

FACT_COLUMNS = (
    "incident_id",
    "number",
    "external_ref",
    "source",
    "category",
    "subcategory",
    "service",
    "priority",
    "channel",
    "state",
    "major",
    "current_group",
    "current_agent",
    "first_group",
    "resolution_group",
    "resolution_agent",
    "resolved_by",
    "owner_group",
    "owner_agent",
    "reassignments_at_resolution",
    "opened_at",
    "opened_s",
    "acknowledged_at",
    "acknowledged_s",
    "first_resolved_at",
    "first_resolved_s",
    "resolved_at",
    "resolutions",
    "closed_at",
    "closed_s",
    "cancelled_at",
    "cancelled_s",
    "reopen_count",
    "reassignment_count",
    "satisfaction",
    "respond_breached",
    "resolve_breached",
    # the open state interval: its sequence number, state and group, and since when
    "interval_seq",
    "interval_state",
    "interval_hold_reason",
    "interval_group",
    "interval_entered_at",
    "interval_entered_s",
    "record",  # the incident record after the latest event, as JSON
)
# The fact columns that are fields of the incident record (column: field).
FROM_RECORD = {
    **{
        field: field
        for field in (
            "number",
            "external_ref",
            "source",
            "category",
            "subcategory",
            "service",
            "priority",
            "channel",
            "state",
            "reopen_count",
            "reassignment_count",
            "satisfaction",
            "opened_at",
            "acknowledged_at",
            "resolved_at",
            "closed_at",
            "cancelled_at",
        )
    },
    "current_group": "assignment_group",
    "current_agent": "assignee",
}
# The open interval, but for its sequence number (kept when the incident is over).
OPEN_INTERVAL = (
    "interval_state",
    "interval_group",
    "interval_hold_reason",
    "interval_entered_at",
    "interval_entered_s",
)
# The record's moments the facts also keep as epoch seconds (`<moment>_s`).
MOMENTS = ("opened", "acknowledged", "closed", "cancelled")
INTERVAL_COLUMNS = (
    "incident_id",
    "seq",
    "state",
    "hold_reason",
    "group_name",
    "entered_at",
    "entered_s",
    "left_at",
    "left_s",
)
Fact = dict[str, Any]
# The state interval an incident is in: (state, assignment group, hold reason).
IntervalKey = tuple[str, str | None, str | None]
# A row of kpi_intervals (INTERVAL_COLUMNS).
IntervalRow = tuple[str, int, str, str | None, str | None, str, float, str | None, float | None]
# The intervals a batch opened or closed, by (incident id, seq).
Intervals = dict[tuple[str, int], IntervalRow]


def _seconds(moment: str | None) -> float | None:
    return datetime.fromisoformat(moment).timestamp() if moment else None


def _opened(incident_id: str) -> Fact:
    fact = dict.fromkeys(FACT_COLUMNS)
    fact.update(incident_id=incident_id, resolutions=0, interval_seq=0)
    fact.update(respond_breached=0, resolve_breached=0)
    return fact


def _take_record(fact: Fact, record: Record) -> None:
    """The fact's columns that are the incident record's, under the KPIs' names."""
    fact.update({column: record[field] for column, field in FROM_RECORD.items()})
    fact.update({f"{moment}_s": _seconds(record[f"{moment}_at"]) for moment in MOMENTS})
    fact["major"] = int(bool(record["major"]))
    fact["first_group"] = fact["first_group"] or record["assignment_group"]


def _first_resolution(fact: Fact, event: Envelope) -> None:
    """Who resolved it first, and how often it had changed hands by then."""
    fact["resolutions"] += 1
    if fact["first_resolved_s"] is not None:
        return
    fact.update(
        first_resolved_at=fact["resolved_at"], first_resolved_s=_seconds(fact["resolved_at"])
    )
    fact.update(resolution_group=fact["current_group"], resolution_agent=fact["current_agent"])
    fact.update(
        resolved_by=event.actor["id"], reassignments_at_resolution=fact["reassignment_count"]
    )


def _interval_key(record: Record) -> IntervalKey | None:
    """The state interval the incident is in (state, group, hold reason); None once over."""
    if record["state"] in TERMINAL_STATES:
        return None
    return (record["state"], record["assignment_group"], record["hold_reason"])


def _interval_row(
    fact: Fact, left_at: str | None = None, left_s: float | None = None
) -> IntervalRow:
    """The fact's open interval as a row of kpi_intervals, left at `left_at` if given."""
    return (
        fact["incident_id"],
        fact["interval_seq"],
        fact["interval_state"],
        fact["interval_hold_reason"],
        fact["interval_group"],
        fact["interval_entered_at"],
        fact["interval_entered_s"],
        left_at,
        left_s,
    )


def _follow_interval(fact: Fact, record: Record, event: Envelope, intervals: Intervals) -> None:
    """Close the open interval and open the next when the state, group or hold reason moved."""
    key = _interval_key(record)
    if key == _open_key(fact):
        return
    at, seconds = iso(event.occurred_at), event.occurred_at.timestamp()
    if fact["interval_state"] is not None:
        intervals[(fact["incident_id"], fact["interval_seq"])] = _interval_row(fact, at, seconds)
    if key is None:
        fact.update(dict.fromkeys(OPEN_INTERVAL))
        return
    fact.update(zip(OPEN_INTERVAL, (*key, at, seconds), strict=True))
    fact["interval_seq"] += 1
    intervals[(fact["incident_id"], fact["interval_seq"])] = _interval_row(fact)


def _open_key(fact: Fact) -> IntervalKey | None:
    if fact["interval_state"] is None:
        return None
    return (fact["interval_state"], fact["interval_group"], fact["interval_hold_reason"])


def _breach(fact: Fact, event: Envelope) -> None:
    metric = event.payload.get("metric")
    if event.name == "SlaBreached" and metric in ("respond", "resolve"):
        fact[f"{metric}_breached"] = 1


def fold(fact: Fact | None, event: Envelope, intervals: Intervals) -> Fact | None:
    """The fact row after one incident event; new or changed intervals go to `intervals`.

    Returns None for an event of an incident whose Logged event was never seen.
    """
    before = fact["record"] if fact else None
    record = incident_record.fold(before, event)
    if not incident_record.was_logged(record):
        return None
    fact = dict(fact or _opened(event.aggregate_id), record=record)
    _take_record(fact, record)
    if incident_record.entered(before, record, "resolved"):
        _first_resolution(fact, event)
    _breach(fact, event)
    _follow_interval(fact, record, event, intervals)
    fact["owner_group"] = fact["resolution_group"] or fact["current_group"]
    fact["owner_agent"] = fact["resolution_agent"] or fact["current_agent"]
    return fact
