"""KPI read model, the query side: aggregates by period and dimension, computed in SQL.

Periods (day, ISO week from Monday, calendar month, in a chosen time zone) are computed in
Python and handed to SQL as a derived table, so that every engine buckets the same way;
counts, sums and means are SQL aggregates; the median and p90 of time to resolve are taken
in Python from the selected durations (neither engine has a portable percentile function).
Definitions: docs/kpis.md.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from projections.runtime.read_store import Transaction

PERIODS = ("day", "week", "month")
# Facts: the owner (group/agent at first resolution, else the current one) and the
# incident's classification. Intervals: the group that held the incident at that time.
FACT_DIMENSIONS = {
    "group": "f.owner_group",
    "category": "f.category",
    "priority": "f.priority",
    "service": "f.service",
    "agent": "f.owner_agent",
}
INTERVAL_DIMENSIONS = {**FACT_DIMENSIONS, "group": "i.group_name"}
STATES = ("new", "in_progress", "on_hold", "resolved")
MAX_PERIODS = 1000
_CHUNK = 150  # periods per statement: SQLite allows 500 terms in a compound SELECT
# The SLA verdict of a resolved incident: the resolve clock of the SLA read model when it has
# decided one; else, for tickets imported from another tool, the source's own verdict
# (made_sla of the latest snapshot); else a breach recorded on the incident; else unknown.
SLA_VERDICT = (
    "CASE WHEN c.state = 'breached' THEN 0 WHEN c.state = 'met' THEN 1"
    " WHEN l.made_sla IS NOT NULL THEN l.made_sla"
    " WHEN f.respond_breached = 1 OR f.resolve_breached = 1 THEN 0 END"
)
SLA_VERDICT_NO_CLOCKS = SLA_VERDICT.replace(
    "WHEN c.state = 'breached' THEN 0 WHEN c.state = 'met' THEN 1 ", ""
)

KPI_FIELDS = (
    "opened",
    "acknowledged",
    "resolved",
    "closed",
    "cancelled",
    "backlog",
    "backlog_rate",
    "mtta_hours",
    "ttr_mean_hours",
    "ttr_median_hours",
    "ttr_p90_hours",
    "ttr_business_mean_hours",
    "fcr_rate",
    "reopen_rate",
    "reassignments_per_incident",
    "sla_compliance",
    "source_sla_compliance",
    "csat_mean",
    "csat_responses",
    "nps",
    *(f"mean_hours_in_{s}" for s in STATES),
)


class KpiQueryError(ValueError):
    """A query the read model cannot answer as asked (unknown period, too many periods...)."""


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime

    @property
    def t0(self) -> float:
        return self.start.timestamp()

    @property
    def t1(self) -> float:
        return self.end.timestamp()


def _period_start(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def _next_start(day: date, period: str) -> date:
    if period == "day":
        return day + timedelta(days=1)
    if period == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def periods(start: datetime, end: datetime, period: str = "week", tz: str = "UTC") -> list[Period]:
    """The calendar periods (in `tz`) that intersect [start, end), whole."""
    if period not in PERIODS:
        raise KpiQueryError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    zone = ZoneInfo(tz)
    day = _period_start(start.astimezone(zone).date(), period)
    result: list[Period] = []
    while True:
        begin = datetime.combine(day, datetime.min.time(), zone)
        if begin >= end:
            break
        following = _next_start(day, period)
        label = day.strftime("%Y-%m") if period == "month" else day.isoformat()
        result.append(Period(label, begin, datetime.combine(following, datetime.min.time(), zone)))
        if len(result) > MAX_PERIODS:
            raise KpiQueryError(
                f"more than {MAX_PERIODS} {period}s between {start.isoformat()}"
                f" and {end.isoformat()}: choose a longer period or a shorter"
                " range"
            )
        day = following
    return result


def data_span(tx: Transaction) -> tuple[datetime, datetime] | None:
    """From the first opening to just after the last recorded moment, or None if empty."""
    row = tx.execute(
        "SELECT MIN(opened_s), MAX(opened_s), MAX(first_resolved_s), MAX(closed_s),"
        " MAX(cancelled_s) FROM kpi_facts"
    ).fetchone()
    if row is None or row[0] is None:
        return None
    last = max(v for v in row[1:] if v is not None)
    return (
        datetime.fromtimestamp(row[0], timezone.utc),
        datetime.fromtimestamp(last + 1, timezone.utc),
    )


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest rank: the smallest value with at least `fraction` of the values <= it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def _table(chunk: list[Period]) -> tuple[str, list]:
    select = (
        "SELECT CAST(%s AS TEXT) AS k, CAST(%s AS DOUBLE PRECISION) AS t0,"
        " CAST(%s AS DOUBLE PRECISION) AS t1"
    )
    params: list = []
    for p in chunk:
        params += [p.label, p.t0, p.t1]
    return f"({' UNION ALL '.join([select] * len(chunk))}) p", params


def _grouped(
    tx: Transaction,
    chunk: list[Period],
    dim: str | None,
    measures: str,
    source: str,
    condition: str,
    joins: str = "",
) -> list[tuple]:
    """Rows (period label, dimension value, *measures) of `source` joined to the periods."""
    table, params = _table(chunk)
    group = f", {dim}" if dim else ""
    return tx.execute(
        f"SELECT p.k, {dim or 'NULL'}, {measures} FROM {table} JOIN {source} ON {condition}"
        f"{joins} GROUP BY p.k{group}",
        params,
    ).fetchall()


def _in(column: str) -> str:
    return f"{column} >= p.t0 AND {column} < p.t1"


def _collect(
    tx: Transaction, chunk: list[Period], group_by: str | None, now: float, sla: bool
) -> dict[tuple[str, Any], dict[str, Any]]:
    fd = FACT_DIMENSIONS.get(group_by) if group_by else None
    idim = INTERVAL_DIMENSIONS.get(group_by) if group_by else None
    cells: dict[tuple[str, Any], dict[str, Any]] = defaultdict(dict)
    facts = "kpi_facts f"
    for k, d, n in _grouped(tx, chunk, fd, "COUNT(*)", facts, _in("f.opened_s")):
        cells[k, d]["opened"] = n
    for k, d, n, wait in _grouped(
        tx,
        chunk,
        fd,
        "COUNT(*), SUM(f.acknowledged_s - f.opened_s)",
        facts,
        _in("f.acknowledged_s"),
    ):
        cells[k, d].update(acknowledged=n, _ack_sum=wait)
    resolved = " LEFT JOIN kpi_source_links l ON l.incident_id = f.incident_id"
    if sla:
        resolved += (
            " LEFT JOIN sla_clocks c ON c.ticket_id = f.incident_id AND c.metric = 'resolve'"
        )
    verdict = SLA_VERDICT if sla else SLA_VERDICT_NO_CLOCKS
    business = "SUM(c.elapsed_s), COUNT(c.elapsed_s)" if sla else "NULL, 0"
    for (
        k,
        d,
        n,
        ttr,
        reopened,
        fcr,
        moves,
        met,
        judged,
        src_met,
        src_judged,
        biz,
        biz_n,
    ) in _grouped(
        tx,
        chunk,
        fd,
        "COUNT(*), SUM(f.first_resolved_s - f.opened_s),"
        " SUM(CASE WHEN f.reopen_count > 0 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.reassignments_at_resolution = 0 AND f.reopen_count = 0"
        " THEN 1 ELSE 0 END), SUM(f.reassignment_count),"
        f" SUM({verdict}), COUNT({verdict}), SUM(l.made_sla), COUNT(l.made_sla),"
        f" {business}",
        facts,
        _in("f.first_resolved_s"),
        resolved,
    ):
        cells[k, d].update(
            resolved=n,
            _ttr_sum=ttr,
            _reopened=reopened,
            _fcr=fcr,
            _moves=moves,
            _sla_met=met,
            _sla_judged=judged,
            _src_met=src_met,
            _src_judged=src_judged,
            _biz_sum=biz,
            _biz_n=biz_n,
            _ttr=[],
        )
    table, params = _table(chunk)
    for k, d, seconds in tx.execute(
        f"SELECT p.k, {fd or 'NULL'}, f.first_resolved_s - f.opened_s FROM {table}"
        f" JOIN kpi_facts f ON {_in('f.first_resolved_s')}",
        params,
    ).fetchall():
        cells[k, d]["_ttr"].append(seconds)
    for k, d, n, answered, total, promoters, detractors in _grouped(
        tx,
        chunk,
        fd,
        "COUNT(*), COUNT(f.satisfaction), SUM(f.satisfaction),"
        " SUM(CASE WHEN f.satisfaction = 5 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.satisfaction <= 3 THEN 1 ELSE 0 END)",
        facts,
        _in("f.closed_s"),
    ):
        cells[k, d].update(
            closed=n,
            csat_responses=answered,
            _csat_sum=total,
            _promoters=promoters,
            _detractors=detractors,
        )
    for k, d, n in _grouped(tx, chunk, fd, "COUNT(*)", facts, _in("f.cancelled_s")):
        cells[k, d]["cancelled"] = n
    with_facts = (
        " JOIN kpi_facts f ON f.incident_id = i.incident_id"
        if idim and idim.startswith("f.")
        else ""
    )
    for k, d, n in _grouped(
        tx,
        chunk,
        idim,
        "COUNT(DISTINCT i.incident_id)",
        "kpi_intervals i",
        "i.entered_s < p.t1 AND (i.left_s IS NULL OR i.left_s >= p.t1)"
        " AND i.state IN ('new', 'in_progress', 'on_hold')",
        with_facts,
    ):
        cells[k, d]["backlog"] = n
    left = "COALESCE(i.left_s, %s)"
    overlap = (
        f"(CASE WHEN {left} < p.t1 THEN {left} ELSE p.t1 END)"
        " - (CASE WHEN i.entered_s > p.t0 THEN i.entered_s ELSE p.t0 END)"
    )
    table, params = _table(chunk)
    group = f", {idim}" if idim else ""
    rows = tx.execute(
        f"SELECT p.k, {idim or 'NULL'}, i.state, SUM({overlap}), COUNT(DISTINCT i.incident_id)"
        f" FROM {table} JOIN kpi_intervals i ON i.entered_s < p.t1 AND {left} > p.t0"
        f"{with_facts} GROUP BY p.k{group}, i.state",
        [now, now, *params, now],
    ).fetchall()
    for k, d, state, seconds, n in rows:
        cells[k, d][f"_state_{state}"] = (seconds, n)
    return cells


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if not whole or part is None else part / whole


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def _row(period: Period, value: Any, cell: dict[str, Any], group_by: str | None) -> dict[str, Any]:
    opened, resolved = cell.get("opened", 0), cell.get("resolved", 0)
    ttr = cell.get("_ttr") or []
    answered = cell.get("csat_responses", 0)
    row: dict[str, Any] = {
        "period": period.label,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
    }
    if group_by:
        row[group_by] = value
    row.update(
        opened=opened,
        acknowledged=cell.get("acknowledged", 0),
        resolved=resolved,
        closed=cell.get("closed", 0),
        cancelled=cell.get("cancelled", 0),
        backlog=cell.get("backlog", 0),
        backlog_rate=_ratio(cell.get("backlog", 0), opened),
        mtta_hours=_hours(_ratio(cell.get("_ack_sum"), cell.get("acknowledged", 0))),
        ttr_mean_hours=_hours(_ratio(cell.get("_ttr_sum"), resolved)),
        ttr_median_hours=_hours(statistics.median(ttr)) if ttr else None,
        ttr_p90_hours=_hours(percentile(ttr, 0.9)),
        ttr_business_mean_hours=_hours(_ratio(cell.get("_biz_sum"), cell.get("_biz_n", 0))),
        fcr_rate=_ratio(cell.get("_fcr"), resolved),
        reopen_rate=_ratio(cell.get("_reopened"), resolved),
        reassignments_per_incident=_ratio(cell.get("_moves"), resolved),
        sla_compliance=_ratio(cell.get("_sla_met"), cell.get("_sla_judged", 0)),
        source_sla_compliance=_ratio(cell.get("_src_met"), cell.get("_src_judged", 0)),
        csat_mean=_ratio(cell.get("_csat_sum"), answered),
        csat_responses=answered,
        nps=None
        if not answered
        else 100.0 * (cell.get("_promoters", 0) - cell.get("_detractors", 0)) / answered,
    )
    for state in STATES:
        seconds, n = cell.get(f"_state_{state}", (None, 0))
        row[f"mean_hours_in_{state}"] = _hours(_ratio(seconds, n))
    return row


def kpis(
    tx: Transaction,
    start: datetime | None = None,
    end: datetime | None = None,
    period: str = "week",
    group_by: str | None = None,
    tz: str = "UTC",
    now: datetime | None = None,
    sla: bool = False,
) -> list[dict[str, Any]]:
    """One row per period (and dimension value, with `group_by`), oldest first.

    Without `start`/`end`, the span of the data. Periods are whole: the range is widened to
    the periods it touches. Without `group_by` every period has a row, empty ones too.
    `sla`: the SLA read model (sla_clocks) shares this database; its resolve clocks give the
    business time to resolve and the SLA verdicts.
    """
    if group_by is not None and group_by not in FACT_DIMENSIONS:
        raise KpiQueryError(
            f"group_by must be one of {', '.join(FACT_DIMENSIONS)}, not {group_by!r}"
        )
    if start is None or end is None:
        span = data_span(tx)
        if span is None:
            return []
        start, end = start or span[0], end or span[1]
    if end <= start:
        raise KpiQueryError("the range is empty: `to` must be after `from`")
    spans = periods(start, end, period, tz)
    moment = (now or datetime.now(timezone.utc)).timestamp()
    rows: list[dict[str, Any]] = []
    for offset in range(0, len(spans), _CHUNK):
        chunk = spans[offset : offset + _CHUNK]
        cells = _collect(tx, chunk, group_by, moment, sla)
        for p in chunk:
            values = sorted(
                (d for k, d in cells if k == p.label), key=lambda v: (v is None, str(v))
            )
            if not group_by:
                values = [None]
            rows += [_row(p, value, cells.get((p.label, value), {}), group_by) for value in values]
    return rows


def state_breakdown(tx: Transaction, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Time spent per state (holds split by reason) over [start, end): which steps take longest."""
    now = time.time()
    left = "COALESCE(i.left_s, %s)"
    t0, t1 = start.timestamp(), end.timestamp()
    overlap = (
        f"(CASE WHEN {left} < %s THEN {left} ELSE %s END)"
        " - (CASE WHEN i.entered_s > %s THEN i.entered_s ELSE %s END)"
    )
    rows = tx.execute(
        f"SELECT i.state, i.hold_reason, SUM({overlap}), COUNT(DISTINCT i.incident_id)"
        f" FROM kpi_intervals i WHERE i.entered_s < %s AND {left} > %s"
        " GROUP BY i.state, i.hold_reason",
        [now, t1, now, t1, t0, t0, t1, now, t0],
    ).fetchall()
    result = [
        {
            "state": s,
            "hold_reason": r,
            "total_hours": _hours(sec),
            "incidents": n,
            "mean_hours": _hours(_ratio(sec, n)),
        }
        for s, r, sec, n in rows
    ]
    return sorted(result, key=lambda r: -(r["mean_hours"] or 0))


DIMENSIONS = tuple(FACT_DIMENSIONS)
