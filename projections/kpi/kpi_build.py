"""A build's step: the whole contributions of many incidents at once, as the cells' rows.

The rows are those of `CellChanges.incident(None, view)` for each incident, then
`CellChanges.rows()` (projections/kpi/kpi_contributions.py says what the cells mean; the
rebuild tests hold the two to the same rows). They are found column by column: the
incidents' moments, interval ends and runs in flat arrays, fanned out to their dimensions,
buckets and rollups, and summed per cell by sorting. A rebuild counts every incident so;
one dict update per part of every incident, in Python, cost it more than folding the facts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from projections.kpi.kpi_buckets import GRAINS, MONTHLY, YEARLY, ReportingZone, bucket_of, step
from projections.kpi.kpi_contributions import (
    ALL,
    DIMENSIONS,
    EPOCH_DAY,
    MOMENT_MEASURES,
    SLOT,
    CellRows,
    IncidentView,
    Interval,
    slot_offset,
    steps_of,
    ttr_bin,
    value_key,
)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

# The grains and rollups, by their index in the arrays.
_LEVELS = (*GRAINS, *MONTHLY.values(), *YEARLY.values())
_DAY, _WEEK, _MONTH = (_LEVELS.index(grain) for grain in GRAINS)
_YEAR_OF_MONTHS = _LEVELS.index(YEARLY["month"])
_DIMS = (*DIMENSIONS, ALL)
_GROUP = DIMENSIONS.index("group")
_ALL = list(range(len(DIMENSIONS)))
_OTHERS = [d for d in _ALL if d != _GROUP]  # an interval's group is its own
_NO_BIN = np.iinfo(np.int64).min
# The last bucket of a span still open: after every bucket.
_OPEN = 1 << 40


class _Codes(dict[str, int]):
    """Texts as consecutive integers (their order in the dict), and back."""

    def of(self, text: str) -> int:
        code = self.get(text)
        if code is None:
            code = self[text] = len(self)
        return code


@dataclass
class _Flat:
    """The incidents' parts as columns: their values per dimension (codes), their moments
    and their intervals (by incident, then entry)."""

    values: Ints  # [incident, dimension]
    moment_of: Ints  # the incident
    moment_s: Floats
    moment_measures: Floats  # [moment, MOMENT_MEASURES]
    moment_bin: Ints  # the time-to-resolve bin of a first resolution, else _NO_BIN
    interval_of: Ints
    entered_s: Floats
    left_s: Floats  # NaN: still open
    state: Ints  # the step codes: the state, and an on-hold reason's step (else -1)
    reason: Ints
    group: Ints  # the interval's own group (a value code)


def whole_rows(zones: Sequence[ReportingZone], views: Sequence[IncidentView]) -> CellRows:
    """The rows the incidents' whole contributions add to the cells."""
    values, steps = _Codes(), _Codes()
    flat = _flatten(views, values, steps)
    none = values.of("")  # the `all` dimension's one value
    rows = CellRows([], [], [])
    texts = _Texts(list(values), list(steps))
    for zone in zones:
        calendar = _Calendar(zone)
        rows.moments.extend(texts.rows(zone.name, *_moments(flat, calendar)))
        rows.states.extend(texts.rows(zone.name, *_states(flat, calendar), steps=True))
        rows.bins.extend(texts.rows(zone.name, *_bins(flat, calendar, none), bins=True))
    return rows


def _flatten(views: Sequence[IncidentView], values: _Codes, steps: _Codes) -> _Flat:
    dims = [[values.of(value_key(value)) for value in view.dims] for view in views]
    return _Flat(
        np.array(dims, dtype=np.int64).reshape(len(views), len(DIMENSIONS)),
        *(*_moment_columns(views), *_interval_columns(views, values, steps)),
    )


def _moment_columns(views: Sequence[IncidentView]) -> tuple[Ints, Floats, Floats, Ints]:
    """Each moment's incident, instant, measures and time-to-resolve bin."""
    of: list[int] = []
    seconds: list[float] = []
    bins: list[int] = []
    at: tuple[list[int], list[int], list[float]] = ([], [], [])  # moment, measure, amount
    for i, view in enumerate(views):
        for name, (instant, measures) in view.moments.items():
            for index, amount in measures:
                at[0].append(len(seconds))
                at[1].append(index)
                at[2].append(amount)
            ttr_s = view.ttr_s if name == "resolved" else None
            bins.append(_NO_BIN if ttr_s is None else ttr_bin(ttr_s))
            of.append(i)
            seconds.append(instant)
    table = np.zeros((len(seconds), len(MOMENT_MEASURES)))
    np.add.at(table, (_ints(at[0]), _ints(at[1])), at[2])  # as CellChanges adds them
    return _ints(of), np.array(seconds, dtype=np.float64), table, _ints(bins)


def _interval_columns(
    views: Sequence[IncidentView], values: _Codes, steps: _Codes
) -> tuple[Ints, Floats, Floats, Ints, Ints, Ints]:
    """Each interval's incident, entry, exit (NaN: open), state, on-hold reason's step
    (-1: none) and group, by incident and entry."""
    rows = [
        (i, interval.entered_s, _or_nan(interval.left_s), *_steps(interval, steps))
        + (values.of(value_key(interval.group)),)
        for i, view in enumerate(views)
        for interval in sorted(view.intervals.values(), key=_entry)
    ]
    of, entered, left, state, reason, group = list(zip(*rows, strict=True)) or [()] * 6
    floats = np.array(entered, dtype=np.float64), np.array(left, dtype=np.float64)
    return _ints(of), *floats, _ints(state), _ints(reason), _ints(group)


def _steps(interval: Interval, steps: _Codes) -> tuple[int, int]:
    names = steps_of(interval)
    return steps.of(names[0]), steps.of(names[1]) if len(names) > 1 else -1


def _entry(interval: Interval) -> float:
    return interval.entered_s


def _ints(items: Sequence[int]) -> Ints:
    return np.array(items, dtype=np.int64)


class _Calendar:
    """A reporting zone's buckets of many instants at once (kpi_contributions._buckets, by
    the zone's offset per quarter hour) and of many days (their weeks, months, starts)."""

    def __init__(self, zone: ReportingZone) -> None:
        self.zone = zone

    def days(self, seconds: Floats) -> Ints:
        offsets = _per_value(
            np.floor_divide(seconds, SLOT).astype(np.int64),
            lambda slot: _or_nan(slot_offset(self.zone, slot)),
            np.float64,
        )
        days: Ints = np.floor_divide(seconds + np.nan_to_num(offsets), 86400.0).astype(np.int64)
        days += EPOCH_DAY
        odd = np.flatnonzero(np.isnan(offsets))  # the zone's offset changes in the quarter
        days[odd] = [bucket_of(self.zone.local_day(float(seconds[k])), "day") for k in odd]
        return days

    def weeks(self, days: Ints) -> Ints:
        weeks: Ints = days - (days - 1) % 7  # ordinal 1 was a Monday
        return weeks

    def months(self, days: Ints) -> Ints:
        return _per_value(days, lambda day: bucket_of(date.fromordinal(day), "month"), np.int64)

    def starts(self, level: int, buckets: Ints) -> Floats:
        grain = _LEVELS[level]
        return _per_value(buckets, lambda bucket: self.zone.start(grain, bucket), np.float64)


def _or_nan(offset: float | None) -> float:
    return float("nan") if offset is None else offset


def _per_value(keys: Ints, of: Callable[[int], Any], dtype: type) -> npt.NDArray[Any]:
    """`of` of each key, called once per distinct key."""
    distinct, inverse = np.unique(keys, return_inverse=True)
    return np.array([of(int(key)) for key in distinct], dtype=dtype)[inverse]


def _moments(flat: _Flat, calendar: _Calendar) -> tuple[list[Ints], Floats]:
    """The moments' measures per day, dimension and value, then per week and month."""
    days = calendar.days(flat.moment_s)
    dims = len(DIMENSIONS)
    keys = [
        np.tile(days, dims),
        np.repeat(np.arange(dims), len(days)),
        flat.values[flat.moment_of].T.reshape(-1),
    ]
    day_keys, sums = _sum_by(keys, np.tile(flat.moment_measures, (dims, 1)))
    return _widened(calendar, day_keys, sums)


def _bins(flat: _Flat, calendar: _Calendar, none: int) -> tuple[list[Ints], Floats]:
    """The first resolutions per day, dimension (`all` too) and value, and bin."""
    resolved = np.flatnonzero(flat.moment_bin != _NO_BIN)
    days = calendar.days(flat.moment_s[resolved])
    values = flat.values[flat.moment_of[resolved]]
    dims = len(_DIMS)
    keys = [
        np.tile(days, dims),
        np.repeat(np.arange(dims), len(days)),
        np.concatenate([values.T.reshape(-1), np.full(len(days), none)]),
        np.tile(flat.moment_bin[resolved], dims),
    ]
    day_keys, sums = _sum_by(keys, np.ones((len(keys[0]), 1)))
    return _widened(calendar, day_keys, sums)


def _widened(calendar: _Calendar, keys: list[Ints], sums: Floats) -> tuple[list[Ints], Floats]:
    """Day cells (day, then the rest of the key) in their weeks and months too, summed."""
    days, rest = keys[0], keys[1:]
    levels = np.repeat(np.array([_DAY, _WEEK, _MONTH]), len(days))
    buckets = np.concatenate([days, calendar.weeks(days), calendar.months(days)])
    widened = [levels, buckets, *(np.tile(column, 3) for column in rest)]
    return _sum_by(widened, np.tile(sums, (3, 1)))


def _states(flat: _Flat, calendar: _Calendar) -> tuple[list[Ints], Floats]:
    """The state cells: the interval ends and the runs, in every grain and rollup."""
    ends_keys, ends = _ends(flat, calendar)
    runs_keys, runs = _all_runs(flat, calendar)
    keys = [np.concatenate(pair) for pair in zip(ends_keys, runs_keys, strict=True)]
    return _sum_by(keys, np.concatenate([ends, runs]))


def _ends(flat: _Flat, calendar: _Calendar) -> tuple[list[Ints], Floats]:
    """Each interval's entry (+1 delta and entered) and exit (-1 delta), weighted by their
    offset from the day's start, per day, step, dimension and value; then in the week and
    month of the day (weighted from their start) and the year of its month (delta only)."""
    closed = np.flatnonzero(~np.isnan(flat.left_s))
    which = np.concatenate([np.arange(len(flat.entered_s)), closed])
    seconds = np.concatenate([flat.entered_s, flat.left_s[closed]])
    delta = np.concatenate([np.ones(len(flat.entered_s)), -np.ones(len(closed))])
    days = calendar.days(seconds)
    weight = delta * (seconds - calendar.starts(_DAY, days))
    measures = np.stack([delta, weight, np.maximum(delta, 0)], axis=1)
    # Each end under the interval's state, and under an on-hold reason's step too.
    reasons = np.flatnonzero(flat.reason[which] >= 0)
    rows = np.concatenate([np.arange(len(which)), reasons])
    steps = np.concatenate([flat.state[which], flat.reason[which][reasons]])
    fanned = _under_dimensions(flat, which[rows], [days[rows], steps], measures[rows], _ALL)
    return _ends_in_grains(calendar, *_sum_by(*fanned))


def _ends_in_grains(
    calendar: _Calendar, keys: list[Ints], sums: Floats
) -> tuple[list[Ints], Floats]:
    """Day cells of interval ends (day, step, dimension, value) in every grain, keyed as
    state cells (level, bucket, dimension, value, step), with STATE_MEASURES."""
    days, steps, dims, values = keys
    weeks, months = calendar.weeks(days), calendar.months(days)
    day_starts = calendar.starts(_DAY, days)
    delta, weight, entered = sums.T
    zero = np.zeros(len(days))
    parts = [
        (_DAY, days, weight, entered),
        (_WEEK, weeks, weight + delta * (day_starts - calendar.starts(_WEEK, weeks)), entered),
        (_MONTH, months, weight + delta * (day_starts - calendar.starts(_MONTH, months)), entered),
        (_YEAR_OF_MONTHS, months // 12, zero, zero),
    ]
    widened = [
        np.repeat(np.array([level for level, *_ in parts]), len(days)),
        np.concatenate([buckets for _, buckets, *_ in parts]),
        *(np.tile(column, len(parts)) for column in (dims, values, steps)),
    ]
    sums = np.concatenate([np.stack([delta, w, e, zero, zero], axis=1) for _, _, w, e in parts])
    return widened, sums


def _under_dimensions(
    flat: _Flat, intervals: Ints, keys: list[Ints], measures: Floats, dims: list[int]
) -> tuple[list[Ints], Floats]:
    """Rows of intervals under each dimension's value (the group: the interval's own):
    the keys, then the dimension and the value."""
    values = flat.values[flat.interval_of[intervals]]  # a copy
    values[:, _GROUP] = flat.group[intervals]
    fanned = [np.tile(key, len(dims)) for key in keys]
    fanned.append(np.repeat(np.array(dims, dtype=np.int64), len(intervals)))
    fanned.append(values[:, dims].T.reshape(-1))
    return fanned, np.tile(measures, (len(dims), 1))


def _all_runs(flat: _Flat, calendar: _Calendar) -> tuple[list[Ints], Floats]:
    """The runs of each incident's intervals in a state, per grain: over all of them for
    every dimension but the group's, over those of each group for the group's; their marks
    in the grain's bucket, its month's and its year's rollups."""
    spans = _spans(flat, calendar)
    states = len(flat.state) and int(flat.state.max()) + 1
    shared = flat.interval_of * states + flat.state
    own = shared * (int(flat.group.max(initial=0)) + 1) + flat.group
    parts = []
    for partition, dims in ((shared, _OTHERS), (own, [_GROUP])):
        for g, grain in enumerate(GRAINS):
            marks = _runs(partition, *spans[g], step(grain))
            parts.append(_run_cells(flat, calendar, g, marks, dims))
    keys = [np.concatenate([part[0][k] for part in parts]) for k in range(5)]
    return keys, np.concatenate([part[1] for part in parts])


def _spans(flat: _Flat, calendar: _Calendar) -> list[tuple[Ints, Ints]]:
    """Per grain, each interval's first bucket with time in it and its last (_OPEN: still
    open; left at a bucket's very start: the bucket before)."""
    entered = calendar.days(flat.entered_s)
    closed = np.flatnonzero(~np.isnan(flat.left_s))
    left_s = flat.left_s[closed]
    left = calendar.days(left_s)
    spans = []
    for level, of in ((_DAY, _same), (_WEEK, calendar.weeks), (_MONTH, calendar.months)):
        lefts = of(left)
        at_start = calendar.starts(level, lefts) == left_s
        last = np.full(len(entered), _OPEN, dtype=np.int64)
        last[closed] = lefts - np.where(at_start, step(GRAINS[level]), 0)
        spans.append((of(entered), last))
    return spans


def _same(days: Ints) -> Ints:
    return days


def _runs(partition: Ints, first: Ints, last: Ints, step_: int) -> tuple[Ints, Ints, Floats]:
    """The maximal runs of the spans of each partition (`kpi_contributions._runs`), as
    marks: +1 in runs where one starts and -1 after it ends, +1 in open runs where one still
    open starts. Returns each mark's interval (one of its run's), bucket and measures."""
    kept = np.flatnonzero(last >= first)  # else no time at all (open: _OPEN, after any)
    kept = kept[np.argsort(partition[kept], kind="stable")]  # by entry in each partition
    part, first, last = partition[kept], first[kept], last[kept]
    if not len(kept):
        return kept, kept, np.zeros((0, 5))
    # Open spans end just after the latest bucket here, so that a partition's rank times
    # `width` plus a last bucket stays far within int64.
    after = int(max(first.max(), last[last != _OPEN].max(initial=0))) + 1
    last = np.where(last == _OPEN, after, last)
    width = after + 1
    starts_segment = np.concatenate([[True], part[1:] != part[:-1]])
    rank = np.cumsum(starts_segment) - 1
    # The latest last bucket before each span in its partition: a span after it starts a run.
    latest = np.maximum.accumulate(rank * width + last)
    before = np.concatenate([[0], latest[:-1] - rank[1:] * width])
    starts = np.flatnonzero(starts_segment | (first > before))
    run_last = np.maximum.reduceat(last, starts)
    run_first, run_of = first[starts], kept[starts]
    open_ = run_last == after
    ended = np.flatnonzero(~open_)
    which = np.concatenate([run_of, run_of[ended]])
    buckets = np.concatenate([run_first, run_last[ended] + step_])
    measures = np.zeros((len(which), 5))
    measures[: len(starts), 3] = np.where(open_, 0, 1)
    measures[: len(starts), 4] = np.where(open_, 1, 0)
    measures[len(starts) :, 3] = -1
    return which, buckets, measures


def _run_cells(
    flat: _Flat,
    calendar: _Calendar,
    grain: int,
    marks: tuple[Ints, Ints, Floats],
    dims: list[int],
) -> tuple[list[Ints], Floats]:
    """Run marks (`_runs`) under the dimensions' values (the state as the step), summed,
    then in their grain, their month's rollup (days, weeks) and their year's."""
    which, buckets, measures = marks
    fanned = _under_dimensions(flat, which, [buckets, flat.state[which]], measures, dims)
    (buckets, states, dims_, values), sums = _sum_by(*fanned)
    name = GRAINS[grain]
    months = buckets if name == "month" else calendar.months(buckets)
    levels = [(_LEVELS.index(name), buckets), (_LEVELS.index(YEARLY[name]), months // 12)]
    if name in MONTHLY:
        levels.append((_LEVELS.index(MONTHLY[name]), months))
    widened = [
        np.repeat(np.array([level for level, _ in levels]), len(buckets)),
        np.concatenate([at for _, at in levels]),
        *(np.tile(column, len(levels)) for column in (dims_, values, states)),
    ]
    return widened, np.tile(sums, (len(levels), 1))


def _sum_by(keys: list[Ints], measures: Floats) -> tuple[list[Ints], Floats]:
    """The distinct keys (a row across the columns) and the measures summed per key."""
    if not len(keys[0]):
        return keys, measures
    code = np.zeros(len(keys[0]), dtype=np.int64)
    span = 1
    for column in keys:
        low, width = int(column.min()), int(column.max()) - int(column.min()) + 1
        span *= width
        code = code * width + (column - low)
    if span >= 1 << 62:  # too wide for one integer: the columns side by side
        _, first, inverse = np.unique(
            np.stack(keys, axis=1), axis=0, return_index=True, return_inverse=True
        )
    else:
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    sums: Floats = np.stack(
        [np.bincount(inverse, measures[:, m], len(first)) for m in range(measures.shape[1])],
        axis=1,
    )
    return [column[first] for column in keys], sums


@dataclass
class _Texts:
    """Codes back to the texts the rows hold."""

    values: list[str]
    steps: list[str]

    def rows(
        self,
        zone: str,
        keys: list[Ints],
        sums: Floats,
        steps: bool = False,
        bins: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Rows (zone, grain, bucket, dimension, value[, step or bin], measures...) of the
        cells that hold something."""
        held = np.flatnonzero(np.any(sums != 0, axis=1))
        levels, buckets, dims, values, *extra = (column[held].tolist() for column in keys)
        measures = sums[held]
        columns: list[list[Any]] = [
            [zone] * len(held),
            [_LEVELS[level] for level in levels],
            buckets,
            [_DIMS[dim] for dim in dims],
            [self.values[value] for value in values],
        ]
        if steps:
            columns.append([self.steps[code] for code in extra[0]])
        if bins:
            columns.append(extra[0])
            columns.append([round(count) for count in measures[:, 0].tolist()])
        else:
            columns.extend(measures.T.tolist())
        return list(zip(*columns, strict=True))
