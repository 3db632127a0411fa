"""Queries over the SLA clock read model; `now` is the only wall-clock input.

A stored clock is exact as of its ticket's last own event. A query brings a running clock up
to `now`: elapsed += business time since then; past its due time it reads as breached at the
due time. The stored row says so only once the ticket's next event is folded: the
scheduler's SlaBreached notice does not change it (projections/sla/sla_clocks.py says why).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

import orjson

from domain.shared_kernel.business_calendar import BusinessCalendar
from domain.sla.sla_policy import calendar_of
from projections.runtime.read_store import Row, Transaction
from projections.runtime.time_text import iso
from projections.sla.sla_clock import CLOCK_COLUMNS, StoredClock, moment

_SELECT = f"SELECT {', '.join(CLOCK_COLUMNS)} FROM sla_clocks"
# Breached in a range: recorded so, or running past due (its breach not stored yet).
_BREACHED_IN_RANGE = (
    "((breached_at >= %s AND breached_at < %s) OR (status = 'running' AND"
    " breached_at IS NULL AND due_at >= %s AND due_at < %s))"
)


def _calendars(
    tx: Transaction, keys: set[tuple[str, int]]
) -> dict[tuple[str, int], BusinessCalendar]:
    found = {}
    for policy_id, version in keys:
        row = tx.execute(
            "SELECT spec FROM sla_policy_versions WHERE policy_id = %s AND version = %s",
            (policy_id, version),
        ).fetchone()
        found[(policy_id, version)] = calendar_of(orjson.loads(row[0]) if row else {})
    return found


def live(clock: StoredClock, now: datetime, calendar: BusinessCalendar) -> dict[str, Any]:
    """The clock as of `now`, in its public form."""
    elapsed, paused = _brought_to(clock, now, calendar)
    breached_at, state = clock["breached_at"], clock["state"]
    if _past_due(clock, now):
        breached_at, state = clock["due_at"], "breached"
    stopped = clock["status"] == "stopped"
    overrun = clock["overrun_s"] if stopped else max(0.0, elapsed - clock["target_s"])
    return {
        **_identity(clock),
        "elapsed_seconds": round(elapsed, 3),
        "paused_seconds": round(paused, 3),
        "remaining_seconds": round(max(0.0, clock["target_s"] - elapsed), 3),
        "due_at": clock["due_at"],
        "state": state,
        "running": clock["status"] == "running",
        "breached_at": breached_at,
        "overrun_seconds": round(overrun, 3),
        "stopped_at": clock["stopped_at"],
        "warnings_recorded": orjson.loads(clock["warnings"]),
        "breach_recorded": bool(clock["breach_recorded"]),
    }


def _identity(clock: StoredClock) -> dict[str, Any]:
    """Whose clock it is, of which metric and policy version, and its target."""
    metric = clock["metric"]
    return {
        "ticket_id": clock["ticket_id"],
        "number": clock["number"],
        "metric": "ola" if metric.startswith("ola:") else metric,
        "group": clock["group_name"],
        "policy_id": clock["policy_id"],
        "policy_version": clock["policy_version"],
        "priority": clock["priority"],
        "target_seconds": clock["target_s"],
        "started_at": clock["started_at"],
    }


def _brought_to(
    clock: StoredClock, now: datetime, calendar: BusinessCalendar
) -> tuple[float, float]:
    """(elapsed, paused) seconds as of `now`: the stored ones, and the business time since
    the ticket's last event if the clock was running or paused."""
    elapsed, paused = clock["elapsed_s"], clock["paused_s"]
    since = moment(clock["since"])
    if clock["status"] == "stopped" or now <= since:
        return elapsed, paused
    extra = calendar.measure(since, now).total_seconds()
    if clock["status"] == "running":
        return elapsed + extra, paused
    return elapsed, paused + extra


def _past_due(clock: StoredClock, now: datetime) -> bool:
    """A running clock past its due time, its breach not yet stored."""
    due_at = clock["due_at"]
    running = clock["status"] == "running" and clock["breached_at"] is None
    return bool(running and due_at and due_at < iso(now))


def _public(tx: Transaction, rows: list[Row], now: datetime) -> list[dict[str, Any]]:
    clocks = [cast(StoredClock, dict(zip(CLOCK_COLUMNS, r, strict=True))) for r in rows]
    calendars = _calendars(tx, {(c["policy_id"], c["policy_version"]) for c in clocks})
    return [live(c, now, calendars[(c["policy_id"], c["policy_version"])]) for c in clocks]


def ticket_clocks(tx: Transaction, ticket_id: str, now: datetime) -> list[dict[str, Any]]:
    rows = tx.execute(f"{_SELECT} WHERE ticket_id = %s ORDER BY metric", (ticket_id,)).fetchall()
    return _public(tx, rows, now)


def ticket_known(tx: Transaction, ticket_id: str) -> bool:
    return (
        tx.execute("SELECT 1 FROM sla_tickets WHERE ticket_id = %s", (ticket_id,)).fetchone()
        is not None
    )


def at_risk(
    tx: Transaction, now: datetime, within: timedelta, limit: int = 500
) -> list[dict[str, Any]]:
    """Running clocks not yet breached that fall due within `within`, soonest first."""
    rows = tx.execute(
        f"{_SELECT} WHERE status = 'running' AND breached_at IS NULL AND due_at > %s"
        " AND due_at <= %s ORDER BY due_at LIMIT %s",
        (iso(now), iso(now + within), limit),
    ).fetchall()
    return _public(tx, rows, now)


def breaches(
    tx: Transaction,
    start: datetime,
    end: datetime,
    now: datetime,
    group: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Clocks that breached in [start, end): recorded ones and running ones past due."""
    lo, hi = iso(start), iso(min(end, now))
    where = _BREACHED_IN_RANGE
    params: list[Any] = [lo, iso(end), lo, hi]
    if group:
        where += " AND group_name = %s"
        params.append(group)
    rows = tx.execute(
        f"{_SELECT} WHERE {where} ORDER BY COALESCE(breached_at, due_at) LIMIT %s", [*params, limit]
    ).fetchall()
    return _public(tx, rows, now)


def _bucket(moment: str, period: str) -> str:
    day = datetime.fromisoformat(moment).date()
    if period == "day":
        return day.isoformat()
    if period == "week":
        return (day - timedelta(days=day.weekday())).isoformat()  # the Monday
    return day.strftime("%Y-%m")


def decided(tx: Transaction, start: datetime, end: datetime, now: datetime) -> list[dict[str, Any]]:
    """Clocks decided in [start, end): met at their stop, breached at their breach.

    A running clock not yet past due is undecided and left out; one past due (its breach
    not yet recorded) counts as breached at its due time.
    """
    lo, hi, cut = iso(start), iso(end), iso(min(end, now))
    rows = tx.execute(_DECIDED, (lo, hi, lo, cut)).fetchall()
    return [_decision(row) for row in rows]


# A clock whose state is running has the status running too (sla_clock.py), so the running
# ones past due are on the (status, due_at) index and the decided ones on decided_at: each
# engine reads the clocks in range from two indexes, not every clock.
_DECIDED = (
    "SELECT metric, policy_id, priority, group_name, state, decided_at, due_at FROM"
    " sla_clocks WHERE (state IN ('met', 'breached') AND decided_at >= %s AND"
    " decided_at < %s) OR (status = 'running' AND state = 'running' AND due_at >= %s"
    " AND due_at < %s)"
)


def _decision(row: Row) -> dict[str, Any]:
    metric, policy_id, priority, group, state, decided_at, due_at = row
    return {
        "metric": "ola" if metric.startswith("ola:") else metric,
        "policy": policy_id,
        "priority": priority,
        "group": group,
        "met": state == "met",
        "at": decided_at if state in ("met", "breached") else due_at,
    }


def compliance(
    tx: Transaction,
    start: datetime,
    end: datetime,
    now: datetime,
    by: str = "policy",
    period: str = "week",
) -> list[dict[str, Any]]:
    """met / (met + breached) per metric and per `by` key, of clocks decided in range."""
    return summarise(decided(tx, start, end, now), by, period)


def summarise(rows: list[dict[str, Any]], by: str, period: str = "week") -> list[dict[str, Any]]:
    return [
        _compliance(metric, key, met, breached)
        for (metric, key), (met, breached) in sorted(_tally(rows, by, period).items())
    ]


def _tally(rows: list[dict[str, Any]], by: str, period: str) -> dict[tuple[str, str], list[int]]:
    """[met, breached] per (metric, `by` key): the key "" for clocks without one."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        key = _bucket(row["at"], period) if by == "period" else row[by]
        counts[(row["metric"], key if key is not None else "")][0 if row["met"] else 1] += 1
    return counts


def _compliance(metric: str, key: str, met: int, breached: int) -> dict[str, Any]:
    return {
        "metric": metric,
        "key": key,
        "met": met,
        "breached": breached,
        "compliance_percent": round(100.0 * met / (met + breached), 2),
    }
