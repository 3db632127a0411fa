"""The pre-aggregation-era KPI recomputation, kept as the oracle of the cell read model.

Until the KPI read model kept pre-aggregated cells, `kpis()` recomputed every figure at query
time from the per-incident facts (kpi_facts, kpi_intervals, kpi_source_links and the SLA read
model's sla_clocks). This is that code: projections/kpi/kpi_queries.py and
projections/kpi/kpi_cells.py as they were then, merged into one module. Only the imports
changed; the SQL and the Python are the same, so the cells can be proved to give the figures
this recomputation gives (tests/application/test_kpi_cells_oracle.py). It reads the fact tables,
which the projection still keeps. Do not bend it to the read model's answers: a change of
definition (docs/kpis.md) is made in both, deliberately.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from projections.kpi.kpi_periods import PERIODS, KpiQueryError, Period, periods
from projections.runtime.read_store import Row, Transaction

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
_FACTS = "kpi_facts f"
_OPEN_STATES = "i.state IN ('new', 'in_progress', 'on_hold')"
_LEFT = "COALESCE(i.left_s, %s)"  # an interval still open ends now
# The seconds of an interval within the period.
_OVERLAP = (
    f"(CASE WHEN {_LEFT} < p.t1 THEN {_LEFT} ELSE p.t1 END)"
    " - (CASE WHEN i.entered_s > p.t0 THEN i.entered_s ELSE p.t0 END)"
)


class Acknowledgements(NamedTuple):
    incidents: int = 0
    seconds: float | None = None  # summed time to acknowledge


class Resolutions(NamedTuple):
    """Incidents first resolved in the period, and the sums of their resolution KPIs."""

    incidents: int = 0
    seconds: float | None = None  # summed time to (first) resolve
    reopened: int | None = None
    first_contact: int | None = None  # neither reassigned before resolution nor reopened
    reassignments: int | None = None
    sla_met: int | None = None
    sla_judged: int = 0
    source_met: int | None = None  # by the source's own verdict (imported tickets)
    source_judged: int = 0
    business_seconds: float | None = None  # summed business time to resolve (SLA clocks)
    business_count: int = 0


class Closures(NamedTuple):
    """Incidents closed in the period, and their satisfaction survey."""

    incidents: int = 0
    answered: int = 0
    satisfaction: int | None = None  # summed scores, 1 to 5
    promoters: int = 0  # score 5
    detractors: int = 0  # score 3 or less


@dataclass
class Cell:
    """What the measures found for one period and dimension value; nothing found: zero."""

    opened: int = 0
    acknowledged: Acknowledgements = Acknowledgements()
    resolved: Resolutions = Resolutions()
    resolution_seconds: list[float] = field(default_factory=list)  # each incident's
    closed: Closures = Closures()
    cancelled: int = 0
    backlog: int = 0  # open at the end of the period
    in_state: dict[str, tuple[float | None, int]] = field(
        default_factory=dict
    )  # seconds, incidents


# The cells of a run of periods, by (period label, dimension value).
Cells = defaultdict[tuple[str, str | None], Cell]


@dataclass(frozen=True)
class _Query:
    """One run of periods, grouped by one dimension (SQL expressions, or None)."""

    tx: Transaction
    chunk: list[Period]
    fact_dimension: str | None
    interval_dimension: str | None
    now: float
    sla: bool

    def grouped(
        self, dim: str | None, measures: str, source: str, condition: str, joins: str = ""
    ) -> list[Row]:
        """Rows (period label, dimension value, *measures) of `source` joined to the periods."""
        table, params = _table(self.chunk)
        group = f", {dim}" if dim else ""
        rows: list[Row] = self.tx.execute(
            f"SELECT p.k, {dim or 'NULL'}, {measures} FROM {table} JOIN {source} ON {condition}"
            f"{joins} GROUP BY p.k{group}",
            params,
        ).fetchall()
        return rows

    def facts(self, measures: str, moment: str, joins: str = "") -> list[Row]:
        """The measures of the facts whose `moment` falls in each period."""
        return self.grouped(self.fact_dimension, measures, _FACTS, _in(moment), joins)

    def interval_joins(self) -> str:
        """The join to the facts that an interval dimension of the facts needs."""
        dim = self.interval_dimension
        return (
            " JOIN kpi_facts f ON f.incident_id = i.incident_id"
            if dim and dim.startswith("f.")
            else ""
        )


def collect(
    tx: Transaction, chunk: list[Period], group_by: str | None, now: float, sla: bool
) -> Cells:
    """The cells of the periods of `chunk`, by dimension value (`group_by`) if given. `now`
    ends the intervals still open; `sla`: the SLA clocks share this database."""
    fact_dim = FACT_DIMENSIONS.get(group_by) if group_by else None
    interval_dim = INTERVAL_DIMENSIONS.get(group_by) if group_by else None
    query = _Query(tx, chunk, fact_dim, interval_dim, now, sla)
    cells: Cells = defaultdict(Cell)
    for measure in _MEASURES:
        measure(query, cells)
    return cells


def _opened(q: _Query, cells: Cells) -> None:
    for k, d, n in q.facts("COUNT(*)", "f.opened_s"):
        cells[k, d].opened = n


def _acknowledged(q: _Query, cells: Cells) -> None:
    for k, d, *values in q.facts(
        "COUNT(*), SUM(f.acknowledged_s - f.opened_s)", "f.acknowledged_s"
    ):
        cells[k, d].acknowledged = Acknowledgements(*values)


def _resolved(q: _Query, cells: Cells) -> None:
    for k, d, *values in q.facts(
        _resolution_measures(q.sla), "f.first_resolved_s", _resolution_joins(q.sla)
    ):
        cells[k, d].resolved = Resolutions(*values)


def _resolution_measures(sla: bool) -> str:
    verdict = SLA_VERDICT if sla else SLA_VERDICT_NO_CLOCKS
    business = "SUM(c.elapsed_s), COUNT(c.elapsed_s)" if sla else "NULL, 0"
    return (
        "COUNT(*), SUM(f.first_resolved_s - f.opened_s),"
        " SUM(CASE WHEN f.reopen_count > 0 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.reassignments_at_resolution = 0 AND f.reopen_count = 0"
        " THEN 1 ELSE 0 END), SUM(f.reassignment_count),"
        f" SUM({verdict}), COUNT({verdict}), SUM(l.made_sla), COUNT(l.made_sla),"
        f" {business}"
    )


def _resolution_joins(sla: bool) -> str:
    joins = " LEFT JOIN kpi_source_links l ON l.incident_id = f.incident_id"
    if sla:
        joins += " LEFT JOIN sla_clocks c ON c.ticket_id = f.incident_id AND c.metric = 'resolve'"
    return joins


def _resolution_times(q: _Query, cells: Cells) -> None:
    """Each incident's time to resolve, for the median and p90."""
    table, params = _table(q.chunk)
    for k, d, seconds in q.tx.execute(
        f"SELECT p.k, {q.fact_dimension or 'NULL'}, f.first_resolved_s - f.opened_s FROM {table}"
        f" JOIN kpi_facts f ON {_in('f.first_resolved_s')}",
        params,
    ).fetchall():
        cells[k, d].resolution_seconds.append(seconds)


def _closed(q: _Query, cells: Cells) -> None:
    measures = (
        "COUNT(*), COUNT(f.satisfaction), SUM(f.satisfaction),"
        " SUM(CASE WHEN f.satisfaction = 5 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.satisfaction <= 3 THEN 1 ELSE 0 END)"
    )
    for k, d, *values in q.facts(measures, "f.closed_s"):
        cells[k, d].closed = Closures(*values)


def _cancelled(q: _Query, cells: Cells) -> None:
    for k, d, n in q.facts("COUNT(*)", "f.cancelled_s"):
        cells[k, d].cancelled = n


def _backlog(q: _Query, cells: Cells) -> None:
    """Incidents open at the end of the period, with the group holding them then."""
    open_at_end = (
        f"i.entered_s < p.t1 AND (i.left_s IS NULL OR i.left_s >= p.t1) AND {_OPEN_STATES}"
    )
    for k, d, n in q.grouped(
        q.interval_dimension,
        "COUNT(DISTINCT i.incident_id)",
        "kpi_intervals i",
        open_at_end,
        q.interval_joins(),
    ):
        cells[k, d].backlog = n


def _time_in_states(q: _Query, cells: Cells) -> None:
    """Time spent in each state within the period, and by how many incidents."""
    table, params = _table(q.chunk)
    dim = q.interval_dimension
    group = f", {dim}" if dim else ""
    rows = q.tx.execute(
        f"SELECT p.k, {dim or 'NULL'}, i.state, SUM({_OVERLAP}), COUNT(DISTINCT i.incident_id)"
        f" FROM {table} JOIN kpi_intervals i ON i.entered_s < p.t1 AND {_LEFT} > p.t0"
        f"{q.interval_joins()} GROUP BY p.k{group}, i.state",
        [q.now, q.now, *params, q.now],
    ).fetchall()
    for k, d, state, seconds, n in rows:
        cells[k, d].in_state[state] = (seconds, n)


_MEASURES = (
    _opened,
    _acknowledged,
    _resolved,
    _resolution_times,
    _closed,
    _cancelled,
    _backlog,
    _time_in_states,
)


def _table(chunk: list[Period]) -> tuple[str, list[object]]:
    """The periods as a derived table p (k: label, t0 and t1: epoch seconds), its params."""
    select = (
        "SELECT CAST(%s AS TEXT) AS k, CAST(%s AS DOUBLE PRECISION) AS t0,"
        " CAST(%s AS DOUBLE PRECISION) AS t1"
    )
    params: list[object] = []
    for p in chunk:
        params += [p.label, p.t0, p.t1]
    return f"({' UNION ALL '.join([select] * len(chunk))}) p", params


def _in(column: str) -> str:
    return f"{column} >= p.t0 AND {column} < p.t1"


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
