"""KPI read model, the write side: one fact row per incident and its state intervals.

`kpi_facts` holds what every KPI needs about one incident (when it was opened,
acknowledged, first resolved, closed; who owned it; how often it was reopened and
reassigned; the caller's satisfaction; the SLA verdict). `kpi_intervals` holds, per
incident, every stretch of time it spent in one state with one assignment group, so that
the backlog at any instant and the time spent in each state are exact. Aggregates are
computed at query time (projections/kpi/kpi_queries.py); definitions are in docs/kpis.md.

Times are kept twice: fixed-width UTC text (readable, sortable) and epoch seconds (durations
and period arithmetic in portable SQL). Event times are `occurred_at`: the time at the
source for imported events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
)
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
OPEN_STATES = ("new", "in_progress", "on_hold")
Fact = dict[str, Any]


def _column_type(name: str) -> str:
    if name in _INTEGER:
        return "INTEGER"
    return "DOUBLE PRECISION" if name.endswith("_s") else "TEXT"


def _open_interval(
    fact: Fact,
    state: str | None,
    group: str | None,
    hold_reason: str | None,
    at: str,
    seconds: float,
    intervals: dict,
) -> None:
    """Close the open interval (if any) at `at` and open one in `state` (None: terminal)."""
    seq = fact["interval_seq"]
    if fact["interval_state"] is not None:
        intervals[(fact["incident_id"], seq)] = (
            fact["incident_id"],
            seq,
            fact["interval_state"],
            fact["interval_hold_reason"],
            fact["interval_group"],
            fact["interval_entered_at"],
            fact["interval_entered_s"],
            at,
            seconds,
        )
    if state is None:
        fact.update(
            interval_state=None,
            interval_hold_reason=None,
            interval_group=None,
            interval_entered_at=None,
            interval_entered_s=None,
        )
        return
    fact.update(
        interval_seq=seq + 1,
        interval_state=state,
        interval_hold_reason=hold_reason,
        interval_group=group,
        interval_entered_at=at,
        interval_entered_s=seconds,
    )
    intervals[(fact["incident_id"], seq + 1)] = (
        fact["incident_id"],
        seq + 1,
        state,
        hold_reason,
        group,
        at,
        seconds,
        None,
        None,
    )


def _change(
    fact: Fact,
    intervals: dict,
    at: str,
    seconds: float,
    *,
    state: str | None = "",
    hold_reason: str | None = None,
) -> None:
    """A new state (or "" to keep it) and/or a new group: a new interval when either moved."""
    new_state = fact["state"] if state == "" else state
    fact["state"] = new_state
    terminal = new_state not in (*OPEN_STATES, "resolved")
    key = None if terminal else (new_state, fact["current_group"], hold_reason)
    old = (
        None
        if fact["interval_state"] is None
        else (fact["interval_state"], fact["interval_group"], fact["interval_hold_reason"])
    )
    if key != old:
        _open_interval(
            fact,
            None if terminal else new_state,
            fact["current_group"],
            hold_reason,
            at,
            seconds,
            intervals,
        )


def _assign(fact: Fact, group: str | None, agent: str | None) -> None:
    if group is not None and group != fact["current_group"]:
        fact["first_group"] = fact["first_group"] or group
        fact["current_group"] = group
    fact["current_agent"] = agent


def fold(fact: Fact | None, event: Envelope, intervals: dict) -> Fact | None:
    """The fact row after one incident event; new or changed intervals go to `intervals`.

    Returns None for an event of an incident whose Logged event was never seen.
    """
    name, p = event.name, event.payload
    at, seconds = iso(event.occurred_at), event.occurred_at.timestamp()
    if name == "Logged":
        fact = dict.fromkeys(FACT_COLUMNS)
        fact.update(
            {
                k: p.get(k)
                for k in (
                    "number",
                    "external_ref",
                    "source",
                    "category",
                    "subcategory",
                    "service",
                    "priority",
                    "channel",
                )
            }
        )
        fact.update(
            incident_id=event.aggregate_id,
            state="new",
            major=0,
            opened_at=at,
            opened_s=seconds,
            resolutions=0,
            reopen_count=0,
            reassignment_count=0,
            respond_breached=0,
            resolve_breached=0,
            interval_seq=0,
        )
        _open_interval(fact, "new", None, None, at, seconds, intervals)
    elif fact is None:
        return None
    elif name == "Assigned":
        fact["reassignment_count"] += int(bool(p.get("reassignment")))
        _assign(fact, p.get("group"), p.get("agent"))
        _change(fact, intervals, at, seconds, hold_reason=fact["interval_hold_reason"])
    elif name == "Escalated":
        if p.get("kind") == "hierarchical":
            fact["major"] = 1
        elif p.get("group") and p["group"] != fact["current_group"]:
            fact["reassignment_count"] += int(fact["current_group"] is not None)
            _assign(fact, p["group"], None)
            _change(fact, intervals, at, seconds, hold_reason=fact["interval_hold_reason"])
    elif name == "Acknowledged":
        if fact["acknowledged_s"] is None:
            fact.update(acknowledged_at=at, acknowledged_s=seconds)
        _change(fact, intervals, at, seconds, state="in_progress")
    elif name == "PutOnHold":
        _change(fact, intervals, at, seconds, state="on_hold", hold_reason=p.get("reason"))
    elif name in ("Resumed", "Reopened"):
        fact["reopen_count"] += int(name == "Reopened")
        fact["resolved_at"] = None
        _change(fact, intervals, at, seconds, state="in_progress")
    elif name == "Resolved":
        if fact["first_resolved_s"] is None:
            fact.update(
                first_resolved_at=at,
                first_resolved_s=seconds,
                resolution_group=fact["current_group"],
                resolution_agent=fact["current_agent"],
                resolved_by=event.actor["id"],
                reassignments_at_resolution=fact["reassignment_count"],
            )
        fact["resolved_at"] = at
        fact["resolutions"] += 1
        _change(fact, intervals, at, seconds, state="resolved")
    elif name == "Closed":
        fact.update(closed_at=at, closed_s=seconds, satisfaction=p.get("satisfaction"))
        _change(fact, intervals, at, seconds, state="closed")
    elif name == "Cancelled":
        fact.update(cancelled_at=at, cancelled_s=seconds)
        _change(fact, intervals, at, seconds, state="cancelled")
    elif name == "Reprioritised":
        fact["priority"] = p.get("priority")
    elif name == "Recategorised":
        fact.update(
            category=p.get("category"), subcategory=p.get("subcategory"), service=p.get("service")
        )
    elif name == "SlaBreached":
        if p.get("metric") in ("respond", "resolve"):
            fact[f"{p['metric']}_breached"] = 1
    fact["owner_group"] = fact["resolution_group"] or fact["current_group"]
    fact["owner_agent"] = fact["resolution_agent"] or fact["current_agent"]
    return fact


class KpiProjection(Projection):
    name = "kpis"
    tables = ("kpi_facts", "kpi_intervals", "kpi_source_links")
    aggregate_types = frozenset({"Incident", "SourceTicket"})
    schema_version = 1

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
        facts: dict[str, Fact | None] = {
            row[0]: dict(zip(FACT_COLUMNS, row, strict=True))
            for row in rows_where_in(
                tx,
                f"SELECT {', '.join(FACT_COLUMNS)} FROM kpi_facts WHERE incident_id",
                (),
                {e.aggregate_id for e in events},
            )
        }
        intervals: dict[tuple[str, int], tuple] = {}
        for event in events:
            facts[event.aggregate_id] = fold(facts.get(event.aggregate_id), event, intervals)
        rows = [[fact[c] for c in FACT_COLUMNS] for fact in facts.values() if fact is not None]
        if rows:
            updates = ", ".join(f"{c} = excluded.{c}" for c in FACT_COLUMNS[1:])
            tx.executemany(
                f"INSERT INTO kpi_facts ({', '.join(FACT_COLUMNS)})"
                f" VALUES ({', '.join(['%s'] * len(FACT_COLUMNS))})"
                f" ON CONFLICT (incident_id) DO UPDATE SET {updates}",
                rows,
            )
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
