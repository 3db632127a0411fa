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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from ddsketch.mapping import LogarithmicMapping

from projections.kpi.kpi_buckets import GRAINS, ROLLED_UP, ReportingZone, month_of, step

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


def value_key(value: Any) -> str:
    """A dimension value as a key: '' for none, '=' and the text otherwise."""
    return "" if value is None else "=" + str(value)


def key_value(key: str) -> str | None:
    return key[1:] if key else None


_NO_VIEW = IncidentView((None,) * len(DIMENSIONS), {}, None, {})
_GROUP = DIMENSIONS.index("group")
_ALL = list(range(len(DIMENSIONS)))
_ROLLUPS = {grain: f"{grain}>month" for grain in ROLLED_UP}
_RUNS, _OPEN_RUNS = STATE_MEASURES.index("runs"), STATE_MEASURES.index("open_runs")
# A run in one dimension: (the value's key, first bucket, last bucket or None: still open).
Run = tuple[str, int, int | None]


@dataclass
class CellChanges:
    """The changes a batch makes to the cells, summed per cell before they are written.

    Each dimension is diffed on its own: an incident reassigned moves in the group and agent
    dimensions only. In a dimension, a moment, an interval or a state's runs is taken out and
    put back only if it changed, or if the incident's value in that dimension did (an
    interval's group is its own, so a new owner group moves the moments only)."""

    zones: tuple[ReportingZone, ...]
    moments: defaultdict[CellKey, list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0] * len(MOMENT_MEASURES))
    )
    states: defaultdict[tuple[Any, ...], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0] * len(STATE_MEASURES))
    )
    bins: defaultdict[tuple[Any, ...], int] = field(default_factory=lambda: defaultdict(int))

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
            self._moment(old, name, dims, -1, changed)
            self._moment(new, name, dims, 1, changed)
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
                        self._interval(view, interval, rekeyed, sign)
                        self._interval(view, interval, _unmoved(rekeyed), sign, entry=False)
                    else:
                        self._interval(view, interval, dims, sign)
                    if changed or interval.state not in states:
                        states[interval.state] = dims
        for state, dims in states.items():
            self._runs(old, new, state, dims)

    def _moment(
        self, view: IncidentView, name: str, dims: list[int], sign: int, changed: bool
    ) -> None:
        """The moment's measures in the dimensions; its time-to-resolve bin too, and in
        the `all` dimension (the quantiles of no dimension) when the moment itself changed."""
        entry = view.moments.get(name)
        if entry is None or not dims:
            return
        seconds, measures = entry
        values = [(DIMENSIONS[d], value_key(view.dims[d])) for d in dims]
        bin_ = ttr_bin(view.ttr_s) if name == "resolved" and view.ttr_s is not None else None
        if bin_ is not None and changed:
            for zone in self.zones:
                for grain, bucket in zip(GRAINS, _buckets(zone, seconds), strict=True):
                    self.bins[(zone.name, grain, bucket, ALL, "", bin_)] += sign
        for zone in self.zones:
            for grain, bucket in zip(GRAINS, _buckets(zone, seconds), strict=True):
                for dim, value in values:
                    cell = self.moments[(zone.name, grain, bucket, dim, value)]
                    for index, amount in measures:
                        cell[index] += sign * amount
                    if bin_ is not None:
                        self.bins[(zone.name, grain, bucket, dim, value, bin_)] += sign

    def _interval(
        self,
        view: IncidentView,
        interval: Interval,
        dims: list[int],
        sign: int,
        entry: bool = True,
    ) -> None:
        """An interval's entry and exit: +1 (-1) in `delta`, weighted by their offset."""
        if not dims:
            return
        values = [
            (DIMENSIONS[d], value_key(interval.group if d == _GROUP else view.dims[d]))
            for d in dims
        ]
        ends = [(interval.entered_s, sign, sign)] if entry else []
        if interval.left_s is not None:
            ends.append((interval.left_s, -sign, 0))
        steps = _steps(interval)
        for zone in self.zones:
            for seconds, delta, entries in ends:
                for grain, bucket in zip(GRAINS, _buckets(zone, seconds), strict=True):
                    weight = delta * (seconds - _start(zone, grain, bucket))
                    for dim, value in values:
                        for step_ in steps:
                            cell = self.states[(zone.name, grain, bucket, dim, value, step_)]
                            cell[0] += delta
                            cell[1] += weight
                            cell[2] += entries

    def _runs(self, old: IncidentView, new: IncidentView, state: str, dims: list[int]) -> None:
        """The state's runs in the dimensions: those that changed, out and in."""
        for zone in self.zones:
            olds, news = _keyed_runs(zone, old, state, dims), _keyed_runs(zone, new, state, dims)
            for grain, before, after in zip(GRAINS, olds, news, strict=True):
                for dim, run in before - after:
                    self._run(zone, grain, run, state, dim, -1)
                for dim, run in after - before:
                    self._run(zone, grain, run, state, dim, 1)

    def _run(
        self, zone: ReportingZone, grain: str, run: Run, state: str, dim: str, sign: int
    ) -> None:
        """+1 where the run starts, -1 after it ends (open: +1 in `open_runs`), in the grain
        and in its monthly rollup."""
        value, first, last = run
        marks = [(first, _RUNS if last is not None else _OPEN_RUNS, sign)]
        if last is not None:
            marks.append((last + step(grain), _RUNS, -sign))
        rollup = _ROLLUPS.get(grain)
        for bucket, column, amount in marks:
            self.states[(zone.name, grain, bucket, dim, value, state)][column] += amount
            if rollup:
                month = _month_of(grain, bucket)
                self.states[(zone.name, rollup, month, dim, value, state)][column] += amount


def _unmoved(moved: list[int]) -> list[int]:
    return [d for d in _ALL if d not in moved]


def _keyed_runs(
    zone: ReportingZone, view: IncidentView, state: str, dims: list[int]
) -> tuple[frozenset[tuple[str, Run]], ...]:
    """Per grain, the runs of buckets the incident spent time in the state, per dimension
    with its value there: per group for the group dimension, else one set of all its
    intervals."""
    intervals = tuple(
        sorted((i for i in view.intervals.values() if i.state == state), key=lambda i: i.entered_s)
    )
    return _runs_keyed(zone, intervals, tuple(dims), view.dims)


# An incident's view after one batch is its view before the next: its runs come back.
@lru_cache(maxsize=1 << 14)
def _runs_keyed(
    zone: ReportingZone,
    intervals: tuple[Interval, ...],
    dims: tuple[int, ...],
    values: tuple[Any, ...],
) -> tuple[frozenset[tuple[str, Run]], ...]:
    spans = [_span(zone, interval) for interval in intervals]
    keyed: list[set[tuple[str, Run]]] = [set() for _ in GRAINS]
    shared = [d for d in dims if d != _GROUP]
    if shared:
        for g, runs in enumerate(_grain_runs(spans)):
            for d in shared:
                value = value_key(values[d])
                keyed[g].update((DIMENSIONS[d], (value, first, last)) for first, last in runs)
    if _GROUP in dims:
        by_group: dict[str | None, list[Span]] = defaultdict(list)
        for interval, span in zip(intervals, spans, strict=True):
            by_group[interval.group].append(span)
        for group, own in by_group.items():
            value = value_key(group)
            for g, runs in enumerate(_grain_runs(own)):
                keyed[g].update(("group", (value, first, last)) for first, last in runs)
    return tuple(frozenset(k) for k in keyed)


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


def _grain_runs(spans: list[Span]) -> list[list[tuple[int, int | None]]]:
    """Per grain, the maximal runs of buckets of the spans (sorted by entry)."""
    return [_runs([(span[0][g], span[1][g]) for span in spans]) for g in range(len(GRAINS))]


def _steps(interval: Interval) -> tuple[str, ...]:
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


# The same instants come back again and again (each event's, every dimension): cached.
@lru_cache(maxsize=1 << 16)
def _buckets(zone: ReportingZone, seconds: float) -> tuple[int, int, int]:
    return zone.buckets(seconds)


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
