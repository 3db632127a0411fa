"""KPI read model, the write side: one fact row per incident and its state intervals.

`kpi_facts` holds what every KPI needs about one incident (when it was opened,
acknowledged, first resolved, closed; who owned it; how often it was reopened and
reassigned; the caller's satisfaction; the SLA verdict). `kpi_intervals` holds, per
incident, every stretch of time it spent in one state with one assignment group, so that
the backlog at any instant and the time spent in each state are exact. Aggregates are
computed at query time (projections/kpi/kpi_queries.py); definitions are in docs/kpis.md.

Event times are `occurred_at`: the time at the source for imported events. What the incident
is at each event (its fields, state, group, agent, counts and hold reason) is the incident
record's (projections/incident/incident_record.py); how a fact follows it is
projections/kpi/kpi_fact_fold.py's.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from typing import Any

import orjson

from projections.kpi.kpi_buckets import ReportingZone
from projections.kpi.kpi_build import whole_rows
from projections.kpi.kpi_cell_store import (
    AFTER_KEY,
    DDL,
    LONG_INTERVAL,
    NONE_COUNTED,
    TABLES,
    BuildKey,
    add_yearly_rollups,
    counted_upto,
    counts,
    hold_cells,
    meta,
    owed_upto,
    set_meta,
    write,
)
from projections.kpi.kpi_contributions import CellChanges
from projections.kpi.kpi_fact_fold import (
    FACT_COLUMNS,
    INTERVAL_COLUMNS,
    Fact,
    IntervalRow,
    Intervals,
    fold,
)
from projections.kpi.kpi_quantiles import refresh
from projections.kpi.kpi_views import (
    Extras,
    SlaFollower,
    among,
    load_facts,
    view_facts,
    views_after,
)
from projections.runtime.envelope import Envelope
from projections.runtime.projection import Projection
from projections.runtime.read_store import Transaction, rows_where_in, savepoint

log = logging.getLogger(__name__)
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
# A row of kpi_source_links: (ticket id, incident id, the source's SLA verdict made_sla).
Link = tuple[str, str | None, int | None]


def _column_type(name: str) -> str:
    if name in _INTEGER:
        return "INTEGER"
    return "DOUBLE PRECISION" if name.endswith("_s") else "TEXT"


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


def _save_intervals(tx: Transaction, intervals: list[IntervalRow]) -> None:
    if not intervals:
        return
    tx.executemany(
        f"INSERT INTO kpi_intervals ({', '.join(INTERVAL_COLUMNS)})"
        f" VALUES ({', '.join(['%s'] * len(INTERVAL_COLUMNS))})"
        " ON CONFLICT (incident_id, seq) DO UPDATE SET left_at = excluded.left_at,"
        " left_s = excluded.left_s",
        intervals,
    )


def _links(tx: Transaction, ticket_ids: set[str]) -> dict[str, Link]:
    rows = rows_where_in(
        tx,
        "SELECT ticket_id, incident_id, made_sla FROM kpi_source_links WHERE ticket_id",
        (),
        ticket_ids,
    )
    return {row[0]: (row[0], row[1], row[2]) for row in rows}


def _linked(link: Link, event: Envelope) -> Link:
    """The link after a snapshot of the ticket (Linked, SnapshotApplied)."""
    ticket_id, incident_id, _ = link
    if event.payload.get("incident_id"):
        incident_id = str(event.payload["incident_id"])
    made_sla = (event.payload.get("snapshot") or {}).get("made_sla")
    return ticket_id, incident_id, None if made_sla is None else int(bool(made_sla))


def _save_links(tx: Transaction, links: list[Link]) -> None:
    if not links:
        return
    tx.executemany(
        "INSERT INTO kpi_source_links (ticket_id, incident_id, made_sla)"
        " VALUES (%s, %s, %s) ON CONFLICT (ticket_id) DO UPDATE SET"
        " incident_id = COALESCE(excluded.incident_id, kpi_source_links.incident_id),"
        " made_sla = excluded.made_sla",
        links,
    )


_DDL = (
    f"CREATE TABLE IF NOT EXISTS kpi_facts"
    f" ({', '.join(f'{c} {_column_type(c)}' for c in FACT_COLUMNS)}, PRIMARY KEY (incident_id))",
    *(
        f"CREATE INDEX IF NOT EXISTS kpi_facts_{c} ON kpi_facts ({c})"
        for c in (
            "acknowledged_s",
            "closed_s",
            "cancelled_s",
            "external_ref",
        )
    ),
    # A rebuild counts the incidents in the order they were opened (kpi_cell_store.BuildKey).
    "CREATE INDEX IF NOT EXISTS kpi_facts_opened ON kpi_facts (opened_s, incident_id)",
    # A goal's figures read the facts resolved in a stretch (projections/kpi/kpi_scope.py):
    # with every column they read in the index, a million incidents' stretch is read in
    # order, not row by row from the table.
    "CREATE INDEX IF NOT EXISTS kpi_facts_resolved_reads ON kpi_facts (first_resolved_s,"
    " owner_group, service, category, priority, channel, opened_s, reopen_count,"
    " reassignments_at_resolution, reassignment_count, respond_breached, resolve_breached,"
    " incident_id)",
    """CREATE TABLE IF NOT EXISTS kpi_intervals (
                incident_id TEXT NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL,
                hold_reason TEXT, group_name TEXT, entered_at TEXT NOT NULL,
                entered_s DOUBLE PRECISION NOT NULL, left_at TEXT, left_s DOUBLE PRECISION,
                PRIMARY KEY (incident_id, seq))""",
    "CREATE INDEX IF NOT EXISTS kpi_intervals_entered ON kpi_intervals (entered_s)",
    # The intervals still open or longer than LONG_SECONDS: with those on entry, the ones
    # that overlap a stretch of time are two bounded reads (projections/kpi/kpi_scope.py).
    "CREATE INDEX IF NOT EXISTS kpi_intervals_long ON kpi_intervals (entered_s)"
    f" WHERE {LONG_INTERVAL}",
    # Tickets imported from another tool (SourceTicket events): their incident and the
    # source's own SLA verdict (`made_sla` of the latest applied snapshot).
    """CREATE TABLE IF NOT EXISTS kpi_source_links (
                ticket_id TEXT PRIMARY KEY, incident_id TEXT, made_sla INTEGER)""",
    "CREATE INDEX IF NOT EXISTS kpi_source_links_incident ON kpi_source_links (incident_id)",
    # The SLA read model's verdict on each incident's resolve clock (its state and business
    # time), as the KPI cells last counted it (projections/kpi/kpi_views.py).
    """CREATE TABLE IF NOT EXISTS kpi_sla_verdicts (
                incident_id TEXT PRIMARY KEY, state TEXT NOT NULL,
                elapsed_s DOUBLE PRECISION NOT NULL)""",
)
# Records after a batch from which a read model with no facts yet folds only its facts, and
# builds its cells once caught up: more than a batch behind, it is catching up.
BULK_BEHIND = 1000
# Incidents counted whole per step of the build: a step writes the weeks', months' and
# years' cells its incidents share once, so fewer, larger steps write fewer rows.
BUILD_CHUNK = 5000
BUILD_SECONDS = 1.0  # the idle work's steps of the build, at most about this long
# The zones the cells hold, as they were when the tables were made.
_ZONES = "INSERT INTO kpi_meta (name, value) VALUES ('zones', '{names}') ON CONFLICT DO NOTHING"


class KpiProjection(Projection):
    name = "kpis"
    tables = (
        "kpi_facts",
        "kpi_intervals",
        "kpi_source_links",
        "kpi_sla_verdicts",
        *TABLES,
    )
    aggregate_types = frozenset({"Incident", "SourceTicket"})
    schema_version = 6

    def __init__(self, zones: Sequence[str] = ("UTC",), sla_clocks: bool = False) -> None:
        """`zones`: the reporting zones the cells are kept in; `sla_clocks`: the SLA read
        model shares this database, and its resolve clocks give the SLA verdicts."""
        self.zones = tuple(ReportingZone(name) for name in dict.fromkeys(zones))
        self.sla = SlaFollower() if sla_clocks else None
        self.behind = 0  # records after the batch being folded (Projection.catching_up)
        # The zones are part of the shape: other zones replay the read model.
        names = ",".join(z.name for z in self.zones)
        if names != "UTC":
            self.schema_version = 6 + 10 * (zlib.crc32(names.encode()) % 10**8)  # type: ignore[misc]

    def ddl(self) -> list[str]:
        names = ",".join(z.name for z in self.zones)
        return [*_DDL, *DDL, _ZONES.format(names=names)]

    def migrate(self, tx: Transaction) -> None:
        add_yearly_rollups(tx, [zone.name for zone in self.zones])

    def apply(self, tx: Transaction, event: Envelope) -> None:
        self.apply_many(tx, [event])

    def catching_up(self, behind: int) -> None:
        self.behind = behind

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """Fold the events into the facts, and their changes into the cells of the incidents
        the cells count; build the cells of more of the others if any are left."""
        upto = self._counting(tx)  # first: it holds the cells (kpi_cell_store.hold_cells)
        changes = CellChanges(self.zones)
        incidents = [e for e in events if e.aggregate_type == "Incident"]
        tickets = [e for e in events if e.aggregate_type == "SourceTicket"]
        if incidents:
            self._apply_incidents(tx, incidents, changes, upto)
        if tickets:
            self._apply_tickets(tx, tickets, changes, upto)
        write(tx, changes.rows())
        self._follow_after_batch(tx)
        if upto is not None and self.behind < BULK_BEHIND:
            self._build(tx, upto)

    def _counting(self, tx: Transaction) -> BuildKey | None:
        """Up to which incident the cells count incidents (None: all of them). A read model
        with no facts yet that is far behind its feed (a rebuild from offset 0) counts none:
        folding its facts only, it keeps the facts-only read model's speed, and builds the
        cells once caught up, each incident's whole contribution at once."""
        upto = counted_upto(hold_cells(tx))
        if upto is not None or self.behind < BULK_BEHIND or _has_facts(tx):
            return upto
        set_meta(tx, "cells", owed_upto(NONE_COUNTED))
        return NONE_COUNTED

    def _build(self, tx: Transaction, upto: BuildKey) -> None:
        """The whole contributions of the next incidents not counted yet, in the order they
        were opened (the cells then count up to the last of them), or the end of the build."""
        views = views_after(tx, upto, BUILD_CHUNK)
        write(tx, whole_rows(self.zones, [view for _, view in views if view is not None]))
        last = views[-1][0] if views else upto
        done = tx.execute(_AFTER.format(what="1", limit=" LIMIT 1"), last).fetchone() is None
        set_meta(tx, "cells", "" if done else owed_upto(last))
        if done:
            log.info("kpis: every incident's cells counted: the read model is built")

    def owed(self, tx: Transaction) -> int:
        verdicts = 0 if self.sla is None else self.sla.owed(tx)
        upto = counted_upto(meta(tx, "cells") or "")
        if upto is None:
            return verdicts
        # Exact, so that it falls with every step: a caller waits while it falls.
        row = tx.execute(_AFTER.format(what="COUNT(*)", limit=""), upto).fetchone()
        return verdicts + max(1, int(row[0]))

    def idle(self, tx: Transaction) -> None:
        """Count the SLA read model's new verdicts; once caught up, count for about
        BUILD_SECONDS the incidents a rebuild has not counted yet; then, once none is left,
        recompute the quantiles whose bins changed (projections/kpi/kpi_views.py,
        kpi_quantiles.py): a build's steps would make most of them stale again."""
        self._follow(tx)
        if counted_upto(meta(tx, "cells") or "") is not None:
            if self.behind >= BULK_BEHIND:
                return
            started = time.monotonic()
            while (upto := counted_upto(hold_cells(tx))) is not None:
                self._build(tx, upto)
                if time.monotonic() - started > BUILD_SECONDS:
                    return
        refresh(tx)

    def _follow(self, tx: Transaction) -> None:
        if self.sla is None:
            return
        changes = CellChanges(self.zones)
        self.sla.follow(tx, changes)
        write(tx, changes.rows())

    def _follow_after_batch(self, tx: Transaction) -> None:
        """The verdicts the SLA read model recorded up to now, in the batch's transaction: a
        feed that gives it the events first leaves nothing to wait for. Its failure stays
        its own (the idle work tries again); the batch's events are not at fault. A database
        gone away fails the batch's next statement all the same."""
        try:
            with savepoint(tx):
                self._follow(tx)
        except Exception:
            log.exception("kpis: following the SLA verdicts failed; the idle work retries")

    def _apply_incidents(
        self,
        tx: Transaction,
        events: Sequence[Envelope],
        changes: CellChanges,
        upto: BuildKey | None,
    ) -> None:
        """Fold the events into the facts; the changes of the incidents the cells count,
        and the whole of those they count from now on (logged in this batch), into the cells."""
        ids = {e.aggregate_id for e in events}
        facts = load_facts(tx, ids)
        was = dict(facts)
        intervals: Intervals = {}
        for event in events:
            facts[event.aggregate_id] = fold(facts.get(event.aggregate_id), event, intervals)
        counted = {i for i in ids if counts(upto, facts.get(i))}  # opened_s never changes
        extras = Extras.load(tx, counted)  # as they were: this batch saves nothing before
        before = {i: extras.view(was.get(i)) for i in counted}
        extras.take(intervals)
        for incident_id in counted:
            after = extras.view(facts.get(incident_id))
            if after != before[incident_id]:  # a comment, say, changes no cell
                changes.incident(before[incident_id], after)
        _save_facts(tx, [fact for fact in facts.values() if fact is not None])
        _save_intervals(tx, list(intervals.values()))

    def _apply_tickets(
        self,
        tx: Transaction,
        events: Sequence[Envelope],
        changes: CellChanges,
        upto: BuildKey | None,
    ) -> None:
        """The incident each imported ticket opened, and the source's latest SLA verdict."""
        known = _links(tx, {e.aggregate_id for e in events})
        links: dict[str, Link] = {}
        for event in events:
            if event.name in ("Linked", "SnapshotApplied"):
                ticket_id = event.aggregate_id
                link = links.get(ticket_id) or known.get(ticket_id) or (ticket_id, None, None)
                links[ticket_id] = _linked(link, event)
        touched = {link[1] for link in (*known.values(), *links.values()) if link[1]}
        facts = view_facts(among(tx, touched))
        touched = {i for i in touched if counts(upto, facts.get(i))}  # others: counted later
        before = Extras.load(tx, touched, intervals=False)
        _save_links(tx, list(links.values()))
        after = Extras.load(tx, touched, intervals=False)
        for incident_id in touched:
            fact = facts.get(incident_id)
            changes.incident(before.view(fact), after.view(fact))


# The facts after an incident in a build's order (kpi_cell_store.BuildKey).
_AFTER = "SELECT {what} FROM kpi_facts WHERE " + AFTER_KEY + "{limit}"


def _has_facts(tx: Transaction) -> bool:
    return tx.execute("SELECT 1 FROM kpi_facts LIMIT 1").fetchone() is not None
