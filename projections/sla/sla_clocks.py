"""SLA clocks: a read model computed from events only (docs/sla.md has the rules).

Per ticket and metric ("respond", "resolve", "ola:<group>") one clock row: the policy id and
version it started with, its target, the business time elapsed and paused, the due time,
its state and, once decided, when it breached and by how much. Nothing here reads the wall
clock: every figure is a function of the events' `occurred_at`, so a replay gives the same
rows. Queries add the time since the last event (projections/sla/sla_queries.py).

What the ticket is at each event (priority, group, state, hold reason) is its incident
record, the one fold of the incident's events (projections/incident/incident_record.py);
the clocks react to how the record moved (projections/sla/sla_reactions.py), and each clock
moves by the steps of projections/sla/sla_clock.py.

The projection also learns the policies themselves from the `SlaPolicy.*` events of the
same feed and keeps every version (sla_policy_versions, projections/sla/sla_policy_book.py),
so it can pick the version in force when a clock starts.

The scheduler (application/sla/breach_scheduler.py) follows `seq`: each batch that touches
clocks takes the next number from sla_meta under the batch's write lock, so a reader that
remembers the highest seq it has seen misses no later change. `alarms` lists the warnings
and the breach still to record for a running clock, with the instant each falls due; `lag_s`
is how far the ticket's own time line ran behind this store when the clock last changed (that
event's recorded_at minus occurred_at: 0 for tickets worked here, years for imported history).

The scheduler's notices (SlaWarningReached, SlaBreached) are stamped with the moment they
were recorded, which for imported history can lie years after the ticket's own events, and
before events the import has not delivered yet. So a notice is only a marker of the due
moment it names: it strikes that alarm off and moves nothing else. Elapsed time, the due
time, a breach and its moment follow from the ticket's own events alone, so history
imported with the scheduler running gives the same clocks as without it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from domain.shared_kernel.business_calendar import BusinessCalendar
from projections.runtime.envelope import Envelope
from projections.runtime.projection import Projection
from projections.runtime.read_store import Row, Transaction, rows_where_in
from projections.sla.sla_clock import CLOCK_COLUMNS, Clock, Clockwork, TicketClocks
from projections.sla.sla_policy_book import PolicyBook, draft_book, store_versions, stored_book
from projections.sla.sla_reactions import NOTICES, Ticket, fold_ticket

# Where the application, the benchmarks and the tests import them from.
__all__ = ["CLOCK_COLUMNS", "SlaClocksProjection"]

ClockKey = tuple[str, str]  # (ticket id, metric)

_DDL = (
    """CREATE TABLE IF NOT EXISTS sla_policy_versions (
                policy_id TEXT NOT NULL, version INTEGER NOT NULL, effective_from TEXT NOT NULL,
                created_at TEXT NOT NULL, name TEXT NOT NULL, rank INTEGER NOT NULL,
                active BOOLEAN NOT NULL, spec TEXT NOT NULL, actor_id TEXT NOT NULL,
                causation_id TEXT NOT NULL, PRIMARY KEY (policy_id, version))""",
    """CREATE TABLE IF NOT EXISTS sla_tickets (
                ticket_id TEXT PRIMARY KEY, state TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sla_clocks (
                ticket_id TEXT NOT NULL, metric TEXT NOT NULL, number TEXT, policy_id TEXT NOT NULL,
                policy_version INTEGER NOT NULL, priority TEXT, group_name TEXT,
                target_s DOUBLE PRECISION NOT NULL, started_at TEXT NOT NULL, since TEXT NOT NULL,
                elapsed_s DOUBLE PRECISION NOT NULL, paused_s DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL, state TEXT NOT NULL, due_at TEXT, breached_at TEXT,
                overrun_s DOUBLE PRECISION NOT NULL, stopped_at TEXT, decided_at TEXT,
                warnings TEXT NOT NULL, breach_recorded BOOLEAN NOT NULL, alarms TEXT,
                lag_s DOUBLE PRECISION NOT NULL, seq BIGINT NOT NULL,
                PRIMARY KEY (ticket_id, metric))""",
    "CREATE INDEX IF NOT EXISTS sla_clocks_seq ON sla_clocks (seq)",
    "CREATE INDEX IF NOT EXISTS sla_clocks_due ON sla_clocks (status, due_at)",
    "CREATE INDEX IF NOT EXISTS sla_clocks_breached ON sla_clocks (breached_at)",
    "CREATE INDEX IF NOT EXISTS sla_clocks_decided ON sla_clocks (decided_at)",
    """CREATE TABLE IF NOT EXISTS sla_meta (
                name TEXT PRIMARY KEY, value BIGINT NOT NULL)""",
)


class SlaClocksProjection(Projection):
    name = "sla_clocks"
    tables = ("sla_clocks", "sla_tickets", "sla_policy_versions", "sla_meta")
    aggregate_types = frozenset({"SlaPolicy", "Incident"})
    schema_version = 3

    def __init__(self, draft: Mapping[str, Any] | None = None) -> None:
        """`draft`: a simulation. Only this (normalised) spec applies, in force for all
        time; the live policies and the recorded SLA events are ignored."""
        self.draft = dict(draft) if draft is not None else None
        self._calendars: dict[tuple[str, int], BusinessCalendar] = {}
        self.clock_writes = 0  # clock rows written, for bench/sla.py

    def ddl(self) -> list[str]:
        return list(_DDL)

    def apply(self, tx: Transaction, event: Envelope) -> None:
        self.apply_many(tx, [event])

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """One read and one write per ticket and clock touched by the batch."""
        policy_events = [e for e in events if e.aggregate_type == "SlaPolicy"]
        incident_events = [e for e in events if e.aggregate_type == "Incident"]
        if self.draft is None and policy_events:
            store_versions(tx, policy_events)
        if incident_events:
            self._apply_incidents(tx, incident_events)

    def _apply_incidents(self, tx: Transaction, events: list[Envelope]) -> None:
        work = Clockwork(self._book(tx), self._calendars, simulation=self.draft is not None)
        ids = {e.aggregate_id for e in events}
        batch = _Batch(_tickets(tx, ids), _clocks(tx, ids))
        for event in events:
            batch.fold(work, event)
        _save_tickets(tx, {i: batch.tickets[i] for i in batch.touched_tickets})
        if batch.touched_clocks:
            self._save_clocks(tx, batch.changed_clocks())

    def _book(self, tx: Transaction) -> PolicyBook:
        return stored_book(tx) if self.draft is None else draft_book(self.draft)

    def _save_clocks(self, tx: Transaction, changed: list[Clock]) -> None:
        """Write the clocks the batch changed, each numbered with the batch's `seq`."""
        seq = _next_seq(tx)
        for clock in changed:
            clock["seq"] = seq
        self.clock_writes += len(changed)
        updates = ", ".join(f"{c} = excluded.{c}" for c in CLOCK_COLUMNS[2:])
        tx.executemany(
            f"INSERT INTO sla_clocks ({', '.join(CLOCK_COLUMNS)})"
            f" VALUES ({', '.join(['%s'] * len(CLOCK_COLUMNS))})"
            f" ON CONFLICT (ticket_id, metric) DO UPDATE SET {updates}",
            [_clock_row(clock) for clock in changed],
        )


@dataclass
class _Batch:
    """The tickets and clocks of one batch's incidents, and those its events changed."""

    tickets: dict[str, Ticket]
    clocks: dict[str, TicketClocks]
    touched_tickets: set[str] = field(default_factory=set)
    touched_clocks: set[ClockKey] = field(default_factory=set)

    def fold(self, work: Clockwork, event: Envelope) -> None:
        ticket_id = event.aggregate_id
        ticket_clocks = self.clocks.setdefault(ticket_id, {})
        ticket = fold_ticket(work, self.tickets.get(ticket_id), ticket_clocks, event)
        if ticket is None:
            return
        self.tickets[ticket_id] = ticket
        self.touched_tickets.add(ticket_id)
        self.touched_clocks.update((ticket_id, c["metric"]) for c in _changed(ticket_clocks, event))

    def changed_clocks(self) -> list[Clock]:
        """The clocks the batch changed, in (ticket id, metric) order."""
        return [self.clocks[ticket_id][metric] for ticket_id, metric in sorted(self.touched_clocks)]


def _tickets(tx: Transaction, ticket_ids: set[str]) -> dict[str, Ticket]:
    rows = rows_where_in(
        tx, "SELECT ticket_id, state FROM sla_tickets WHERE ticket_id", (), ticket_ids
    )
    return {ticket_id: cast(Ticket, orjson.loads(state)) for ticket_id, state in rows}


def _save_tickets(tx: Transaction, tickets: dict[str, Ticket]) -> None:
    if tickets:
        tx.executemany(
            "INSERT INTO sla_tickets (ticket_id, state) VALUES (%s, %s)"
            " ON CONFLICT (ticket_id) DO UPDATE SET state = excluded.state",
            [(i, orjson.dumps(ticket).decode()) for i, ticket in tickets.items()],
        )


def _clocks(tx: Transaction, ticket_ids: set[str]) -> dict[str, TicketClocks]:
    """The stored clocks of the tickets, by ticket id and metric."""
    clocks: dict[str, TicketClocks] = {}
    for row in rows_where_in(
        tx, f"SELECT {', '.join(CLOCK_COLUMNS)} FROM sla_clocks WHERE ticket_id", (), ticket_ids
    ):
        clock = _clock(row)
        clocks.setdefault(clock["ticket_id"], {})[clock["metric"]] = clock
    return clocks


def _clock(row: Row) -> Clock:
    clock = dict(zip(CLOCK_COLUMNS, row, strict=True))
    clock["warnings"] = orjson.loads(clock["warnings"])
    return cast(Clock, clock)


def _clock_row(clock: Mapping[str, object]) -> list[object]:
    return [orjson.dumps(clock[c]).decode() if c == "warnings" else clock[c] for c in CLOCK_COLUMNS]


def _changed(clocks: TicketClocks, event: Envelope) -> list[Clock]:
    """The clocks the event changed; their lag is the event's, unless it is a notice: a
    notice is not a moment of the ticket's time line."""
    changed = [c for c in clocks.values() if c.pop("_dirty", False)]
    if event.name not in NOTICES:
        for clock in changed:
            clock["lag_s"] = _lag(event)
    return changed


def _lag(event: Envelope) -> float:
    """How far the ticket's time line runs behind this store, as of this event."""
    if event.recorded_at is None:  # published before envelopes carried it: take it as live
        return 0.0
    return max(0.0, (event.recorded_at - event.occurred_at).total_seconds())


def _next_seq(tx: Transaction) -> int:
    # When the numbering began: a reader that follows `seq` sees a rebuild number anew.
    tx.execute(
        "INSERT INTO sla_meta (name, value) VALUES ('created', %s) ON CONFLICT (name) DO NOTHING",
        [time.time_ns() // 1000],
    )
    # The upsert takes the row lock, so batches number (and commit) one after another.
    row = tx.execute(
        "INSERT INTO sla_meta (name, value) VALUES ('seq', 1) ON CONFLICT (name)"
        " DO UPDATE SET value = sla_meta.value + 1 RETURNING value"
    ).fetchone()
    return int(row[0])
