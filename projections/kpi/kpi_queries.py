"""KPI read model, the query side: the KPIs of each period (and dimension value), from the
cells the projection keeps (projections/kpi/kpi_cells.py reads them back).

Periods (day, ISO week from Monday, calendar month) are those of a reporting zone, so each is
one bucket of the cells; a page of rows reads the cells of its periods only, plus one prefix
for the state measures. Definitions: docs/kpis.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from projections.kpi.kpi_buckets import ReportingZone, bucket_of
from projections.kpi.kpi_cell_store import meta
from projections.kpi.kpi_cells import (
    OPEN_STATES,
    STATES,
    Cell,
    Closures,
    Resolutions,
    Slice,
    moment_cell,
)
from projections.kpi.kpi_contributions import DIMENSIONS as CELL_DIMENSIONS
from projections.kpi.kpi_contributions import key_value
from projections.kpi.kpi_periods import PERIODS, KpiQueryError, Period, periods
from projections.kpi.kpi_steps import state_breakdown
from projections.runtime.read_store import Transaction

# Where the API and the tests import them from.
__all__ = [
    "DIMENSIONS",
    "KPI_FIELDS",
    "PERIODS",
    "KpiQueryError",
    "Period",
    "Report",
    "data_span",
    "figures",
    "kpis",
    "periods",
    "state_breakdown",
]

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
DIMENSIONS = CELL_DIMENSIONS
# Where a page starts: (the bucket of its first period, the first row's place in it).
Cursor = tuple[int, int]
_MOST_PERIODS = 64  # periods read at a time
_FIRST_PERIODS = 1  # before the rows per period are known (by agent: hundreds a day)


def data_span(tx: Transaction) -> tuple[datetime, datetime] | None:
    """From the first opening to just after the last recorded moment, or None if empty."""
    row = tx.execute(_SPAN).fetchone()
    if row is None or row[0] is None:
        return None
    last = max(float(v) for v in row[1:] if v is not None)
    return (
        datetime.fromtimestamp(float(row[0]), timezone.utc),
        datetime.fromtimestamp(last + 1, timezone.utc),
    )


# One scalar subquery per MIN or MAX: each engine reads each from its index's end (several
# aggregates in one SELECT scan the table).
_SPAN = "SELECT " + ", ".join(
    f"(SELECT {function}({column}) FROM kpi_facts)"
    for function, column in (
        ("MIN", "opened_s"),
        ("MAX", "opened_s"),
        ("MAX", "first_resolved_s"),
        ("MAX", "closed_s"),
        ("MAX", "cancelled_s"),
    )
)


@dataclass(frozen=True)
class Report:
    """One KPI query: its periods and how its rows are cut."""

    tx: Transaction
    zone: ReportingZone
    grain: str
    group_by: str | None
    periods: list[Period]
    now: float
    values: tuple[str, ...] | None = None  # only these dimension values' rows (keys)

    @classmethod
    def of(
        cls,
        tx: Transaction,
        start: datetime | None = None,
        end: datetime | None = None,
        period: str = "week",
        group_by: str | None = None,
        tz: str = "UTC",
        now: datetime | None = None,
    ) -> Report:
        """Without `start`/`end`, the span of the data. Periods are whole: the range is
        widened to the periods it touches."""
        _check_dimension(group_by)
        zone = _reporting_zone(tx, tz)
        span = _range(tx, start, end)
        spans = periods(*span, period, tz) if span else []
        moment = (now or datetime.now(timezone.utc)).timestamp()
        return cls(tx, zone, period, group_by, spans, moment)

    def rows(self, after: Cursor | None = None) -> Iterator[dict[str, Any]]:
        """The rows from `after` on (the whole report without it), oldest period first."""
        return (row for row, _ in self._rows(after, None))

    def page(self, after: Cursor | None, limit: int) -> tuple[list[dict[str, Any]], Cursor | None]:
        """`limit` rows from `after`, and where the next page starts (None: the last)."""
        rows: list[dict[str, Any]] = []
        for row, cursor in self._rows(after, limit + 1):
            if len(rows) == limit:
                return rows, cursor
            rows.append(row)
        return rows, None

    def _rows(
        self, after: Cursor | None, wanted: int | None
    ) -> Iterator[tuple[dict[str, Any], Cursor]]:
        """Each row with its cursor: its period's bucket and its place in the period."""
        spans = self.periods
        if after is not None:
            spans = [p for p in spans if self._bucket(p) >= after[0]]
        place, current = 0, None
        skipped = after[1] if after else 0  # the rows of the first period before the page
        for p, value, cell in self._walk(spans, None if wanted is None else wanted + skipped):
            bucket = self._bucket(p)
            place = place + 1 if bucket == current else 0
            current = bucket
            if after is None or (bucket, place) >= after:
                yield _row(p, key_value(value), cell, self.group_by), (bucket, place)

    def largest(self, count: int) -> Report:
        """The report of the `count` dimension values with most incidents opened in its
        range (fewest first among equals: by value); itself without a dimension."""
        if not self.group_by or not self.periods:
            return self
        rows = self.tx.execute(
            "SELECT value, SUM(opened) FROM kpi_cells WHERE zone = %s AND grain = %s"
            " AND dim = %s AND bucket >= %s AND bucket <= %s GROUP BY value",
            [
                self.zone.name,
                self.grain,
                self.group_by,
                self._bucket(self.periods[0]),
                self._bucket(self.periods[-1]),
            ],
        ).fetchall()
        ranked = sorted(rows, key=lambda r: (-float(r[1] or 0), _order(str(r[0]))))
        return replace(self, values=tuple(str(r[0]) for r in ranked[:count]))

    def _bucket(self, period: Period) -> int:
        return bucket_of(period.start.date(), self.grain)

    def _walk(
        self, spans: list[Period], wanted: int | None = None
    ) -> Iterator[tuple[Period, str, Cell]]:
        """The cells of the periods, read a chunk of periods at a time: sized from the rows
        per period seen so far, to read about the `wanted` rows and not many more."""
        if not spans:
            return
        cells = Slice(self.tx, self.zone, self.grain, self.group_by, self.values)
        running = cells.prefix(self._bucket(spans[0]))
        offset, rows = 0, 0
        while offset < len(spans):
            size = _chunk_size(offset, rows, wanted)
            for found in self._chunk(cells, spans[offset : offset + size], running):
                rows += 1
                yield found
            offset += size

    def _chunk(
        self, cells: Slice, chunk: list[Period], running: dict[str, dict[str, list[float]]]
    ) -> Iterator[tuple[Period, str, Cell]]:
        first, last = self._bucket(chunk[0]), self._bucket(chunk[-1])
        moments, states = cells.moments(first, last), cells.states(first, last)
        quantiles = cells.quantiles(first, last)
        for p in chunk:
            bucket = self._bucket(p)
            here = {v for b, v in (*moments, *states) if b == bucket} if self.group_by else {""}
            for value in sorted(here | _live(running), key=_order):
                cell = _cell(moments.get((bucket, value)))
                cell.ttr_median_s, cell.ttr_p90_s = quantiles.get((bucket, value), (None, None))
                _states(cell, p, running[value], states.get((bucket, value), {}), self.now)
                if cell.present() or not self.group_by:
                    yield p, value, cell


def _chunk_size(periods: int, rows: int, wanted: int | None) -> int:
    """Periods to read next: enough for the rows still wanted at the rows per period seen
    (a first guess of one), at most 64; 64 when every row is wanted."""
    if wanted is None:
        return _MOST_PERIODS
    if not periods:
        return _FIRST_PERIODS
    per_period = rows / periods
    left = max(wanted - rows, 1)
    return max(1, min(_MOST_PERIODS, int(left / max(per_period, 1.0)) + 1))


def _order(value: str) -> tuple[bool, str]:
    """None (the empty key) last, the others by their text."""
    return value == "", value


def _live(running: dict[str, dict[str, list[float]]]) -> set[str]:
    """The values with incidents in a state, or runs, carried over from earlier periods."""
    return {v for v, steps in running.items() if any(any(s) for s in steps.values())}


def _cell(sums: list[float] | None) -> Cell:
    cell = Cell()
    if sums is not None:
        moment_cell(cell, sums)
    return cell


def _states(
    cell: Cell,
    period: Period,
    running: dict[str, list[float]],
    here: dict[str, list[float]],
    now: float,
) -> None:
    """The time in each state, the distinct incidents in it and the backlog at the end; moves
    the running sums past the period."""
    started = period.t0 < now
    span = min(now, period.t1) - period.t0
    for state in STATES:
        carried = running.setdefault(state, [0.0, 0.0, 0.0, 0.0])
        delta, weight, runs, open_runs = here.get(state, (0.0, 0.0, 0.0, 0.0))
        distinct = round(carried[2] + runs + ((carried[3] + open_runs) if started else 0))
        if distinct:
            seconds = (carried[0] + delta) * span - weight if started else 0.0
            cell.in_state[state] = (seconds, distinct)
        carried[0] += delta
        carried[2] += runs
        carried[3] += open_runs
    cell.backlog = round(sum(running[s][0] for s in OPEN_STATES))


def kpis(
    tx: Transaction,
    start: datetime | None = None,
    end: datetime | None = None,
    period: str = "week",
    group_by: str | None = None,
    tz: str = "UTC",
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One row per period (and dimension value, with `group_by`), oldest first.

    Without `group_by` every period has a row, empty ones too."""
    return list(Report.of(tx, start, end, period, group_by, tz, now).rows())


def _check_dimension(group_by: str | None) -> None:
    if group_by is not None and group_by not in DIMENSIONS:
        raise KpiQueryError(
            f"group_by must be one of {', '.join(DIMENSIONS)}, not {group_by!r}", "group_by"
        )


def _reporting_zone(tx: Transaction, tz: str) -> ReportingZone:
    zones = (meta(tx, "zones") or "UTC").split(",")
    if tz not in zones:
        raise KpiQueryError(
            f"tz must be one of the reporting zones the KPIs are kept in ({', '.join(zones)}),"
            f" not {tz!r}: ITSM_KPI_ZONES chooses them",
            "tz",
        )
    return ReportingZone(tz)


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


def _row(period: Period, value: Any, cell: Cell, group_by: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "period": period.label,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
    }
    if group_by:
        row[group_by] = value
    return {**row, **figures(cell)}


def figures(cell: Cell) -> dict[str, Any]:
    """Every KPI of a cell (KPI_FIELDS), by name."""
    return {
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
    acknowledged, resolved = cell.acknowledged, cell.resolved
    return {
        "mtta_hours": _hours(_ratio(acknowledged.seconds, acknowledged.incidents)),
        "ttr_mean_hours": _hours(_ratio(resolved.seconds, resolved.incidents)),
        "ttr_median_hours": _hours(cell.ttr_median_s),
        "ttr_p90_hours": _hours(cell.ttr_p90_s),
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
