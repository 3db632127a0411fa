"""KPI read model, the query side: aggregates by period and dimension, computed in SQL.

Periods (day, ISO week from Monday, calendar month, in a chosen time zone) are computed in
Python and handed to SQL as a derived table, so that every engine buckets the same way
(projections/kpi/kpi_periods.py); counts, sums and means are SQL aggregates
(projections/kpi/kpi_cells.py); the median and p90 of time to resolve are taken in Python
from the selected durations (neither engine has a portable percentile function).
Definitions: docs/kpis.md.
"""

from __future__ import annotations

import math
import statistics
import time
from datetime import datetime, timezone
from typing import Any

from projections.kpi.kpi_cells import FACT_DIMENSIONS, Cell, Cells, Closures, Resolutions, collect
from projections.kpi.kpi_periods import PERIODS, KpiQueryError, Period, periods
from projections.runtime.read_store import Transaction

# Where the API and the tests import them from.
__all__ = [
    "DIMENSIONS",
    "KPI_FIELDS",
    "PERIODS",
    "KpiQueryError",
    "Period",
    "data_span",
    "kpis",
    "percentile",
    "periods",
    "state_breakdown",
]

STATES = ("new", "in_progress", "on_hold", "resolved")
_CHUNK = 150  # periods per statement: SQLite allows 500 terms in a compound SELECT

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
DIMENSIONS = tuple(FACT_DIMENSIONS)


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
    _check_dimension(group_by)
    span = _range(tx, start, end)
    if span is None:
        return []
    spans = periods(*span, period, tz)
    moment = (now or datetime.now(timezone.utc)).timestamp()
    chunks = (spans[offset : offset + _CHUNK] for offset in range(0, len(spans), _CHUNK))
    return [row for chunk in chunks for row in _rows(tx, chunk, group_by, moment, sla)]


def _check_dimension(group_by: str | None) -> None:
    if group_by is not None and group_by not in FACT_DIMENSIONS:
        raise KpiQueryError(
            f"group_by must be one of {', '.join(FACT_DIMENSIONS)}, not {group_by!r}", "group_by"
        )


def _range(
    tx: Transaction, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime] | None:
    """[start, end), the span of the data for what is not given; None: no data."""
    if start is None or end is None:
        span = data_span(tx)
        if span is None:
            return None
        start, end = start or span[0], end or span[1]
    if end <= start:
        raise KpiQueryError("the range is empty: `to` must be after `from`", "to")
    return start, end


def _rows(
    tx: Transaction, chunk: list[Period], group_by: str | None, now: float, sla: bool
) -> list[dict[str, Any]]:
    cells = collect(tx, chunk, group_by, now, sla)
    return [
        _row(p, value, cells.get((p.label, value), Cell()), group_by)
        for p in chunk
        for value in _values(cells, p, group_by)
    ]


def _values(cells: Cells, period: Period, group_by: str | None) -> list[str | None]:
    """The dimension values with a cell in the period, in order (None last); without
    `group_by`, the one row of the period."""
    if not group_by:
        return [None]
    return sorted((d for k, d in cells if k == period.label), key=lambda v: (v is None, str(v)))


def _row(period: Period, value: Any, cell: Cell, group_by: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "period": period.label,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
    }
    if group_by:
        row[group_by] = value
    return {
        **row,
        **_counts(cell),
        **_times(cell),
        **_resolution_rates(cell.resolved),
        **_satisfaction(cell.closed),
        **{f"mean_hours_in_{s}": _hours(_ratio(*cell.in_state.get(s, (None, 0)))) for s in STATES},
    }


def _counts(cell: Cell) -> dict[str, Any]:
    return {
        "opened": cell.opened,
        "acknowledged": cell.acknowledged.incidents,
        "resolved": cell.resolved.incidents,
        "closed": cell.closed.incidents,
        "cancelled": cell.cancelled,
        "backlog": cell.backlog,
        "backlog_rate": _ratio(cell.backlog, cell.opened),
    }


def _times(cell: Cell) -> dict[str, float | None]:
    acknowledged, resolved, each = cell.acknowledged, cell.resolved, cell.resolution_seconds
    return {
        "mtta_hours": _hours(_ratio(acknowledged.seconds, acknowledged.incidents)),
        "ttr_mean_hours": _hours(_ratio(resolved.seconds, resolved.incidents)),
        "ttr_median_hours": _hours(statistics.median(each)) if each else None,
        "ttr_p90_hours": _hours(percentile(each, 0.9)),
        "ttr_business_mean_hours": _hours(
            _ratio(resolved.business_seconds, resolved.business_count)
        ),
    }


def _resolution_rates(resolved: Resolutions) -> dict[str, float | None]:
    return {
        "fcr_rate": _ratio(resolved.first_contact, resolved.incidents),
        "reopen_rate": _ratio(resolved.reopened, resolved.incidents),
        "reassignments_per_incident": _ratio(resolved.reassignments, resolved.incidents),
        "sla_compliance": _ratio(resolved.sla_met, resolved.sla_judged),
        "source_sla_compliance": _ratio(resolved.source_met, resolved.source_judged),
    }


def _satisfaction(closed: Closures) -> dict[str, Any]:
    answered = closed.answered
    return {
        "csat_mean": _ratio(closed.satisfaction, answered),
        "csat_responses": answered,
        "nps": 100.0 * (closed.promoters - closed.detractors) / answered if answered else None,
    }


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if not whole or part is None else part / whole


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def state_breakdown(tx: Transaction, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Time spent per state (holds split by reason) over [start, end): which steps take longest."""
    rows = _time_per_state(tx, start.timestamp(), end.timestamp(), time.time())
    result = [
        {
            "state": state,
            "hold_reason": reason,
            "total_hours": _hours(seconds),
            "incidents": n,
            "mean_hours": _hours(_ratio(seconds, n)),
        }
        for state, reason, seconds, n in rows
    ]
    return sorted(result, key=lambda r: -(r["mean_hours"] or 0))


def _time_per_state(
    tx: Transaction, t0: float, t1: float, now: float
) -> list[tuple[str, str | None, float, int]]:
    """(state, hold reason, seconds, incidents) within [t0, t1); open intervals end `now`."""
    left = "COALESCE(i.left_s, %s)"
    overlap = (
        f"(CASE WHEN {left} < %s THEN {left} ELSE %s END)"
        " - (CASE WHEN i.entered_s > %s THEN i.entered_s ELSE %s END)"
    )
    rows: list[tuple[str, str | None, float, int]] = tx.execute(
        f"SELECT i.state, i.hold_reason, SUM({overlap}), COUNT(DISTINCT i.incident_id)"
        f" FROM kpi_intervals i WHERE i.entered_s < %s AND {left} > %s"
        " GROUP BY i.state, i.hold_reason",
        [now, t1, now, t1, t0, t0, t1, now, t0],
    ).fetchall()
    return rows
