"""Business calendar: the working time SLA clocks run on.

A calendar is a weekly pattern of local wall-clock windows in one IANA time zone, minus
holidays (whole local days). The single rule everything follows from: an instant is
business time when its wall clock in the calendar's zone lies inside a window of a
non-holiday local date. Durations are real elapsed time, measured in UTC. Hence DST:

* spring forward: wall times in the gap never happen, so a window boundary inside the
  gap behaves as the first instant after the gap;
* fall back: the repeated hour happens twice and counts twice when inside a window.

Windows are half-open ``(start, end)`` local times. ``end=None`` means midnight at the
end of that day (24:00, written "24:00" in a spec); ``time(0)`` is refused as an end so
there is one spelling. A window belongs to the date it starts on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Window = tuple[time, time | None]
Pause = tuple[datetime, datetime | None]
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIDNIGHT = "24:00"
_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)
_ZERO = timedelta(0)
# add() gives up after this long without working time; a calendar whose holidays cover
# every day would otherwise search for ever.
_MAX_IDLE = timedelta(days=800)


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str
    week: tuple[tuple[Window, ...], ...]  # seven days, Monday first
    holidays: frozenset[date] = frozenset()
    yearly_holidays: frozenset[tuple[int, int]] = frozenset()  # (month, day)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _spans: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Normalise to canonical immutable forms so calendars built from lists or
        # unsorted windows compare (and hash) equal to their to_dict/from_dict twins.
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        put("_zone", _load_zone(self.timezone))
        put("week", _check_week(self.week))
        put("holidays", frozenset(_check_date(d) for d in self.holidays))
        put("yearly_holidays", frozenset(_check_month_day(md) for md in self.yearly_holidays))
        # Windows as offsets from local midnight: the hot loops add these to datetimes.
        put(
            "_spans",
            tuple(
                tuple(
                    (_since_midnight(s), _DAY if e is None else _since_midnight(e)) for s, e in day
                )
                for day in self.week
            ),
        )

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
        yearly_holidays: Iterable[tuple[int, int]] = (),
    ) -> BusinessCalendar:
        """The same windows on each of `days` (default Monday-Friday), nothing on the others."""
        windows, days = tuple(windows), set(days)
        week = tuple(windows if wd in days else () for wd in range(7))
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
        clipped = []
        for p0, p1 in pauses:
            lo = max(_utc(p0, "pause start"), a)
            hi = b if p1 is None else min(_utc(p1, "pause end"), b)
            if lo < hi:
                clipped.append((lo, hi))
        total, cur = _ZERO, a
        for lo, hi in sorted(clipped):  # sweep: count only the gaps between merged pauses
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
        if not duration:
            return a.replace(tzinfo=UTC)
        left, busy_at = duration, a
        for lo, hi, offset in self._pieces(a, None):
            for s, e in self._wall_intervals(lo + offset, hi + offset):
                if left <= e - s:
                    return (s + left - offset).replace(tzinfo=UTC)
                left, busy_at = left - (e - s), hi
            if hi - busy_at > _MAX_IDLE:
                raise ValueError(f"no working time for {_MAX_IDLE.days} days after {busy_at}")
        raise AssertionError("unreachable: _pieces is endless without an end")

    # -- internals: all datetimes below are naive; "utc" ones are UTC, "wall" ones local.

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
        return utc.replace(tzinfo=UTC).astimezone(self._zone).utcoffset()

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "week": {
                name: [[_fmt(s), _fmt_end(e)] for s, e in windows]
                for name, windows in zip(DAY_NAMES, self.week, strict=True)
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
            "yearly_holidays": [f"{m:02d}-{d:02d}" for m, d in sorted(self.yearly_holidays)],
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> BusinessCalendar:
        """Inverse of to_dict; missing days or holiday lists mean none. Raises ValueError."""
        if not isinstance(spec, dict):
            raise ValueError(f"calendar spec must be a dict, got {type(spec).__name__}")
        _no_unknown_keys("calendar spec", spec, {"timezone", "week", "holidays", "yearly_holidays"})
        if "timezone" not in spec or "week" not in spec:
            raise ValueError("calendar spec needs 'timezone' and 'week'")
        week_spec = spec["week"]
        if not isinstance(week_spec, dict):
            raise ValueError("'week' must map day names (mon..sun) to lists of [start, end]")
        _no_unknown_keys("week", week_spec, set(DAY_NAMES))
        week = tuple(
            tuple(_parse_window(name, w) for w in _listed(name, week_spec.get(name, [])))
            for name in DAY_NAMES
        )
        holidays = frozenset(_parse_date(d) for d in _listed("holidays", spec.get("holidays", [])))
        yearly = frozenset(
            _parse_month_day(md)
            for md in _listed("yearly_holidays", spec.get("yearly_holidays", []))
        )
        return cls(spec["timezone"], week, holidays, yearly)


def _utc(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValueError(f"unknown timezone {name!r}") from None


def _check_week(week: Iterable[Iterable[Window]]) -> tuple[tuple[Window, ...], ...]:
    days = tuple(week)
    if len(days) != 7:
        raise ValueError(f"week needs 7 days of windows (Monday first), got {len(days)}")
    checked = tuple(
        _check_day(name, windows) for name, windows in zip(DAY_NAMES, days, strict=True)
    )
    if not any(checked):
        # No deadline could ever be computed; refuse it where the policy is defined.
        raise ValueError("week has no working windows at all")
    return checked


def _check_day(name: str, windows: Iterable[Window]) -> tuple[Window, ...]:
    checked = []
    for window in windows:
        if not isinstance(window, (tuple, list)) or len(window) != 2:
            raise ValueError(f"{name}: a window is a (start, end) pair, got {window!r}")
        start, end = window
        if not isinstance(start, time) or start.tzinfo is not None:
            raise ValueError(f"{name}: window start must be a naive time, got {start!r}")
        if end is not None and (not isinstance(end, time) or end.tzinfo is not None):
            raise ValueError(
                f"{name}: window end must be a naive time or None (midnight), got {end!r}"
            )
        if end is not None and end <= start:
            hint = "; write midnight as None (24:00 in a spec)" if end == time(0) else ""
            raise ValueError(f"{name}: window end {end} is not after start {start}{hint}")
        checked.append((start, end))
    checked.sort(key=lambda w: w[0])
    for (s1, e1), (s2, e2) in zip(checked, checked[1:], strict=False):
        if e1 is None or s2 < e1:
            raise ValueError(
                f"{name}: windows {_fmt(s1)}-{_fmt_end(e1)} and {_fmt(s2)}-{_fmt_end(e2)} overlap"
            )
    return tuple(checked)


def _check_date(day: date) -> date:
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ValueError(f"holiday must be a date, got {day!r}")
    return day


def _check_month_day(pair: tuple[int, int]) -> tuple[int, int]:
    try:
        month, day = pair
        date(2000, month, day)  # a leap year, so 29 February is a valid yearly holiday
    except (TypeError, ValueError):
        raise ValueError(f"bad yearly holiday {pair!r}, expected (month, day)") from None
    return month, day


def _no_unknown_keys(what: str, given: dict, known: set[str]) -> None:
    unknown = set(given) - known
    if unknown:
        raise ValueError(
            f"{what}: unknown keys {sorted(map(str, unknown))}, expected {sorted(known)}"
        )


def _listed(what: str, value: Any) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{what}: expected a list, got {value!r}")
    return value


def _parse_window(day: str, window: Any) -> Window:
    if not isinstance(window, (list, tuple)) or len(window) != 2:
        raise ValueError(f"{day}: a window is [start, end], got {window!r}")
    start, end = window
    if start == MIDNIGHT:
        raise ValueError(f"{day}: a window cannot start at 24:00")
    return _parse_time(day, start), None if end == MIDNIGHT else _parse_time(day, end)


def _parse_time(day: str, text: Any) -> time:
    try:
        parsed = time.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{day}: bad time {text!r}, expected HH:MM") from None
    if parsed.tzinfo is not None:
        raise ValueError(
            f"{day}: time {text!r} must not carry an offset; the calendar's zone applies"
        )
    return parsed


def _parse_date(text: Any) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"bad holiday date {text!r}, expected YYYY-MM-DD") from None


def _parse_month_day(text: Any) -> tuple[int, int]:
    try:
        month, day = (int(part) for part in text.split("-"))
    except (AttributeError, ValueError):
        raise ValueError(f"bad yearly holiday {text!r}, expected MM-DD") from None
    return _check_month_day((month, day))


def _fmt(t: time) -> str:
    # HH:MM for the usual case; seconds only when present, so the round trip stays exact.
    return t.strftime("%H:%M") if not (t.second or t.microsecond) else t.isoformat()


def _fmt_end(t: time | None) -> str:
    return MIDNIGHT if t is None else _fmt(t)
