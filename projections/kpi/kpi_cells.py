"""The KPI cells of a run of periods, read back: per period and dimension value, the counts
and sums that the KPIs are ratios of (projections/kpi/kpi_queries.py divides them).

A period of a reporting zone is one bucket of its grain, so moment measures are read as
they are. The state measures are summed up to the period: `delta` up to its start is the
number of incidents in each state then, and `runs` up to the period the distinct incidents
with time in each state in it. Both are read from whole years, then months, then buckets
(projections/kpi/kpi_buckets.py, the rollups), so a prefix costs a few rows per dimension
value and state, not one per bucket. Without a dimension, the figures are the sums over
the priorities (every incident has one priority value, none included).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from projections.kpi.kpi_buckets import (
    MONTHLY,
    YEARLY,
    ReportingZone,
    first_day,
    month_buckets,
    month_of,
    year_of,
)
from projections.kpi.kpi_contributions import ALL, MOMENT_MEASURES
from projections.kpi.kpi_quantiles import Quantiles, fresh, stored
from projections.runtime.read_store import Transaction

STATES = ("new", "in_progress", "on_hold", "resolved")
OPEN_STATES = ("new", "in_progress", "on_hold")
_M = {name: i for i, name in enumerate(MOMENT_MEASURES)}
_STATE_LIST = ", ".join(f"'{s}'" for s in STATES)
_PART_MEASURES = {
    "delta": {1: "delta AS d, 0 AS r, 0 AS o", -1: "-delta AS d, 0 AS r, 0 AS o"},
    "runs": {1: "0 AS d, runs AS r, open_runs AS o", -1: "0 AS d, -runs AS r, -open_runs AS o"},
}


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
    """What the cells hold for one period and dimension value; nothing: zero."""

    opened: int = 0
    acknowledged: Acknowledgements = Acknowledgements()
    resolved: Resolutions = Resolutions()
    ttr_median_s: float | None = None
    ttr_p90_s: float | None = None
    closed: Closures = Closures()
    cancelled: int = 0
    backlog: int = 0  # open at the end of the period
    in_state: dict[str, tuple[float, int]] = field(default_factory=dict)  # seconds, incidents

    def present(self) -> bool:
        """Whether the period has a row for this value: an incident had a moment in it, was
        in the backlog at its end or spent time in some state in it."""
        counts = (self.opened, self.acknowledged.incidents, self.resolved.incidents)
        counts += (self.closed.incidents, self.cancelled, self.backlog)  # type: ignore[assignment]
        return any(counts) or any(n for _, n in self.in_state.values())


@dataclass(frozen=True)
class Slice:
    """One zone, grain and dimension of the cells (None: the sum over priorities)."""

    tx: Transaction
    zone: ReportingZone
    grain: str
    dimension: str | None
    values: tuple[str, ...] | None = None  # only these value keys (None: all)

    @property
    def dim(self) -> str:
        return self.dimension or "priority"

    def _where(self, grain: str | None = None, dim: str | None = None) -> tuple[str, list[object]]:
        where = "zone = %s AND grain = %s AND dim = %s"
        params: list[object] = [self.zone.name, grain or self.grain, dim or self.dim]
        if self.values is not None:
            where += f" AND value IN ({', '.join(['%s'] * len(self.values)) or 'NULL'})"
            params += self.values
        return where, params

    def _value(self) -> str:
        return "value" if self.dimension else "''"

    def _measures(self, columns: tuple[str, ...]) -> str:
        """The columns as they are with a dimension (one row per cell), else summed over
        the priorities."""
        return ", ".join(f"SUM({c})" if not self.dimension else c for c in columns)

    def _grouped(self, *columns: str) -> str:
        return "" if self.dimension else f" GROUP BY {', '.join(columns)}"

    def moments(self, first: int, last: int) -> dict[tuple[int, str], list[float]]:
        where, params = self._where()
        sums = self._measures(MOMENT_MEASURES)
        rows = self.tx.execute(
            f"SELECT bucket, {self._value()}, {sums} FROM kpi_cells WHERE {where}"
            f" AND bucket >= %s AND bucket <= %s{self._grouped('bucket')}",
            [*params, first, last],
        ).fetchall()
        return {(int(r[0]), str(r[1])): [float(v or 0) for v in r[2:]] for r in rows}

    def states(self, first: int, last: int) -> dict[tuple[int, str], dict[str, list[float]]]:
        where, params = self._where()
        sums = self._measures(("delta", "weight", "runs", "open_runs"))
        rows = self.tx.execute(
            f"SELECT bucket, {self._value()}, step, {sums} FROM kpi_state_cells WHERE {where}"
            f" AND bucket >= %s AND bucket <= %s AND step IN ({_STATE_LIST})"
            f"{self._grouped('bucket', 'step')}",
            [*params, first, last],
        ).fetchall()
        cells: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(dict)
        for bucket, value, step_, *sums in rows:
            cells[(int(bucket), str(value))][str(step_)] = [float(v or 0) for v in sums]
        return cells

    def quantiles(self, first: int, last: int) -> dict[tuple[int, str], Quantiles]:
        """Per bucket and value, the median and p90 time to resolve: as stored, or from the
        bins for a cell whose bins changed since (projections/kpi/kpi_quantiles.py)."""
        where, params = self._where(dim=self.dimension or ALL)
        where += " AND bucket >= %s AND bucket <= %s"
        figures, stale = stored(self.tx, where, [*params, first, last])
        if stale:
            figures.update(fresh(self.tx, where, [*params, first, last], stale))
        return figures

    def prefix(self, first: int) -> dict[str, dict[str, list[float]]]:
        """Per value and state, before bucket `first`: [incidents in the state at its
        start, 0, runs, open runs] (the shape of a state cell's sums), in one statement."""
        parts = [*self._delta_parts(first), *self._runs_parts(first)]
        selects, params = zip(*(self._part(*part) for part in parts), strict=True)
        rows = self.tx.execute(
            f"SELECT v, step, SUM(d), SUM(r), SUM(o) FROM ({' UNION ALL '.join(selects)}) AS p"
            " GROUP BY v, step",
            [p for part in params for p in part],
        ).fetchall()
        totals: dict[str, dict[str, list[float]]] = defaultdict(
            lambda: defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
        )
        for value, step_, delta, runs, open_runs in rows:
            totals[str(value)][str(step_)] = [float(delta or 0), 0.0, float(runs), float(open_runs)]
        return totals

    def _delta_parts(self, first: int) -> list[Part]:
        """The years before the bucket's, its year's months before its month, its month's
        days before it."""
        month = month_of(self.grain, first)
        year, day = year_of(month), first_day(self.grain, first).toordinal()
        low, high = month_buckets("day", month)
        return [
            ("delta", YEARLY["month"], None, year, 1),
            *_nearer("delta", (YEARLY["month"], year), ("month", year * 12, month, year * 12 + 12)),
            *_nearer("delta", ("month", month), ("day", low, day, high)),
        ]

    def _runs_parts(self, first: int) -> list[Part]:
        """Likewise, in the grain and its rollups."""
        month = month_of(self.grain, first)
        year, yearly = year_of(month), YEARLY[self.grain]
        if self.grain == "month":
            months = ("month", year * 12, first, year * 12 + 12)
            return [("runs", yearly, None, year, 1), *_nearer("runs", (yearly, year), months)]
        monthly, (low, high) = MONTHLY[self.grain], month_buckets(self.grain, month)
        return [
            ("runs", yearly, None, year, 1),
            *_nearer("runs", (yearly, year), (monthly, year * 12, month, year * 12 + 12)),
            *_nearer("runs", (monthly, month), (self.grain, low, first, high)),
        ]

    def _part(
        self, measure: str, grain: str, low: int | None, high: int, sign: int
    ) -> tuple[str, list[object]]:
        """The rows of buckets [low, high) of `grain`, as (v, step, d, r, o): their delta,
        or their runs and open runs, taken away if `sign` is -1."""
        where, params = self._where(grain)
        if low is not None:
            where, params = where + " AND bucket >= %s", [*params, low]
        return (
            f"SELECT {self._value()} AS v, step, {_PART_MEASURES[measure][sign]}"
            f" FROM kpi_state_cells WHERE {where} AND bucket < %s AND step IN ({_STATE_LIST})",
            [*params, high],
        )


# (measure, grain, first bucket or None: from the start, bucket after the last, sign)
Part = tuple[str, str, int | None, int, int]


def _nearer(
    measure: str, parent: tuple[str, int], children: tuple[str, int, int, int]
) -> list[Part]:
    """The children [low, at) of one parent bucket whose children are [low, high): summed,
    or, when fewer are after `at`, the parent less the children [at, high). Exact: the
    sums are of whole numbers."""
    (rollup, bucket), (grain, low, at, high) = parent, children
    if at - low <= high - at:
        return [(measure, grain, low, at, 1)] if at > low else []
    return [(measure, rollup, bucket, bucket + 1, 1), (measure, grain, at, high, -1)]


def moment_cell(cell: Cell, sums: list[float]) -> None:
    """The moment measures of a cell, from its sums (MOMENT_MEASURES)."""

    def n(name: str) -> int:
        return round(sums[_M[name]])

    def total(name: str, count: int) -> float | None:
        return sums[_M[name]] if count else None

    resolved = n("resolved")
    cell.opened, cell.cancelled = n("opened"), n("cancelled")
    cell.acknowledged = Acknowledgements(n("acknowledged"), total("ack_s", n("acknowledged")))
    cell.resolved = Resolutions(
        resolved,
        total("ttr_s", resolved),
        n("reopened") if resolved else None,
        n("first_contact") if resolved else None,
        n("reassignments") if resolved else None,
        n("sla_met") if n("sla_judged") else None,
        n("sla_judged"),
        n("source_met") if n("source_judged") else None,
        n("source_judged"),
        total("business_s", n("business_n")),
        n("business_n"),
    )
    answered = n("csat_n")
    cell.closed = Closures(
        n("closed"), answered, n("csat_sum") if answered else None, n("promoters"), n("detractors")
    )
