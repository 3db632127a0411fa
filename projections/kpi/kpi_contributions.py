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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from ddsketch.mapping import LogarithmicMapping

from projections.kpi.kpi_buckets import GRAINS, ROLLED_UP, ReportingZone, month_of, step

# The relative accuracy of the time-to-resolve quantiles (docs/kpis.md).
RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
DIMENSIONS = ("group", "category", "priority", "service", "agent")
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


@dataclass
class CellChanges:
    """The changes a batch makes to the cells, summed per cell before they are written."""

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
        if before is None or after is None or before.dims != after.dims:
            for view, sign in ((before, -1), (after, 1)):
                if view is not None:
                    self._whole(view, sign)
            return
        for moment in before.moments.keys() | after.moments.keys():
            if before.moments.get(moment) != after.moments.get(moment):
                self._moment(before, moment, -1)
                self._moment(after, moment, 1)
        for state in self._changed_intervals(before, after):
            self._runs(before, state, -1)
            self._runs(after, state, 1)

    def _whole(self, view: IncidentView, sign: int) -> None:
        for moment in view.moments:
            self._moment(view, moment, sign)
        for interval in view.intervals.values():
            self._interval(view.dims, interval, sign)
        for state in {i.state for i in view.intervals.values()}:
            self._runs(view, state, sign)

    def _changed_intervals(self, before: IncidentView, after: IncidentView) -> set[str]:
        states = set()
        for seq in before.intervals.keys() | after.intervals.keys():
            old, new = before.intervals.get(seq), after.intervals.get(seq)
            if old == new:
                continue
            for interval, sign in ((old, -1), (new, 1)):
                if interval is not None:
                    self._interval(before.dims, interval, sign)
                    states.add(interval.state)
        return states

    def _moment(self, view: IncidentView, moment: str, sign: int) -> None:
        entry = view.moments.get(moment)
        if entry is None:
            return
        seconds, measures = entry
        values = [value_key(v) for v in view.dims]
        bin_ = ttr_bin(view.ttr_s) if moment == "resolved" and view.ttr_s is not None else None
        for zone in self.zones:
            for grain, bucket in zip(GRAINS, zone.buckets(seconds), strict=True):
                for dim, value in zip(DIMENSIONS, values, strict=True):
                    cell = self.moments[(zone.name, grain, bucket, dim, value)]
                    for index, amount in measures:
                        cell[index] += sign * amount
                    if bin_ is not None:
                        self.bins[(zone.name, grain, bucket, dim, value, bin_)] += sign

    def _interval(self, dims: tuple[Any, ...], interval: Interval, sign: int) -> None:
        values = _interval_values(dims, interval.group)
        steps = _steps(interval)
        ends = [(interval.entered_s, 1)]
        if interval.left_s is not None:
            ends.append((interval.left_s, -1))
        for zone in self.zones:
            for seconds, delta in ends:
                for grain, bucket in zip(GRAINS, zone.buckets(seconds), strict=True):
                    offset = seconds - _start(zone, grain, bucket)
                    change = (sign * delta, sign * delta * offset, sign * (delta > 0), 0, 0)
                    self._add_states(zone.name, grain, bucket, values, steps, change)

    def _add_states(
        self,
        zone: str,
        grain: str,
        bucket: int,
        values: Iterable[tuple[str, str]],
        steps: Iterable[str],
        change: tuple[float, ...],
    ) -> None:
        for dim, value in values:
            for step_ in steps:
                cell = self.states[(zone, grain, bucket, dim, value, step_)]
                for index, amount in enumerate(change):
                    cell[index] += amount

    def _runs(self, view: IncidentView, state: str, sign: int) -> None:
        intervals = sorted(
            (i for i in view.intervals.values() if i.state == state), key=lambda i: i.entered_s
        )
        by_group: dict[str | None, list[Interval]] = defaultdict(list)
        for interval in intervals:
            by_group[interval.group].append(interval)
        for zone in self.zones:
            for grain in GRAINS:
                shared = [
                    (d, value_key(v))
                    for d, v in zip(DIMENSIONS, view.dims, strict=True)
                    if d != "group"
                ]
                self._add_runs(zone, grain, _runs(zone, grain, intervals), shared, state, sign)
                for group, own in by_group.items():
                    values = [("group", value_key(group))]
                    self._add_runs(zone, grain, _runs(zone, grain, own), values, state, sign)

    def _add_runs(
        self,
        zone: ReportingZone,
        grain: str,
        runs: list[tuple[int, int | None]],
        values: list[tuple[str, str]],
        state: str,
        sign: int,
    ) -> None:
        for first, last in runs:
            marks = [(first, 3 if last is not None else 4, sign)]
            if last is not None:
                marks.append((last + step(grain), 3, -sign))
            for bucket, column, amount in marks:
                change = [0.0] * len(STATE_MEASURES)
                change[column] = amount
                self._add_states(zone.name, grain, bucket, values, (state,), tuple(change))
                if grain in ROLLED_UP:
                    rollup = month_of(grain, bucket)
                    self._add_states(
                        zone.name, f"{grain}>month", rollup, values, (state,), tuple(change)
                    )


def _interval_values(dims: tuple[Any, ...], group: str | None) -> list[tuple[str, str]]:
    """The dimension values of an interval: the group holding it then, the incident's others."""
    return [
        (dim, value_key(group if dim == "group" else value))
        for dim, value in zip(DIMENSIONS, dims, strict=True)
    ]


def _steps(interval: Interval) -> tuple[str, ...]:
    if interval.state == "on_hold":
        return ("on_hold", f"on_hold:{interval.hold_reason or ''}")
    return (interval.state,)


def _runs(
    zone: ReportingZone, grain: str, intervals: list[Interval]
) -> list[tuple[int, int | None]]:
    """The maximal runs of buckets with time in the intervals (sorted by entry); the last
    bucket is None for a run still open."""
    runs: list[tuple[int, int | None]] = []
    for interval in intervals:
        first = zone.buckets(interval.entered_s)[GRAINS.index(grain)]
        last = None if interval.left_s is None else zone.last_overlapped(grain, interval.left_s)
        if last is not None and last < first:
            continue  # no time at all, at a bucket boundary
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


@lru_cache(maxsize=65536)
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
