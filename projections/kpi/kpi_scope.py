"""One KPI over one scope of incidents and one stretch of time: what an improvement's goal is
measured by (application/improvement/verification.py).

The definitions are the cells' (docs/kpis.md), applied to the incidents' facts and state
intervals directly: the moments in [start, end) are summed, the median and p90 time to
resolve come from the same bins, a state's time is the time the incidents spent in it within
the stretch (up to `now`), its incidents are those with time in it there, and the backlog is
what was open at the end. A stretch that is one period of a reporting zone therefore gives
the figure `GET /v1/kpis` gives for that period (tests/unit/test_kpi_scope.py proves it).

Two ways in: `measure` reads only the facts of one moment in the stretch (or the intervals
that overlap it), for one figure; `scoped_views` loads the scope's incidents once and
`figure` measures any stretch of them, for a series (a weekly trend).

A scope is a filter over tickets (domain/improvement/design.py's Scope): an incident is in it
if its service, category, priority and channel are among those listed (an empty list: any).
Groups follow the cells' rule: moments count for the incident's owner group, time in a state
for the group that held the interval.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from projections.kpi.kpi_cell_store import LONG_INTERVAL, LONG_SECONDS
from projections.kpi.kpi_cells import OPEN_STATES, STATES, Cell, moment_cell
from projections.kpi.kpi_contributions import MOMENT_MEASURES, IncidentView, Interval, ttr_bin
from projections.kpi.kpi_fact_fold import Fact
from projections.kpi.kpi_quantiles import median_p90, ranks
from projections.kpi.kpi_queries import KPI_FIELDS, figures
from projections.kpi.kpi_views import (
    MOMENT_COLUMNS,
    MOMENT_READS,
    VIEW_COLUMNS,
    Extras,
    among,
    made_sla_of,
    moment,
    verdicts_of,
)
from projections.runtime.read_store import Transaction

# Bumped whenever a definition of docs/kpis.md changes: a figure pinned with another version
# was measured by other rules.
DEFINITIONS_VERSION = "kpis-1"
# Fewer tickets (or answers) than this behind a figure: too few for it to mean much.
SMALL_SAMPLE = 30
# What each KPI is a figure of: the count shown beside it.
_COUNT_OF = {
    "backlog_rate": "opened",
    "mtta_hours": "acknowledged",
    "ttr_mean_hours": "resolved",
    "ttr_median_hours": "resolved",
    "ttr_p90_hours": "resolved",
    "ttr_business_mean_hours": "business",
    "fcr_rate": "resolved",
    "reopen_rate": "resolved",
    "reassignments_per_incident": "resolved",
    "sla_compliance": "sla_judged",
    "source_sla_compliance": "source_judged",
    "csat_mean": "csat_responses",
    "nps": "csat_responses",
}
# The moment each KPI is a figure of (the state KPIs are figures of intervals; the backlog
# rate of both).
_MOMENT_OF = {
    "opened": "opened",
    "backlog_rate": "opened",
    "acknowledged": "acknowledged",
    "mtta_hours": "acknowledged",
    "closed": "closed",
    "csat_mean": "closed",
    "csat_responses": "closed",
    "nps": "closed",
    "cancelled": "cancelled",
    **{
        kpi: "resolved"
        for kpi in (
            "resolved",
            "ttr_mean_hours",
            "ttr_median_hours",
            "ttr_p90_hours",
            "ttr_business_mean_hours",
            "fcr_rate",
            "reopen_rate",
            "reassignments_per_incident",
            "sla_compliance",
            "source_sla_compliance",
        )
    },
}
# The KPIs that read the SLA verdicts (the SLA read model's, and the source's for imports).
_VERDICTS = {"sla_compliance", "source_sla_compliance", "ttr_business_mean_hours"}
_QUANTILES = {"ttr_median_hours", "ttr_p90_hours"}
# The states whose intervals a state KPI reads (the backlog and its rate: the open ones).
_STATES_OF = {f"mean_hours_in_{state}": (state,) for state in STATES}
_SCOPED = {"services": "service", "categories": "category", "priorities": "priority"}
_SCOPED_ALSO = {"channels": "channel"}


@dataclass(frozen=True)
class Figure:
    value: int | float | None  # None: nothing to measure in the stretch
    count: int  # the tickets (or answers) behind it


@dataclass(frozen=True)
class ScopeFilter:
    """A scope as a test over facts and intervals."""

    values: Mapping[str, frozenset[str]]  # fact column: the values admitted
    groups: frozenset[str]
    no_incidents: bool = False  # ticket types listed without "incident"

    @classmethod
    def of(cls, scope: Mapping[str, Any]) -> ScopeFilter:
        columns = {**_SCOPED, **_SCOPED_ALSO}
        values = {column: frozenset(scope.get(key) or ()) for key, column in columns.items()}
        types = scope.get("ticket_types") or ()
        return cls(
            {c: v for c, v in values.items() if v},
            frozenset(scope.get("groups") or ()),
            bool(types) and "incident" not in types,
        )

    def admits(self, fact: Fact) -> bool:
        if self.no_incidents:
            return False
        return all(fact[column] in admitted for column, admitted in self.values.items())

    def group(self, group: str | None) -> bool:
        return not self.groups or group in self.groups


def measure(
    tx: Transaction,
    scope: ScopeFilter,
    kpi: str,
    start: float,
    end: float,
    now: float,
    replaced: Replaced | None = None,
) -> Figure:
    """The KPI over the incidents the scope admits, in [start, end). `replaced` stands in
    for the read model's fact and intervals of some incidents (as they were at an earlier
    position of the log: None, not logged yet)."""
    if kpi not in KPI_FIELDS:
        raise ValueError(f"unknown KPI {kpi!r}")
    replaced = replaced or {}
    cell = Cell()
    moment_name = _MOMENT_OF.get(kpi)
    if moment_name is not None:
        reads = _Reads(kpi in _VERDICTS, kpi in _QUANTILES)
        sums, bins = _moment_sums(tx, scope, moment_name, start, end, replaced, reads)
        moment_cell(cell, sums)
        cell.ttr_median_s, cell.ttr_p90_s = _quantiles(bins)
    if kpi in STATE_KPIS:
        states = _States(start, end, now)
        wanted = _STATES_OF.get(kpi, OPEN_STATES)
        for incident_id, interval in _intervals(tx, scope, start, end, replaced, wanted):
            states.add(incident_id, interval)
        states.into(cell)
    row, counts = figures(cell), _counts(cell)
    return Figure(row[kpi], counts[_count_name(kpi)])


def _moment_sums(
    tx: Transaction,
    scope: ScopeFilter,
    name: str,
    start: float,
    end: float,
    replaced: Replaced,
    reads: _Reads,
) -> tuple[list[float], Counter[int]]:
    """The measures of the moment `name` of the scope's incidents that fell in [start, end),
    summed, and (if asked) their time-to-resolve bins."""
    column = MOMENT_COLUMNS[name]
    facts = [f for f in _facts(tx, scope, name, start, end) if f["incident_id"] not in replaced]
    for then in replaced.values():
        if then is not None and scope.admits(then[0]) and scope.group(then[0]["owner_group"]):
            at = then[0][column]
            if at is not None and start <= at < end:
                facts.append(then[0])
    ids = {f["incident_id"] for f in facts} if reads.verdicts else set()
    select = among(tx, ids)
    made_sla, judged = made_sla_of(select), verdicts_of(select)
    # Summed exactly (math.fsum), so in any order: the read model's rows after a rebuild,
    # or some incidents folded again, come in another order, and floats added in another
    # order differ in their last digit.
    amounts: list[list[float]] = [[] for _ in MOMENT_MEASURES]
    bins = Counter[int]()
    for fact in facts:
        incident_id = fact["incident_id"]
        for index, amount in moment(fact, name, made_sla.get(incident_id), judged.get(incident_id)):
            amounts[index].append(amount)
        if name == "resolved" and reads.bins:
            bins[ttr_bin(fact["first_resolved_s"] - fact["opened_s"])] += 1
    return [math.fsum(column) for column in amounts], bins


@dataclass(frozen=True)
class _Reads:
    """What a KPI's figure needs beyond the facts: the SLA verdicts, the resolution bins."""

    verdicts: bool
    bins: bool


def figure(
    views: Iterable[IncidentView],
    kpi: str,
    start: float,
    end: float,
    now: float,
    scope: ScopeFilter,
) -> Figure:
    """The KPI over the views (of incidents the scope admits) in [start, end): for a
    series of stretches over views loaded once (scoped_views)."""
    if kpi not in KPI_FIELDS:
        raise ValueError(f"unknown KPI {kpi!r}")
    cell, counts = measured(views, start, end, now, scope)
    row = figures(cell)
    return Figure(row[kpi], counts[_count_name(kpi)])


def measured(
    views: Iterable[IncidentView], start: float, end: float, now: float, scope: ScopeFilter
) -> tuple[Cell, dict[str, int]]:
    """The cell of the stretch, and the count behind every figure of it."""
    sums, bins = [0.0] * len(MOMENT_MEASURES), Counter[int]()
    states = _States(start, end, now)
    for number, view in enumerate(views):
        if scope.group(view.dims[0]):
            _moments(view, start, end, sums, bins)
        for interval in view.intervals.values():
            if scope.group(interval.group):
                states.add(str(number), interval)
    cell = Cell()
    moment_cell(cell, sums)
    cell.ttr_median_s, cell.ttr_p90_s = _quantiles(bins)
    states.into(cell)
    return cell, _counts(cell)


def _moments(
    view: IncidentView, start: float, end: float, sums: list[float], bins: Counter[int]
) -> None:
    for name, (seconds, measures) in view.moments.items():
        if start <= seconds < end:
            for index, amount in measures:
                sums[index] += amount
            if name == "resolved" and view.ttr_s is not None:
                bins[ttr_bin(view.ttr_s)] += 1


def _quantiles(bins: Counter[int]) -> tuple[float | None, float | None]:
    """The median and p90 from the bins, as the cells' quantiles are found."""
    total = sum(bins.values())
    wanted, holding, seen = set(ranks(total)), {}, 0
    for bin_ in sorted(bins):
        before, seen = seen, seen + bins[bin_]
        for rank in wanted:
            if before < rank <= seen:
                holding[rank] = bin_
    return median_p90(holding, total)


class _States:
    """Per state: the time in it within [start, min(now, end)), the incidents with time in
    it there, and the incidents in it at the end."""

    def __init__(self, start: float, end: float, now: float) -> None:
        self.start, self.end, self.now = start, end, now
        self.seconds: defaultdict[str, list[float]] = defaultdict(list)  # fsum: any order
        self.incidents: defaultdict[str, set[str]] = defaultdict(set)
        self.at_end: Counter[str] = Counter()

    def add(self, incident: str, interval: Interval) -> None:
        entered, left, state = interval.entered_s, interval.left_s, interval.state
        if entered >= self.end:
            return
        if left is None or left >= self.end:
            self.at_end[state] += 1
        started = self.start < self.now  # else no time in it yet, as open intervals go
        if (left is None and started) or (left is not None and left > self.start):
            self.incidents[state].add(incident)
        if started and (left is None or left > self.start):
            # As the cells integrate it: up to the end (or now) unless it left before.
            until = min(self.now, self.end) if left is None or left >= self.end else left
            self.seconds[state].append(until - max(entered, self.start))

    def into(self, cell: Cell) -> None:
        for state in STATES:
            if self.incidents[state]:
                cell.in_state[state] = (math.fsum(self.seconds[state]), len(self.incidents[state]))
        cell.backlog = sum(self.at_end[s] for s in OPEN_STATES)


def _counts(cell: Cell) -> dict[str, int]:
    counts = {
        "opened": cell.opened,
        "acknowledged": cell.acknowledged.incidents,
        "resolved": cell.resolved.incidents,
        "closed": cell.closed.incidents,
        "cancelled": cell.cancelled,
        "backlog": cell.backlog,
        "business": cell.resolved.business_count,
        "sla_judged": cell.resolved.sla_judged,
        "source_judged": cell.resolved.source_judged,
        "csat_responses": cell.closed.answered,
    }
    for state in STATES:
        counts[f"mean_hours_in_{state}"] = cell.in_state.get(state, (0.0, 0))[1]
    return counts


def _count_name(kpi: str) -> str:
    return _COUNT_OF.get(kpi, kpi)


def small(figure_: Figure) -> bool:
    return figure_.count < SMALL_SAMPLE


# The fact columns a view needs (kpi_views.VIEW_COLUMNS), and the scope's.
SCOPE_COLUMNS = (*VIEW_COLUMNS, "channel")
STATE_KPIS = frozenset({"backlog", "backlog_rate", *(f"mean_hours_in_{s}" for s in STATES)})
# An incident as of an earlier log position: its fact and intervals then (None: not yet logged).
Replaced = Mapping[str, tuple[Fact, dict[int, Interval]] | None]


def _facts(tx: Transaction, scope: ScopeFilter, name: str, start: float, end: float) -> list[Fact]:
    """The facts of the scope's incidents whose moment `name` fell in [start, end), with the
    columns its measures read: the scope's columns and its groups (moments count for the
    owner group) in SQL."""
    if scope.no_incidents:
        return []
    column = MOMENT_COLUMNS[name]
    columns = tuple(dict.fromkeys(("incident_id", "owner_group", column, *MOMENT_READS[name])))
    where, params = [f"{column} >= %s", f"{column} < %s"], [cast(object, start), end]
    for name, admitted in sorted(scope.values.items()):
        where.append(f"{name} IN ({', '.join(['%s'] * len(admitted))})")
        params += sorted(admitted)
    if scope.groups:
        where.append(f"owner_group IN ({', '.join(['%s'] * len(scope.groups))})")
        params += sorted(scope.groups)
    rows = tx.execute(
        f"SELECT {', '.join(columns)} FROM kpi_facts WHERE {' AND '.join(where)}", params
    ).fetchall()
    return [dict(zip(columns, row, strict=True)) for row in rows]


_LONG = LONG_INTERVAL.replace("left_s", "i.left_s").replace("entered_s", "i.entered_s")
_INTERVAL_COLUMNS = ("incident_id", "state", "group_name", "entered_s", "left_s")


def _intervals(
    tx: Transaction,
    scope: ScopeFilter,
    start: float,
    end: float,
    replaced: Replaced,
    states: tuple[str, ...],
) -> Iterator[tuple[str, Interval]]:
    """The intervals in `states` of the scope's incidents that may count in [start, end):
    entered before its end and not left by its start; time in a state counts for the
    interval's group."""
    if scope.no_incidents:
        return
    where = ["(i.left_s IS NULL OR i.left_s > %s)", f"i.state IN ({_marks(states)})"]
    params = [cast(object, start), *states]
    for name, admitted in sorted(scope.values.items()):
        where.append(f"f.{name} IN ({_marks(admitted)})")
        params += sorted(admitted)
    if scope.groups:
        where.append(f"i.group_name IN ({_marks(scope.groups)})")
        params += sorted(scope.groups)
    # The facts are joined only when the scope filters on their columns.
    joined = " JOIN kpi_facts f ON f.incident_id = i.incident_id" if scope.values else ""
    # Entered in the stretch or shortly before it (the index on entry), or long or still
    # open (the partial index on those): an interval's two ends cannot both be bounded.
    select = (
        f"SELECT {', '.join(f'i.{c}' for c in _INTERVAL_COLUMNS)} FROM kpi_intervals i"
        f"{joined} WHERE {' AND '.join(where)}"
    )
    recent = f"{select} AND i.entered_s >= %s AND i.entered_s < %s"
    older = f"{select} AND i.entered_s < %s AND {_LONG}"
    rows = tx.execute(
        f"{recent} UNION ALL {older}",
        [*params, start - LONG_SECONDS, end, *params, start - LONG_SECONDS],
    ).fetchall()
    for incident_id, state, group, entered, left in rows:
        if incident_id not in replaced:
            yield incident_id, Interval(state, None, group, entered, left)
    for incident_id, then in replaced.items():
        if then is not None and scope.admits(then[0]):
            for interval in then[1].values():
                if interval.state in states and scope.group(interval.group):
                    yield incident_id, interval


def _marks(values: Iterable[object]) -> str:
    return ", ".join("%s" for _ in values)


def scoped_views(
    tx: Transaction,
    scope: ScopeFilter,
    start: float,
    end: float,
    intervals: bool,
    replaced: Replaced | None = None,
) -> list[IncidentView]:
    """The views of the incidents the scope admits that may count in [start, end): those
    opened before its end. `replaced`
    stands in for the read model's fact and intervals of some incidents (as they were at an
    earlier position of the log); `intervals` False leaves the intervals out (no state KPI)."""
    replaced = replaced or {}
    facts = {
        fact["incident_id"]: fact
        for fact in _opened_before(tx, scope, end, owners_only=not intervals)
        if fact["incident_id"] not in replaced
    }
    extras = Extras.load(tx, set(facts) | set(replaced), intervals=intervals)
    for incident_id, then in replaced.items():
        if then is not None and scope.admits(then[0]) and _may_count(then[0], end):
            facts[incident_id] = then[0]
            extras.intervals[incident_id] = dict(then[1]) if intervals else {}
    return [view for fact in facts.values() if (view := extras.view(fact)) is not None]


def _may_count(fact: Fact, end: float) -> bool:
    return bool(fact["opened_s"] < end)


def _opened_before(
    tx: Transaction, scope: ScopeFilter, end: float, owners_only: bool
) -> list[Fact]:
    """The facts the scope admits; `owners_only`: of its groups' incidents only (no state
    KPI, so an interval of another owner's incident in one of them does not count)."""
    where, params = ["opened_s < %s"], [cast(object, end)]
    if scope.no_incidents:
        return []
    for column, admitted in sorted(scope.values.items()):
        where.append(f"{column} IN ({', '.join(['%s'] * len(admitted))})")
        params += sorted(admitted)
    if owners_only and scope.groups:
        where.append(f"owner_group IN ({', '.join(['%s'] * len(scope.groups))})")
        params += sorted(scope.groups)
    rows = tx.execute(
        f"SELECT {', '.join(SCOPE_COLUMNS)} FROM kpi_facts WHERE {' AND '.join(where)}", params
    ).fetchall()
    return [dict(zip(SCOPE_COLUMNS, row, strict=True)) for row in rows]
