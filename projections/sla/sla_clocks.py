"""SLA clocks: a read model computed from events only (docs/sla.md has the rules).

Per ticket and metric ("respond", "resolve", "ola:<group>") one clock row: the policy id and
version it started with, its target, the business time elapsed and paused, the due time,
its state and, once decided, when it breached and by how much. Nothing here reads the wall
clock: every figure is a function of the events' `occurred_at`, so a replay gives the same
rows. Queries add the time since the last event (projections/sla/sla_queries.py).

What the ticket is at each event (priority, group, state, hold reason) is its incident
record, the one fold of the incident's events (projections/incident/incident_record.py);
the clocks react to how the record moved.

The projection also learns the policies themselves from the `SlaPolicy.*` events of the
same feed and keeps every version (sla_policy_versions), so it can pick the version in
force when a clock starts.

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

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from domain.incident.lifecycle import OPEN_STATES
from domain.shared_kernel.business_calendar import BusinessCalendar
from domain.sla.sla_policy import calendar_of, choose, pause_reasons, target
from projections.incident import incident_record
from projections.incident.incident_record import Record, entered
from projections.runtime.envelope import Envelope
from projections.runtime.read_store import Transaction
from projections.runtime.runner import Projection, rows_where_in
from projections.runtime.time_text import iso

CLOCK_COLUMNS = (
    "ticket_id",
    "metric",
    "number",
    "policy_id",
    "policy_version",
    "priority",
    "group_name",
    "target_s",
    "started_at",
    "since",
    "elapsed_s",
    "paused_s",
    "status",
    "state",
    "due_at",
    "breached_at",
    "overrun_s",
    "stopped_at",
    "decided_at",
    "warnings",
    "breach_recorded",
    "alarms",
    "lag_s",
    "seq",
)
VERSION_COLUMNS = (
    "policy_id",
    "version",
    "effective_from",
    "created_at",
    "name",
    "rank",
    "active",
    "spec",
    "actor_id",
    "causation_id",
)
# Where the draft of a simulation is in force: from the beginning of time.
EPOCH = "0001-01-01T00:00:00.000000Z"
DRAFT_ID = "draft"
NOTICES = frozenset({"SlaWarningReached", "SlaBreached"})

Clock = dict[str, Any]
# What the clocks keep of a ticket: its incident record (the one fold of the incident's
# events, projections/incident/incident_record.py) and the policy its clocks started with.
Ticket = dict[str, Any]


def parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _secs(delta: timedelta) -> float:
    return delta.total_seconds()


class PolicyBook:
    """Every known version of every policy, for choosing one and reading its rules."""

    def __init__(self, rows: Sequence[Mapping[str, Any]] = ()) -> None:
        self.versions: dict[str, list[dict]] = {}
        for row in rows:
            self.add(dict(row))

    def add(self, row: dict) -> None:
        if isinstance(row.get("spec"), (str, bytes)):
            row["spec"] = orjson.loads(row["spec"])
        versions = self.versions.setdefault(row["policy_id"], [])
        versions[:] = [v for v in versions if v["version"] != row["version"]] + [row]
        versions.sort(key=lambda v: v["version"])

    def spec(self, policy_id: str, version: int) -> dict | None:
        for row in self.versions.get(policy_id, ()):
            if row["version"] == version:
                return row["spec"]
        return None

    def in_force(self, policy_id: str, at: str) -> dict | None:
        """The version in force at `at`: the latest one effective by then.

        A moment before the policy's first version (an imported ticket whose source time
        predates the policy) gets the first version.
        """
        versions = self.versions.get(policy_id) or []
        current = None
        for row in versions:
            if row["effective_from"] <= at:
                current = row
        return current or (versions[0] if versions else None)

    def choose(self, ticket: Mapping[str, Any], at: str) -> dict | None:
        """The version (row) of the policy that applies to a ticket starting at `at`."""
        rows = {pid: self.in_force(pid, at) for pid in self.versions}
        chosen = choose(
            (
                (pid, self.versions[pid][0]["created_at"], row["spec"])
                for pid, row in rows.items()
                if row
            ),
            ticket,
        )
        return rows[chosen] if chosen else None


class SlaClocksProjection(Projection):
    name = "sla_clocks"
    tables = ("sla_clocks", "sla_tickets", "sla_policy_versions", "sla_meta")
    aggregate_types = frozenset({"SlaPolicy", "Incident"})
    schema_version = 3  # 3: sla_tickets keep the incident record

    _current_book: PolicyBook

    def __init__(self, draft: Mapping[str, Any] | None = None) -> None:
        """`draft`: a simulation. Only this (normalised) spec applies, in force for all
        time; the live policies and the recorded SLA events are ignored."""
        self.draft = dict(draft) if draft is not None else None
        self._calendars: dict[tuple[str, int], BusinessCalendar] = {}
        self.clock_writes = 0  # clock rows written, for bench/sla.py

    def ddl(self) -> list[str]:
        return [
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
        ]

    # -- feeding ----------------------------------------------------------------

    def apply(self, tx: Transaction, event: Envelope) -> None:
        self.apply_many(tx, [event])

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """One read and one write per ticket and clock touched by the batch."""
        policy_events = [e for e in events if e.aggregate_type == "SlaPolicy"]
        incident_events = [e for e in events if e.aggregate_type == "Incident"]
        if self.draft is None and policy_events:
            self._store_versions(tx, policy_events)
        if not incident_events:
            return
        book = self._current_book = self._book(tx)
        ids = {e.aggregate_id for e in incident_events}
        tickets = {
            i: orjson.loads(s)
            for i, s in rows_where_in(
                tx, "SELECT ticket_id, state FROM sla_tickets WHERE ticket_id", (), ids
            )
        }
        clocks: dict[str, dict[str, Clock]] = {}
        for row in rows_where_in(
            tx, f"SELECT {', '.join(CLOCK_COLUMNS)} FROM sla_clocks WHERE ticket_id", (), ids
        ):
            clock = dict(zip(CLOCK_COLUMNS, row, strict=True))
            clock["warnings"] = orjson.loads(clock["warnings"])
            clocks.setdefault(clock["ticket_id"], {})[clock["metric"]] = clock
        touched_tickets, touched_clocks = set(), set()
        for event in incident_events:
            ticket_clocks = clocks.setdefault(event.aggregate_id, {})
            ticket = self._fold(book, tickets.get(event.aggregate_id), ticket_clocks, event)
            if ticket is None:
                continue
            tickets[event.aggregate_id] = ticket
            touched_tickets.add(event.aggregate_id)
            changed = [c for c in ticket_clocks.values() if c.pop("_dirty", False)]
            if event.name not in NOTICES:  # a notice is not a moment of the ticket's time line
                for clock in changed:
                    clock["lag_s"] = _lag(event)
            touched_clocks.update((event.aggregate_id, c["metric"]) for c in changed)
        if touched_tickets:
            tx.executemany(
                "INSERT INTO sla_tickets (ticket_id, state) VALUES (%s, %s)"
                " ON CONFLICT (ticket_id) DO UPDATE SET state = excluded.state",
                [(i, orjson.dumps(tickets[i]).decode()) for i in touched_tickets],
            )
        if touched_clocks:
            seq = self._next_seq(tx)
            updates = ", ".join(f"{c} = excluded.{c}" for c in CLOCK_COLUMNS[2:])
            rows = []
            for ticket_id, metric in sorted(touched_clocks):
                clock = clocks[ticket_id][metric]
                clock["seq"] = seq
                rows.append(
                    [
                        orjson.dumps(clock[c]).decode() if c == "warnings" else clock[c]
                        for c in CLOCK_COLUMNS
                    ]
                )
            self.clock_writes += len(rows)
            tx.executemany(
                f"INSERT INTO sla_clocks ({', '.join(CLOCK_COLUMNS)})"
                f" VALUES ({', '.join(['%s'] * len(CLOCK_COLUMNS))})"
                f" ON CONFLICT (ticket_id, metric) DO UPDATE SET {updates}",
                rows,
            )

    def _store_versions(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        rows = []
        for event in events:
            if event.name not in ("Created", "Revised") or "spec" not in event.payload:
                continue
            spec = event.payload["spec"]
            created = iso(event.occurred_at) if event.name == "Created" else None
            rows.append(
                [
                    event.aggregate_id,
                    event.aggregate_version,
                    iso(event.occurred_at),
                    created,
                    spec["name"],
                    int(spec.get("rank", 0)),
                    bool(spec.get("active", True)),
                    orjson.dumps(spec).decode(),
                    event.actor["id"],
                    event.causation_id,
                ]
            )
        for row in rows:
            if row[3] is None:  # created_at of a revision: that of the policy's first version
                first = tx.execute(
                    "SELECT created_at FROM sla_policy_versions WHERE policy_id"
                    " = %s AND version = 1",
                    (row[0],),
                ).fetchone()
                row[3] = first[0] if first else row[2]
            tx.execute(
                f"INSERT INTO sla_policy_versions ({', '.join(VERSION_COLUMNS)})"
                f" VALUES ({', '.join(['%s'] * len(VERSION_COLUMNS))}) ON CONFLICT DO NOTHING",
                row,
            )

    def _book(self, tx: Transaction) -> PolicyBook:
        if self.draft is not None:
            return PolicyBook(
                [
                    {
                        "policy_id": DRAFT_ID,
                        "version": 1,
                        "effective_from": EPOCH,
                        "created_at": EPOCH,
                        "spec": self.draft,
                    }
                ]
            )
        return PolicyBook(
            [
                dict(zip(VERSION_COLUMNS, r, strict=True))
                for r in tx.execute(
                    f"SELECT {', '.join(VERSION_COLUMNS)} FROM sla_policy_versions"
                ).fetchall()
            ]
        )

    def _next_seq(self, tx: Transaction) -> int:
        # The upsert takes the row lock, so batches number (and commit) one after another.
        row = tx.execute(
            "INSERT INTO sla_meta (name, value) VALUES ('seq', 1) ON CONFLICT (name)"
            " DO UPDATE SET value = sla_meta.value + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    # -- one event ------------------------------------------------------------------

    def _fold(
        self, book: PolicyBook, ticket: Ticket | None, clocks: dict[str, Clock], event: Envelope
    ) -> Ticket | None:
        """The ticket after one of its incident's events; None for an incident logged
        before this read model existed (it has no clocks)."""
        before = ticket["record"] if ticket else None
        record = incident_record.fold(before, event)
        if not incident_record.was_logged(record):
            return None
        ticket = {"record": record, "policy_id": ticket["policy_id"] if ticket else None}
        at = event.occurred_at.astimezone(timezone.utc)
        if before is None:
            self._open(book, ticket, clocks, at)
        else:
            self._follow(book, before, ticket, clocks, at)
        if event.name in NOTICES and self.draft is None:
            self._notice(book, clocks, event)
        return ticket

    def _open(self, book: PolicyBook, ticket: Ticket, clocks: dict[str, Clock], at: datetime):
        """A new incident: the respond and resolve clocks of the policy that applies."""
        chosen = book.choose(_conditions(ticket["record"]), iso(at))
        if chosen is None:
            return
        ticket["policy_id"] = chosen["policy_id"]
        for metric in ("respond", "resolve"):
            self._start(book, ticket["record"], clocks, metric, at, chosen)

    def _follow(
        self, book: PolicyBook, before: Record, ticket: Ticket, clocks: dict, at: datetime
    ) -> None:
        """What the incident's move means for its clocks: the first reaction that fits
        (each event moves the record in one of these ways at most)."""
        for moved, react in self._reactions():
            if moved(before, ticket["record"]):
                react(book, before, ticket, clocks, at)
                return

    def _reactions(self) -> tuple:
        return (
            (_moved_group, self._regroup),
            (_was_acknowledged, self._responded),
            (lambda b, a: entered(b, a, "on_hold"), self._held),
            (_came_off_hold, self._resumed),
            (lambda b, a: entered(b, a, "resolved"), self._resolved),
            (_was_reopened, self._reopened),
            (lambda b, a: entered(b, a, "cancelled"), self._cancelled),
            (_was_reprioritised, self._reprioritised),
        )

    def _regroup(self, book, before: Record, ticket: Ticket, clocks: dict, at: datetime) -> None:
        """The group that had the ticket stops its OLA clock; the new one starts or resumes."""
        old = clocks.get(f"ola:{before['assignment_group']}")
        if old is not None and old["status"] != "stopped":
            self._stop(old, at)
        record = ticket["record"]
        for clock in _running(clocks):  # respond and resolve report the group holding it
            if not clock["metric"].startswith("ola:"):
                clock["group_name"], clock["_dirty"] = record["assignment_group"], True
        if record["assignment_group"] is not None and record["state"] in OPEN_STATES:
            self._follow_ola(book, ticket, clocks, at)

    def _follow_ola(self, book: PolicyBook, ticket: Ticket, clocks: dict, at: datetime) -> None:
        metric = f"ola:{ticket['record']['assignment_group']}"
        if metric in clocks:
            if clocks[metric]["state"] != "cancelled":
                self._resume(book, clocks[metric], at)
            return
        version = ticket["policy_id"] and book.in_force(ticket["policy_id"], iso(at))
        if version:
            self._start(book, ticket["record"], clocks, metric, at, version)

    def _responded(self, book, before: Record, ticket: Ticket, clocks: dict, at: datetime):
        if "respond" in clocks and clocks["respond"]["status"] != "stopped":
            self._stop(clocks["respond"], at)

    def _held(self, book, before: Record, ticket: Ticket, clocks: dict, at: datetime) -> None:
        """Clocks whose policy pauses for this hold reason stop counting."""
        reason = ticket["record"]["hold_reason"]
        for clock in _running(clocks):
            if clock["status"] == "running" and reason in pause_reasons(
                self._spec(book, clock), clock["metric"]
            ):
                self._account(clock, at)
                clock["status"] = "paused"
                self._refresh(book, clock)

    def _resumed(self, book, before: Record, ticket: Ticket, clocks: dict, at: datetime) -> None:
        self._unpause(book, _running(clocks), at)

    def _resolved(self, book, before: Record, ticket: Ticket, clocks: dict, at: datetime):
        for clock in _running(clocks):  # the resolution is also the (first) response
            self._stop(clock, at)

    def _reopened(self, book, before: Record, ticket: Ticket, clocks: dict, at: datetime):
        """The resolve clock and the current group's OLA run on from where they stopped."""
        for metric in ("resolve", f"ola:{ticket['record']['assignment_group']}"):
            clock = clocks.get(metric)
            if clock is not None and clock["status"] == "stopped" and clock["state"] != "cancelled":
                self._resume(book, clock, at)

    def _cancelled(self, book, before: Record, ticket: Ticket, clocks: dict, at: datetime):
        for clock in _running(clocks):
            self._stop(clock, at, cancelled=True)

    def _reprioritised(self, book, before: Record, ticket: Ticket, clocks: dict, at: datetime):
        for clock in _running(clocks):
            self._retarget(book, clock, ticket["record"]["priority"], at)

    def _notice(self, book: PolicyBook, clocks: dict[str, Clock], event: Envelope) -> None:
        clock = clocks.get(event.payload.get("metric"))
        if clock is not None:
            self._strike(book, clock, event.name, event.payload)

    # -- clock steps ------------------------------------------------------------------

    def _strike(self, book: PolicyBook, clock: Clock, name: str, notice: Mapping[str, Any]) -> None:
        """Strike the notice's alarm off, and nothing else.

        Its occurred_at is when it was recorded, not a moment of the ticket's time line, so
        it must not be accounted: that would move `since` past the ticket's later events.
        Nor does it say the clock breached: a breach notice can be recorded while an import
        has yet to deliver the resolution that came before the due moment.
        """
        if name == "SlaWarningReached":
            clock["warnings"] = sorted({*clock["warnings"], notice["threshold"]})
        else:
            clock["breach_recorded"] = True
        self._set_alarms(book, clock)

    def _spec(self, book: PolicyBook, clock: Clock) -> dict:
        spec = book.spec(clock["policy_id"], clock["policy_version"])
        if spec is None:
            raise LookupError(f"policy {clock['policy_id']} v{clock['policy_version']} unknown")
        return spec

    def _calendar(self, book: PolicyBook, clock: Clock) -> BusinessCalendar:
        key = (clock["policy_id"], clock["policy_version"])
        if key not in self._calendars:
            self._calendars[key] = calendar_of(self._spec(book, clock))
        return self._calendars[key]

    def _start(
        self,
        book: PolicyBook,
        record: Record,
        clocks: dict[str, Clock],
        metric: str,
        at: datetime,
        version: dict,
    ) -> None:
        seconds = target(version["spec"], metric, record["priority"])
        if seconds is None:
            return
        moment = iso(at)
        clock = {
            "ticket_id": record["id"],
            "metric": metric,
            "number": record["number"],
            "policy_id": version["policy_id"],
            "policy_version": version["version"],
            "priority": record["priority"],
            "group_name": metric[4:] if metric.startswith("ola:") else record["assignment_group"],
            "target_s": float(seconds),
            "started_at": moment,
            "since": moment,
            "elapsed_s": 0.0,
            "paused_s": 0.0,
            "status": "running",
            "state": "running",
            "due_at": None,
            "breached_at": None,
            "overrun_s": 0.0,
            "stopped_at": None,
            "decided_at": None,
            "warnings": [],
            "breach_recorded": False,
            "alarms": None,
            "lag_s": 0.0,
            "seq": 0,
        }
        clocks[metric] = clock
        if record["hold_reason"] in pause_reasons(version["spec"], metric):
            clock["status"] = "paused"
        self._refresh(book, clock)

    def _account(self, clock: Clock, at: datetime) -> None:
        """Count the time from `since` to `at` as elapsed (running) or paused."""
        since = parse(clock["since"])
        if at <= since or clock["status"] == "stopped":
            return
        calendar = self._calendar(self._current_book, clock)
        if clock["status"] == "running":
            left = clock["target_s"] - clock["elapsed_s"]
            run = _secs(calendar.measure(since, at))
            if clock["breached_at"] is None and run > left:
                # The moment the elapsed time reached the target: a fact of the past events.
                clock["breached_at"] = iso(calendar.add(since, timedelta(seconds=max(left, 0))))
            clock["elapsed_s"] += run
        else:
            clock["paused_s"] += _secs(calendar.measure(since, at))
        clock["since"] = iso(at)
        clock["_dirty"] = True

    def _stop(self, clock: Clock, at: datetime, cancelled: bool = False) -> None:
        self._account(clock, at)
        clock["status"], clock["stopped_at"] = "stopped", iso(at)
        self._decide(clock, cancelled)
        clock["alarms"] = None
        clock["_dirty"] = True

    def _decide(self, clock: Clock, cancelled: bool = False) -> None:
        clock["overrun_s"] = max(0.0, clock["elapsed_s"] - clock["target_s"])
        if clock["breached_at"] is not None:  # a breach is never undone
            clock["state"], clock["decided_at"] = "breached", clock["breached_at"]
        elif clock["status"] != "stopped":
            clock["state"] = clock["status"]
            clock["decided_at"] = None
        elif cancelled or clock["state"] == "cancelled":
            clock["state"], clock["decided_at"] = "cancelled", None
        else:
            clock["state"], clock["decided_at"] = "met", clock["stopped_at"]

    def _resume(self, book: PolicyBook, clock: Clock, at: datetime) -> None:
        """A stopped clock runs on from where it stopped; the time stopped does not count."""
        if clock["status"] != "stopped":
            return
        clock["status"], clock["since"], clock["stopped_at"] = "running", iso(at), None
        self._refresh(book, clock)

    def _unpause(self, book: PolicyBook, clocks: Sequence[Clock], at: datetime) -> None:
        for clock in clocks:
            if clock["status"] == "paused":
                self._account(clock, at)
                clock["status"] = "running"
                self._refresh(book, clock)

    def _retarget(self, book: PolicyBook, clock: Clock, priority: str, at: datetime) -> None:
        """The new priority's target of the same policy version, counted from the start.

        A clock whose elapsed time already exceeds the new target breaches at this event
        (it could not have breached earlier: the target was different then).
        """
        seconds = target(self._spec(book, clock), clock["metric"], priority)
        self._account(clock, at)
        clock["priority"] = priority
        if seconds is not None:
            clock["target_s"] = float(seconds)
            if clock["breached_at"] is None and clock["elapsed_s"] > seconds:
                clock["breached_at"] = iso(at)
        self._refresh(book, clock)

    def _refresh(self, book: PolicyBook, clock: Clock) -> None:
        """Due time, overrun, state and the alarms still to record, after any change."""
        calendar = self._calendar(book, clock)
        since, left = parse(clock["since"]), clock["target_s"] - clock["elapsed_s"]
        self._decide(clock)
        if clock["status"] == "running":
            clock["due_at"] = (
                iso(calendar.add(since, timedelta(seconds=left)))
                if left > 0
                else clock["breached_at"] or clock["since"]
            )
        elif clock["status"] == "paused":
            clock["due_at"] = None  # not due while the clock does not run
        self._set_alarms(book, clock)

    def _set_alarms(self, book: PolicyBook, clock: Clock) -> None:
        # A simulation records nothing, and a clock that does not run falls due for nothing.
        alarms = (
            self._pending(book, clock)
            if clock["status"] == "running" and self.draft is None
            else []
        )
        clock["alarms"] = (
            orjson.dumps(sorted(alarms, key=lambda a: a[0])).decode() if alarms else None
        )
        clock["_dirty"] = True

    def _pending(self, book: PolicyBook, clock: Clock) -> list[list]:
        """The warnings and the breach still to record, each at the instant it falls due."""
        calendar, since = self._calendar(book, clock), parse(clock["since"])
        alarms = []
        for threshold in self._spec(book, clock).get("warnings", []):
            if threshold not in clock["warnings"]:
                need = clock["target_s"] * threshold / 100 - clock["elapsed_s"]
                when = calendar.add(since, timedelta(seconds=need)) if need > 0 else since
                alarms.append([iso(when), "warning", threshold])
        if not clock["breach_recorded"]:
            alarms.append([clock["due_at"], "breach", None])
        return alarms


def _conditions(record: Record) -> dict[str, Any]:
    """What a policy's conditions look at (domain/sla/sla_policy.py: `matches`)."""
    return {
        "ticket_type": "incident",
        "priority": record["priority"],
        "service": record["service"] or None,
        "category": record["category"] or None,
        "organisation": record.get("organisation"),  # no incident event carries one yet
    }


def _running(clocks: dict[str, Clock]) -> list[Clock]:
    return [clock for clock in clocks.values() if clock["status"] != "stopped"]


# How the incident record moved at one event, as the clocks tell moves apart.
def _moved_group(before: Record, after: Record) -> bool:
    return after["assignment_group"] != before["assignment_group"]


def _was_acknowledged(before: Record, after: Record) -> bool:
    return after["acknowledged_at"] != before["acknowledged_at"]


def _came_off_hold(before: Record, after: Record) -> bool:
    return before["state"] == "on_hold" and after["state"] == "in_progress"


def _was_reopened(before: Record, after: Record) -> bool:
    return after["reopen_count"] != before["reopen_count"]


def _was_reprioritised(before: Record, after: Record) -> bool:
    return any(after[f] != before[f] for f in ("impact", "urgency", "priority"))


def _lag(event: Envelope) -> float:
    """How far the ticket's time line runs behind this store, as of this event."""
    if event.recorded_at is None:  # published before envelopes carried it: take it as live
        return 0.0
    return max(0.0, _secs(event.recorded_at - event.occurred_at))
