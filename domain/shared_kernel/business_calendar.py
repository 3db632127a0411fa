"""Business calendar: the working time SLA clocks run on.

A calendar is a weekly pattern of local wall-clock windows in one IANA time zone, minus
holidays (whole local days). The single rule everything follows from: an instant is
business time when its wall clock in the calendar's zone lies inside a window of a
non-holiday local date. Durations are real elapsed time, measured in UTC. Hence DST:

* spring forward: wall times in the gap never happen, so a window boundary inside the
  gap behaves as the first instant after the gap;
* fall back: the repeated hour happens twice and counts twice when inside a window.

Windows are half-open ``(start, end)`` local times, ``end=None`` meaning midnight at the
end of that day (domain/shared_kernel/calendar_spec.py checks them and writes the spec). A
window belongs to the date it starts on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.shared_kernel.calendar_spec import (
    CalendarSpec,
    MonthDay,
    Week,
    Window,
    check_date,
    check_month_day,
    check_week,
    load_zone,
    parse_spec,
    to_spec,
)

Pause = tuple[datetime, datetime | None]
# A day's windows as offsets from local midnight, (start, end), each day Monday first.
Spans = tuple[tuple[tuple[timedelta, timedelta], ...], ...]
_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)
_ZERO = timedelta(0)
# add() gives up after this long without working time; a calendar whose holidays cover
# every day would otherwise search for ever.
_MAX_IDLE = timedelta(days=800)


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str
    week: Week  # seven days, Monday first
    holidays: frozenset[date] = frozenset()
    yearly_holidays: frozenset[MonthDay] = frozenset()  # (month, day)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _spans: Spans = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Normalise to canonical immutable forms so calendars built from lists or
        # unsorted windows compare (and hash) equal to their to_dict/from_dict twins.
        _put(self, "_zone", load_zone(self.timezone))
        _put(self, "week", check_week(self.week))
        _put(self, "holidays", frozenset(check_date(d) for d in self.holidays))
        _put(self, "yearly_holidays", frozenset(check_month_day(md) for md in self.yearly_holidays))
        # Windows as offsets from local midnight: the hot loops add these to datetimes.
        _put(self, "_spans", _offsets(self.week))

    @classmethod
    def always(cls) -> BusinessCalendar:
        """24x7: UTC, every day 00:00-24:00, no holidays."""
        return cls("UTC", (((time(0), None),),) * 7)

    @classmethod
    def working_days(
        cls,
        timezone: str,
        windows: Iterable[Window],
        days: Iterable[int] = range(5),
        holidays: Iterable[date] = (),
        yearly_holidays: Iterable[MonthDay] = (),
    ) -> BusinessCalendar:
        """The same windows on each of `days` (default Monday-Friday), nothing on the others."""
        day_windows, workdays = tuple(windows), set(days)
        week = tuple(day_windows if wd in workdays else () for wd in range(7))
        return cls(timezone, week, frozenset(holidays), frozenset(yearly_holidays))

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays or (day.month, day.day) in self.yearly_holidays

    def measure(self, start: datetime, end: datetime) -> timedelta:
        """Business time in [start, end); zero when end <= start."""
        return self._measure(_utc(start, "start"), _utc(end, "end"))

    def measure_excluding(
        self, start: datetime, end: datetime, pauses: Iterable[Pause]
    ) -> timedelta:
        """Business time in [start, end) outside every pause; an open pause has end None.

        Pauses may overlap one another and stick out of [start, end) on either side.
        """
        a, b = _utc(start, "start"), _utc(end, "end")
        total, cur = _ZERO, a
        for lo, hi in sorted(_clipped(pauses, a, b)):  # count only the gaps between pauses
            if lo > cur:
                total += self._measure(cur, lo)
            cur = max(cur, hi)
        return total + self._measure(cur, b) if cur < b else total

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """Earliest instant t >= start with measure(start, t) == duration, in UTC.

        A zero duration returns start itself even outside working hours: nothing has to
        elapse. A positive one ends exactly where the last needed minute ends, e.g.
        Friday 16:00 + 1h on a 9-17 calendar is Friday 17:00, not Monday 09:00.
        """
        if duration < _ZERO:
            raise ValueError(f"duration must not be negative, got {duration}")
        a = _utc(start, "start")
        return (self._add(a, duration) if duration else a).replace(tzinfo=UTC)

    # -- internals: all datetimes below are naive; "utc" ones are UTC, "wall" ones local.

    def _add(self, a: datetime, duration: timedelta) -> datetime:
        """add() of a positive duration to UTC `a`."""
        left, busy_at = duration, a
        for lo, hi, offset in self._pieces(a, None):
            for s, e in self._wall_intervals(lo + offset, hi + offset):
                if left <= e - s:
                    return s + left - offset
                left, busy_at = left - (e - s), hi
            if hi - busy_at > _MAX_IDLE:
                raise ValueError(f"no working time for {_MAX_IDLE.days} days after {busy_at}")
        raise AssertionError("unreachable: _pieces is endless without an end")

    def _measure(self, a: datetime, b: datetime) -> timedelta:
        total = _ZERO
        for lo, hi, offset in self._pieces(a, b):
            for s, e in self._wall_intervals(lo + offset, hi + offset):
                total += e - s
        return total

    def _pieces(
        self, start: datetime, end: datetime | None
    ) -> Iterator[tuple[datetime, datetime, timedelta]]:
        """Split UTC [start, end) into runs of constant UTC offset, at most a day long.

        Within a run wall time is UTC + offset, so windows map to UTC by plain arithmetic.
        Assumes at most one offset change per day, true of every zone in the tz database.
        """
        cur, off = start, self._offset(start)
        while end is None or cur < end:
            nxt = cur + _DAY if end is None else min(cur + _DAY, end)
            nxt_off = self._offset(nxt)
            if nxt_off != off:
                nxt = self._transition(cur, nxt, off)
                nxt_off = self._offset(nxt)
            yield cur, nxt, off
            cur, off = nxt, nxt_off

    def _offset(self, utc: datetime) -> timedelta:
        offset = utc.replace(tzinfo=UTC).astimezone(self._zone).utcoffset()
        if offset is None:  # a ZoneInfo knows the offset of every instant
            raise AssertionError(f"{self.timezone} has no UTC offset at {utc}")
        return offset

    def _transition(self, lo: datetime, hi: datetime, off: timedelta) -> datetime:
        """First instant in (lo, hi] whose offset is not `off` (bisection to 1 µs)."""
        while hi - lo > _TICK:
            mid = lo + (hi - lo) / 2
            lo, hi = (mid, hi) if self._offset(mid) == off else (lo, mid)
        return hi

    def _wall_intervals(self, wa: datetime, wb: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals inside wall-clock [wa, wb), in order."""
        day = wa.date()
        midnight = datetime.combine(day, time())
        while midnight < wb:
            if not self.is_holiday(day):
                for s, e in self._spans[day.weekday()]:
                    lo, hi = max(midnight + s, wa), min(midnight + e, wb)
                    if lo < hi:
                        yield lo, hi
            day, midnight = day + _DAY, midnight + _DAY

    # -- the JSON-friendly spec carried by policy events

    def to_dict(self) -> CalendarSpec:
        return to_spec(self.timezone, self.week, self.holidays, self.yearly_holidays)

    @classmethod
    def from_dict(cls, spec: object) -> BusinessCalendar:
        """Inverse of to_dict; missing days or holiday lists mean none. Raises ValueError."""
        return cls(*parse_spec(spec))


def _put(calendar: BusinessCalendar, name: str, value: object) -> None:
    """Set a field of the frozen calendar while it is built."""
    object.__setattr__(calendar, name, value)


def _offsets(week: Week) -> Spans:
    return tuple(
        tuple((_since_midnight(s), _DAY if e is None else _since_midnight(e)) for s, e in day)
        for day in week
    )


def _clipped(pauses: Iterable[Pause], a: datetime, b: datetime) -> list[tuple[datetime, datetime]]:
    """The pauses cut to UTC [a, b), empty ones left out."""
    clipped = []
    for p0, p1 in pauses:
        lo = max(_utc(p0, "pause start"), a)
        hi = b if p1 is None else min(_utc(p1, "pause end"), b)
        if lo < hi:
            clipped.append((lo, hi))
    return clipped


def _utc(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)
