"""What one incident adds to the KPI cells, and how a change of the incident changes them.

The cells (projections/kpi/kpi_cell_store.py) are sums over incidents: each incident
contributes to the bucket (day, week and month of each reporting zone) of each of its
moments, in each dimension, and its state intervals contribute to the buckets they start
and end in. A cell is therefore always the sum of the contributions of the incidents as
they are now: when an incident changes, the parts of its contribution that changed are
taken out (sign -1, as they were) and put back (sign +1, as they are). So an incident that
is reassigned or recategorised moves to its new value for every period, as docs/kpis.md
says of the facts.

Three kinds of cell:
- moments: the counts and sums of the incidents opened, acknowledged, first resolved,
  closed or cancelled in a bucket;
- states: per state, `delta` (intervals entering minus leaving: summed up to an instant it
  is the number of incidents in that state then, so the backlog), `weight` (each delta times
  its offset from the bucket's start: with `delta` it integrates time spent in the state),
  `entered` (intervals entering), and `runs` / `open_runs`: per incident, the maximal runs of
  consecutive buckets of one grain it spent time in the state, +1 where a run starts and -1
  after it ends (still open: +1 in `open_runs`), so that summed up to a bucket they count
  the distinct incidents with time in the state in that bucket;
- bins: the time to resolve in logarithmic bins (docs/kpis.md gives the accuracy).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from ddsketch.mapping import LogarithmicMapping

from projections.kpi.kpi_buckets import (
    GRAINS,
    MONTHLY,
    YEARLY,
    ReportingZone,
    month_key,
    month_of,
    step,
)

# The relative accuracy of the time-to-resolve quantiles (docs/kpis.md).
RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
DIMENSIONS = ("group", "category", "priority", "service", "agent")
ALL = "all"  # the time-to-resolve bins and quantiles of every incident, no dimension
MOMENT_MEASURES = (
    "opened",
    "acknowledged",
    "ack_s",
    "resolved",
    "ttr_s",
    "reopened",
    "first_contact",
    "reassignments",
    "sla_met",
    "sla_judged",
    "source_met",
    "source_judged",
    "business_s",
    "business_n",
    "closed",
    "csat_n",
    "csat_sum",
    "promoters",
    "detractors",
    "cancelled",
)
STATE_MEASURES = ("delta", "weight", "entered", "runs", "open_runs")
_INDEX = {name: i for i, name in enumerate(MOMENT_MEASURES)}
# What a moment adds: (the measure's index, amount) pairs.
Measures = tuple[tuple[int, float], ...]
# A cell's key: (zone, grain, bucket, dimension, value); state cells add the step, bins the bin.
CellKey = tuple[str, str, int, str, str]


class Interval(NamedTuple):
    state: str
    hold_reason: str | None
    group: str | None
    entered_s: float
    left_s: float | None


@dataclass(frozen=True)
class IncidentView:
    """What the cells need of one incident: its dimension values (owner group, category,
    priority, service, owner agent), its moments and its state intervals by sequence."""

    dims: tuple[Any, ...]
    moments: Mapping[str, tuple[float, Measures]]
    ttr_s: float | None
    intervals: Mapping[int, Interval]

    def in_state(self, state: str) -> tuple[Interval, ...]:
        """Its intervals in the state, by entry."""
        return tuple(sorted((i for i in self.intervals.values() if i.state == state), key=_entry))


def _entry(interval: Interval) -> float:
    return interval.entered_s


def value_key(value: Any) -> str:
    """A dimension value as a key: '' for none, '=' and the text otherwise."""
    return "" if value is None else "=" + str(value)


def key_value(key: str) -> str | None:
    return key[1:] if key else None


_NO_VIEW = IncidentView((None,) * len(DIMENSIONS), {}, None, {})
_GROUP = DIMENSIONS.index("group")
_ALL = list(range(len(DIMENSIONS)))
_RUNS, _OPEN_RUNS = STATE_MEASURES.index("runs"), STATE_MEASURES.index("open_runs")


class Cells(NamedTuple):
    """A batch's changes in every grain and rollup, by cell key (CellChanges.cells)."""

    moments: dict[CellKey, list[float]]
    states: dict[tuple[Any, ...], list[float]]  # STATE_MEASURES
    bins: dict[tuple[Any, ...], int]

    def rows(self) -> CellRows:
        """The cells that hold something, as their tables' rows."""
        return CellRows(
            [(*key, *cell) for key, cell in self.moments.items() if any(cell)],
            [(*key, *cell) for key, cell in self.states.items() if any(cell)],
            [(*key, count) for key, count in self.bins.items() if count],
        )


class CellRows(NamedTuple):
    """Changes to the cells as their tables' rows (projections/kpi/kpi_cell_store.py): the
    key's columns, then the measures (MOMENT_MEASURES, STATE_MEASURES, a bin's count)."""

    moments: list[tuple[Any, ...]]
    states: list[tuple[Any, ...]]
    bins: list[tuple[Any, ...]]


@dataclass
class CellChanges:
    """The changes a batch makes to the cells, summed per cell before they are written.

    Each dimension is diffed on its own: an incident reassigned moves in the group and agent
    dimensions only. In a dimension, a moment, an interval or a state's runs is taken out and
    put back only if it changed, or if the incident's value in that dimension did (an
    interval's group is its own, so a new owner group moves the moments only).

    Moments, bins and interval ends are summed per day, runs per bucket of their grain: the
    weeks, months and rollups follow from those sums (`cells`), once per cell a batch
    touches rather than once per part of every incident."""

    zones: tuple[ReportingZone, ...]
    moments: defaultdict[CellKey, list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0] * len(MOMENT_MEASURES))
    )
    # (zone, "day", bucket, dimension, value, step): delta, weight, entered
    states: defaultdict[tuple[Any, ...], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0, 0.0, 0.0])
    )
    # (zone, grain, bucket, dimension, value, state): runs, open runs
    runs: defaultdict[tuple[Any, ...], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    bins: defaultdict[tuple[Any, ...], int] = field(default_factory=lambda: defaultdict(int))

    def cells(self) -> Cells:
        """Every cell the changes touch, in every grain and rollup."""
        zones = {zone.name: zone for zone in self.zones}
        return Cells(
            _by_grain(self.moments),
            _states_by_grain(zones, self.states, self.runs),
            _by_grain(self.bins),
        )

    def rows(self) -> CellRows:
        return self.cells().rows()

    def incident(self, before: IncidentView | None, after: IncidentView | None) -> None:
        """Take out what changed of `before` and put in what changed of `after`."""
        old, new = before or _NO_VIEW, after or _NO_VIEW
        moved = [
            d
            for d in range(len(DIMENSIONS))
            if before is None or after is None or old.dims[d] != new.dims[d]
        ]
        rekeyed = [d for d in moved if d != _GROUP]
        for name in old.moments.keys() | new.moments.keys():
            changed = old.moments.get(name) != new.moments.get(name)
            dims = _ALL if changed else moved
            self._moment(old, name, _values(old, dims), -1, changed)
            self._moment(new, name, _values(new, dims), 1, changed)
        states: dict[str, list[int]] = {}
        for seq in old.intervals.keys() | new.intervals.keys():
            was, now = old.intervals.get(seq), new.intervals.get(seq)
            changed = was != now
            dims = _ALL if changed else rekeyed
            # Left at last (or later): its entry stands where the dimensions did not move.
            exit_only = changed and was is not None and now is not None and was[:4] == now[:4]
            for view, sign in ((old, -1), (new, 1)):
                interval = view.intervals.get(seq)
                if interval is not None and dims:
                    if exit_only:
                        unmoved = _unmoved(rekeyed)
                        self._interval(interval, _values(view, rekeyed, interval), sign)
                        self._interval(interval, _values(view, unmoved, interval), sign, False)
                    else:
                        self._interval(interval, _values(view, dims, interval), sign)
                    if changed or interval.state not in states:
                        states[interval.state] = dims
        for state, dims in states.items():
            if dims:
                self._runs(old, new, state, dims)

    def _moment(
        self, view: IncidentView, name: str, values: Values, sign: int, changed: bool
    ) -> None:
        """The moment's measures in the dimensions; its time-to-resolve bin too, and in
        the `all` dimension (the quantiles of no dimension) when the moment itself changed."""
        entry = view.moments.get(name)
        if entry is None or not values:
            return
        seconds, measures = entry
        bin_ = ttr_bin(view.ttr_s) if name == "resolved" and view.ttr_s is not None else None
        for zone in self.zones:
            day = _buckets(zone, seconds)[0]
            if bin_ is not None and changed:
                self.bins[(zone.name, "day", day, ALL, "", bin_)] += sign
            for dim, value in values:
                cell = self.moments[(zone.name, "day", day, dim, value)]
                for index, amount in measures:
                    cell[index] += sign * amount
                if bin_ is not None:
                    self.bins[(zone.name, "day", day, dim, value, bin_)] += sign

    def _interval(self, interval: Interval, values: Values, sign: int, entry: bool = True) -> None:
        """An interval's entry and exit: +1 (-1) in `delta`, weighted by their offset from
        the day's start."""
        if not values:
            return
        ends = [(interval.entered_s, sign, sign)] if entry else []
        if interval.left_s is not None:
            ends.append((interval.left_s, -sign, 0))
        steps = steps_of(interval)
        states = self.states
        for zone in self.zones:
            for seconds, delta, entries in ends:
                day = _buckets(zone, seconds)[0]
                weight = delta * (seconds - _start(zone, "day", day))
                for dim, value in values:
                    for step_ in steps:
                        cell = states[(zone.name, "day", day, dim, value, step_)]
                        cell[0] += delta
                        cell[1] += weight
                        cell[2] += entries

    def _runs(self, old: IncidentView, new: IncidentView, state: str, dims: list[int]) -> None:
        """The state's runs in the dimensions: those that changed, out and in. The runs are
        the same in every dimension but the group's (an interval's group is its own), so
        they are found and diffed once per grain."""
        olds, news = old.in_state(state), new.in_state(state)
        for zone in self.zones:
            before, after = _state_runs(zone, olds), _state_runs(zone, news)
            for d in dims:
                if d == _GROUP:
                    for value in before.by_group.keys() | after.by_group.keys():
                        marks = _marks(before.by_group.get(value), after.by_group.get(value), True)
                        self._diff(zone.name, state, [("group", (value, value))], marks)
                else:
                    values = (value_key(old.dims[d]), value_key(new.dims[d]))
                    marks = _marks(before.shared, after.shared, values[0] == values[1])
                    self._diff(zone.name, state, [(DIMENSIONS[d], values)], marks)

    def _diff(
        self,
        zone: str,
        state: str,
        values: list[tuple[str, tuple[str, str]]],
        marks: Sequence[Mark],
    ) -> None:
        """The marks (`_marks`) under each dimension's value before or after."""
        cells = self.runs
        for grain, bucket, column, amount, after in marks:
            for dim, pair in values:
                cells[(zone, grain, bucket, dim, pair[after], state)][column] += amount


# A change to the run cells: (grain, bucket, 0 runs or 1 open runs, amount, whether it is
# under the value after the change).
Mark = tuple[str, int, int, int, bool]


# The runs of all the dimensions but the group's are the same: their marks are found once.
@lru_cache(maxsize=1 << 14)
def _marks(before: GrainRuns | None, after: GrainRuns | None, same_value: bool) -> tuple[Mark, ...]:
    """+1 where a run starts, -1 after it ends (open: +1 in open runs); -1 and +1 for a
    run taken out."""
    marks: list[Mark] = []
    for g, grain in enumerate(GRAINS):
        old = before[g] if before else frozenset()
        new = after[g] if after else frozenset()
        if same_value:
            old, new = old - new, new - old
        for runs, sign, later in ((old, -1, False), (new, 1, True)):
            for first, last in runs:
                if last is None:
                    marks.append((grain, first, 1, sign, later))
                else:
                    marks.append((grain, first, 0, sign, later))
                    marks.append((grain, last + step(grain), 0, -sign, later))
    return tuple(marks)


def _by_grain(days: Mapping[tuple[Any, ...], Any]) -> dict[tuple[Any, ...], Any]:
    """Day cells (key: zone, "day", bucket, ...) summed into their weeks and months too."""
    cells: dict[tuple[Any, ...], Any] = dict(days)
    for key, sums in days.items():
        _, week, month = _day_buckets(key[2])
        rest = key[3:]
        for wider in ((key[0], "week", week, *rest), (key[0], "month", month, *rest)):
            cells[wider] = _plus(cells[wider], sums) if wider in cells else sums
    return cells


def _plus(one: Any, other: Any) -> Any:
    return one + other if isinstance(one, int) else [a + b for a, b in zip(one, other, strict=True)]


def _states_by_grain(
    zones: Mapping[str, ReportingZone],
    days: Mapping[tuple[Any, ...], list[float]],
    runs: Mapping[tuple[Any, ...], list[int]],
) -> dict[tuple[Any, ...], list[float]]:
    """The interval ends of each day in its week and month too (weighted from their start)
    and in its month's yearly rollup; the runs in their grain's monthly and yearly rollups."""
    cells: dict[tuple[Any, ...], list[float]] = {}
    for (name, _, day, dim, value, step_), (delta, weight, entered) in days.items():
        for grain, bucket, offset in _day_in_grains(zones[name], day):
            key = (name, grain, bucket, dim, value, step_)
            _add(cells, key, delta, weight + delta * offset, entered)
        _add(cells, (name, _YEAR_OF_MONTHS, _day_buckets(day)[2] // 12, dim, value, step_), delta)
    for (name, grain, bucket, dim, value, state), (runs_, open_runs) in runs.items():
        for level, at in _run_levels(grain, bucket):
            cell = cells.get((name, level, at, dim, value, state))
            if cell is None:
                cells[(name, level, at, dim, value, state)] = [0.0, 0.0, 0.0, runs_, open_runs]
            else:
                cell[_RUNS] += runs_
                cell[_OPEN_RUNS] += open_runs
    return cells


_YEAR_OF_MONTHS = YEARLY["month"]


def _add(
    cells: dict[tuple[Any, ...], list[float]],
    key: tuple[Any, ...],
    delta: float,
    weight: float = 0.0,
    entered: float = 0.0,
) -> None:
    """Add to a state cell's delta, weight and entries (a new cell: STATE_MEASURES)."""
    cell = cells.get(key)
    if cell is None:
        cells[key] = [delta, weight, entered, 0.0, 0.0]
    else:
        cell[0] += delta
        cell[1] += weight
        cell[2] += entered


@lru_cache(maxsize=1 << 14)
def _day_in_grains(zone: ReportingZone, day: int) -> tuple[tuple[str, int, float], ...]:
    """The day's bucket in each grain, and how long after that bucket's start it starts."""
    start = _start(zone, "day", day)
    return tuple(
        (grain, bucket, start - _start(zone, grain, bucket))
        for grain, bucket in zip(GRAINS, _day_buckets(day), strict=True)
    )


@lru_cache(maxsize=1 << 14)
def _run_levels(grain: str, bucket: int) -> tuple[tuple[str, int], ...]:
    """The bucket, and its monthly (days and weeks) and yearly rollups."""
    month = _month_of(grain, bucket)
    monthly = ((MONTHLY[grain], month),) if grain in MONTHLY else ()
    return ((grain, bucket), *monthly, (YEARLY[grain], month // 12))


# Dimensions and their values as keys: (dimension, value_key).
Values = list[tuple[str, str]]


def _values(view: IncidentView, dims: list[int], interval: Interval | None = None) -> Values:
    """The view's values in the dimensions; an interval's group is its own."""
    return [
        (DIMENSIONS[d], value_key(interval.group if interval and d == _GROUP else view.dims[d]))
        for d in dims
    ]


def _unmoved(moved: list[int]) -> list[int]:
    return [d for d in _ALL if d not in moved]


# Per grain, the runs of buckets (first, last or None: still open).
GrainRuns = tuple[frozenset[tuple[int, int | None]], ...]


class StateRuns(NamedTuple):
    """An incident's runs in one state: over all its intervals there (`shared`, the same for
    every dimension but the group's), and over those of each group."""

    shared: GrainRuns
    by_group: dict[str, GrainRuns]


# An incident's view after one batch is its view before the next: its runs come back.
@lru_cache(maxsize=1 << 14)
def _state_runs(zone: ReportingZone, intervals: tuple[Interval, ...]) -> StateRuns:
    spans = [_span(zone, interval) for interval in intervals]
    groups = {interval.group for interval in intervals}
    if len(groups) == 1:  # most often: the group's runs are all of them
        shared = _grain_runs(spans)
        return StateRuns(shared, {value_key(groups.pop()): shared})
    by_group: dict[str, list[Span]] = defaultdict(list)
    for interval, span in zip(intervals, spans, strict=True):
        by_group[value_key(interval.group)].append(span)
    return StateRuns(
        _grain_runs(spans), {value: _grain_runs(own) for value, own in by_group.items()}
    )


# An interval's buckets: per grain, the first it has time in and the last (None: open).
Span = tuple[tuple[int, int, int], tuple[int | None, ...]]


def _span(zone: ReportingZone, interval: Interval) -> Span:
    firsts = _buckets(zone, interval.entered_s)
    if interval.left_s is None:
        return firsts, (None, None, None)
    lefts = _buckets(zone, interval.left_s)
    # Left at a bucket's very start: the bucket before is the last with time in it.
    lasts = tuple(
        bucket - step(grain) if _start(zone, grain, bucket) == interval.left_s else bucket
        for grain, bucket in zip(GRAINS, lefts, strict=True)
    )
    return firsts, lasts


def _grain_runs(spans: list[Span]) -> GrainRuns:
    """Per grain, the maximal runs of buckets of the spans (sorted by entry)."""
    if len(spans) == 1:  # most often: one interval in the state
        return tuple(frozenset(_runs([bounds])) for bounds in zip(*spans[0], strict=True))
    return tuple(
        frozenset(_runs([(span[0][g], span[1][g]) for span in spans])) for g in range(len(GRAINS))
    )


def steps_of(interval: Interval) -> tuple[str, ...]:
    if interval.state == "on_hold":
        return ("on_hold", f"on_hold:{interval.hold_reason or ''}")
    return (interval.state,)


def _runs(spans: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """The maximal runs of the buckets [first, last] (last None: still open), sorted by
    first; a span with no time at all (left at a boundary as it came) counts for nothing."""
    runs: list[tuple[int, int | None]] = []
    for first, last in spans:
        if last is not None and last < first:
            continue
        if runs and _overlaps(runs[-1], first):
            runs[-1] = (runs[-1][0], _later(runs[-1][1], last))
            continue
        runs.append((first, last))
    return runs


def _overlaps(run: tuple[int, int | None], first: int) -> bool:
    return run[1] is None or first <= run[1]


def _later(one: int | None, other: int | None) -> int | None:
    """The later of two last buckets, None (still open) being the latest."""
    return None if one is None or other is None else max(one, other)


def _buckets(zone: ReportingZone, seconds: float) -> tuple[int, int, int]:
    """zone.buckets(seconds), without a calendar computation per instant: an instant's
    local day follows from the zone's offset, which is the same over a quarter hour but
    where the zone changes its offset in it."""
    offset = slot_offset(zone, int(seconds // SLOT))
    if offset is None:
        return zone.buckets(seconds)
    return _day_buckets(int((seconds + offset) // 86400) + EPOCH_DAY)


SLOT = 900.0
EPOCH_DAY = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=1 << 16)
def slot_offset(zone: ReportingZone, slot: int) -> float | None:
    """The zone's UTC offset over the quarter hour, or None if it changes in it (offsets
    change at whole seconds: a slot's first and last second tell)."""
    first = datetime.fromtimestamp(slot * SLOT, zone.zone).utcoffset()
    last = datetime.fromtimestamp(slot * SLOT + SLOT - 1, zone.zone).utcoffset()
    return first.total_seconds() if first is not None and first == last else None


@lru_cache(maxsize=1 << 14)
def _day_buckets(day: int) -> tuple[int, int, int]:
    local = date.fromordinal(day)
    return day, day - local.weekday(), month_key(local)


@lru_cache(maxsize=1 << 14)
def _month_of(grain: str, bucket: int) -> int:
    return month_of(grain, bucket)


@lru_cache(maxsize=1 << 16)
def _start(zone: ReportingZone, grain: str, bucket: int) -> float:
    return zone.start(grain, bucket)


def ttr_bin(seconds: float) -> int:
    """The bin of a duration: 0 under a second, +/-(1 + the mapping's key) otherwise, so
    that bins sort as the durations do."""
    if abs(seconds) < 1:
        return 0
    key = 1 + MAPPING.key(abs(seconds))
    return key if seconds > 0 else -key


def bin_value(bin_: int) -> float:
    """A duration within the relative accuracy of every duration in the bin."""
    if bin_ == 0:
        return 0.0
    value = float(MAPPING.value(abs(bin_) - 1))
    return value if bin_ > 0 else -value


def measures(**amounts: float) -> Measures:
    return tuple((_INDEX[name], float(amount)) for name, amount in amounts.items() if amount)
