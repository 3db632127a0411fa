"""The KPI measures of a run of periods, computed in SQL: per period and dimension value, the
counts and sums that the KPIs are ratios of (projections/kpi/kpi_queries.py divides them).

Facts are counted in the period their moment falls in (opened, acknowledged, first
resolved, closed, cancelled); the backlog and the time spent in each state come from the
state intervals. Definitions: docs/kpis.md.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from projections.kpi.kpi_periods import Period
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
