"""KPI read model, the write side: one fact row per incident and its state intervals.

`kpi_facts` holds what every KPI needs about one incident (when it was opened,
acknowledged, first resolved, closed; who owned it; how often it was reopened and
reassigned; the caller's satisfaction; the SLA verdict). `kpi_intervals` holds, per
incident, every stretch of time it spent in one state with one assignment group, so that
the backlog at any instant and the time spent in each state are exact. Aggregates are
computed at query time (projections/kpi/kpi_queries.py); definitions are in docs/kpis.md.

Times are kept twice: fixed-width UTC text (readable, sortable) and epoch seconds (durations
and period arithmetic in portable SQL). Event times are `occurred_at`: the time at the
source for imported events. What the incident is at each event (its fields, state, group,
agent, counts and hold reason) is the incident record's (projections/incident/incident_record.py),
kept per fact in `record`; the facts add what only the KPIs need.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from projections.incident import incident_record
from projections.incident.incident_record import TERMINAL_STATES, Record
from projections.runtime.envelope import Envelope
from projections.runtime.read_store import Transaction
from projections.runtime.runner import Projection, rows_where_in
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
_INTEGER = {
    "major",
    "reassignments_at_resolution",
    "resolutions",
    "reopen_count",
    "reassignment_count",
    "satisfaction",
    "respond_breached",
    "resolve_breached",
    "interval_seq",
}
Fact = dict[str, Any]


def _column_type(name: str) -> str:
    if name in _INTEGER:
        return "INTEGER"
    return "DOUBLE PRECISION" if name.endswith("_s") else "TEXT"


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


def _interval_key(record: Record) -> tuple | None:
    """The state interval the incident is in (state, group, hold reason); None once over."""
    if record["state"] in TERMINAL_STATES:
        return None
    return (record["state"], record["assignment_group"], record["hold_reason"])


def _interval_row(fact: Fact, left_at: str | None = None, left_s: float | None = None) -> tuple:
    opened = tuple(fact[f"interval_{c}"] for c in ("seq", "state", "hold_reason", "group"))
    entered = (fact["interval_entered_at"], fact["interval_entered_s"])
    return (fact["incident_id"], *opened, *entered, left_at, left_s)


def _follow_interval(fact: Fact, record: Record, event: Envelope, intervals: dict) -> None:
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


def _open_key(fact: Fact) -> tuple | None:
    if fact["interval_state"] is None:
        return None
    return (fact["interval_state"], fact["interval_group"], fact["interval_hold_reason"])


def _breach(fact: Fact, event: Envelope) -> None:
    metric = event.payload.get("metric")
    if event.name == "SlaBreached" and metric in ("respond", "resolve"):
        fact[f"{metric}_breached"] = 1


def fold(fact: Fact | None, event: Envelope, intervals: dict) -> Fact | None:
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


def _facts(tx: Transaction, incident_ids: set[str]) -> dict[str, Fact | None]:
    rows = rows_where_in(
        tx, f"SELECT {', '.join(FACT_COLUMNS)} FROM kpi_facts WHERE incident_id", (), incident_ids
    )
    facts = [dict(zip(FACT_COLUMNS, row, strict=True)) for row in rows]
    return {fact["incident_id"]: {**fact, "record": orjson.loads(fact["record"])} for fact in facts}


def _save_facts(tx: Transaction, facts: list[Fact]) -> None:
    if not facts:
        return
    updates = ", ".join(f"{c} = excluded.{c}" for c in FACT_COLUMNS[1:])
    tx.executemany(
        f"INSERT INTO kpi_facts ({', '.join(FACT_COLUMNS)})"
        f" VALUES ({', '.join(['%s'] * len(FACT_COLUMNS))})"
        f" ON CONFLICT (incident_id) DO UPDATE SET {updates}",
        [[_column(fact, c) for c in FACT_COLUMNS] for fact in facts],
    )


def _column(fact: Fact, name: str) -> Any:
    return orjson.dumps(fact[name]).decode() if name == "record" else fact[name]


class KpiProjection(Projection):
    name = "kpis"
    tables = ("kpi_facts", "kpi_intervals", "kpi_source_links")
    aggregate_types = frozenset({"Incident", "SourceTicket"})
    schema_version = 2  # 2: the incident record, to fold the next event from

    def ddl(self) -> list[str]:
        facts = ", ".join(f"{c} {_column_type(c)}" for c in FACT_COLUMNS)
        return [
            f"CREATE TABLE IF NOT EXISTS kpi_facts ({facts}, PRIMARY KEY (incident_id))",
            *(
                f"CREATE INDEX IF NOT EXISTS kpi_facts_{c} ON kpi_facts ({c})"
                for c in (
                    "opened_s",
                    "acknowledged_s",
                    "first_resolved_s",
                    "closed_s",
                    "external_ref",
                )
            ),
            """CREATE TABLE IF NOT EXISTS kpi_intervals (
                incident_id TEXT NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL,
                hold_reason TEXT, group_name TEXT, entered_at TEXT NOT NULL,
                entered_s DOUBLE PRECISION NOT NULL, left_at TEXT, left_s DOUBLE PRECISION,
                PRIMARY KEY (incident_id, seq))""",
            "CREATE INDEX IF NOT EXISTS kpi_intervals_entered ON kpi_intervals (entered_s)",
            # Tickets imported from another tool (SourceTicket events): their incident and the
            # source's own SLA verdict (`made_sla` of the latest applied snapshot).
            """CREATE TABLE IF NOT EXISTS kpi_source_links (
                ticket_id TEXT PRIMARY KEY, incident_id TEXT, made_sla INTEGER)""",
            "CREATE INDEX IF NOT EXISTS kpi_source_links_incident"
            " ON kpi_source_links (incident_id)",
        ]

    def apply(self, tx: Transaction, event: Envelope) -> None:
        self.apply_many(tx, [event])

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        incidents = [e for e in events if e.aggregate_type == "Incident"]
        tickets = [e for e in events if e.aggregate_type == "SourceTicket"]
        if incidents:
            self._apply_incidents(tx, incidents)
        if tickets:
            self._apply_tickets(tx, tickets)

    def _apply_incidents(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        facts = _facts(tx, {e.aggregate_id for e in events})
        intervals: dict[tuple[str, int], tuple] = {}
        for event in events:
            facts[event.aggregate_id] = fold(facts.get(event.aggregate_id), event, intervals)
        _save_facts(tx, [fact for fact in facts.values() if fact is not None])
        if intervals:
            tx.executemany(
                f"INSERT INTO kpi_intervals ({', '.join(INTERVAL_COLUMNS)})"
                f" VALUES ({', '.join(['%s'] * len(INTERVAL_COLUMNS))})"
                " ON CONFLICT (incident_id, seq) DO UPDATE SET left_at = excluded.left_at,"
                " left_s = excluded.left_s",
                list(intervals.values()),
            )

    def _apply_tickets(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        links: dict[str, list] = {}
        known = {
            row[0]: [row[0], row[1], row[2]]
            for row in rows_where_in(
                tx,
                "SELECT ticket_id, incident_id, made_sla FROM kpi_source_links WHERE ticket_id",
                (),
                {e.aggregate_id for e in events},
            )
        }
        for event in events:
            if event.name not in ("Linked", "SnapshotApplied"):
                continue
            link = (
                links.get(event.aggregate_id)
                or known.get(event.aggregate_id)
                or [event.aggregate_id, None, None]
            )
            if event.payload.get("incident_id"):
                link[1] = str(event.payload["incident_id"])
            made_sla = (event.payload.get("snapshot") or {}).get("made_sla")
            link[2] = None if made_sla is None else int(bool(made_sla))
            links[event.aggregate_id] = link
        if links:
            tx.executemany(
                "INSERT INTO kpi_source_links (ticket_id, incident_id, made_sla)"
                " VALUES (%s, %s, %s) ON CONFLICT (ticket_id) DO UPDATE SET"
                " incident_id = COALESCE(excluded.incident_id, kpi_source_links.incident_id),"
                " made_sla = excluded.made_sla",
                list(links.values()),
            )
