"""A business calendar's parts: checked as a calendar is built, and written as the
JSON-friendly spec that policy events carry (domain/shared_kernel/business_calendar.py).

Windows are half-open ``(start, end)`` local times. ``end=None`` means midnight at the
end of that day (24:00, written "24:00" in a spec); ``time(0)`` is refused as an end so
there is one spelling.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from typing import TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Window = tuple[time, time | None]
Week = tuple[tuple[Window, ...], ...]  # seven days, Monday first
MonthDay = tuple[int, int]
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIDNIGHT = "24:00"
_SPEC_KEYS = {"timezone", "week", "holidays", "yearly_holidays"}


class CalendarSpec(TypedDict):
    """A calendar as plain JSON data: its zone, windows per day name, and holidays."""

    timezone: str
    week: dict[str, list[list[str]]]  # day name: [[start, end], ...], "HH:MM"
    holidays: list[str]  # YYYY-MM-DD
    yearly_holidays: list[str]  # MM-DD


# -- the parts of a calendar, checked ---------------------------------------------------------


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValueError(f"unknown timezone {name!r}") from None


def check_week(week: Iterable[Iterable[Window]]) -> Week:
    days = tuple(week)
    if len(days) != 7:
        raise ValueError(f"week needs 7 days of windows (Monday first), got {len(days)}")
    checked = tuple(check_day(name, windows) for name, windows in zip(DAY_NAMES, days, strict=True))
    if not any(checked):
        # No deadline could ever be computed; refuse it where the policy is defined.
        raise ValueError("week has no working windows at all")
    return checked


def check_day(name: str, windows: Iterable[Window]) -> tuple[Window, ...]:
    """The day's windows, in order of their start; they may not overlap."""
    checked = sorted((_check_window(name, window) for window in windows), key=lambda w: w[0])
    _check_no_overlap(name, checked)
    return tuple(checked)


def _check_window(name: str, window: Window) -> Window:
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise ValueError(f"{name}: a window is a (start, end) pair, got {window!r}")
    start, end = window
    if not _naive_time(start):
        raise ValueError(f"{name}: window start must be a naive time, got {start!r}")
    if end is not None and not _naive_time(end):
        raise ValueError(f"{name}: window end must be a naive time or None (midnight), got {end!r}")
    if end is not None and end <= start:
        raise ValueError(f"{name}: window end {end} is not after start {start}{_hint(end)}")
    return start, end


def _naive_time(value: object) -> bool:
    return isinstance(value, time) and value.tzinfo is None


def _hint(end: time) -> str:
    return "; write midnight as None (24:00 in a spec)" if end == time(0) else ""


def _check_no_overlap(name: str, windows: list[Window]) -> None:
    for (s1, e1), (s2, e2) in zip(windows, windows[1:], strict=False):
        if e1 is None or s2 < e1:
            raise ValueError(
                f"{name}: windows {_fmt(s1)}-{_fmt_end(e1)} and {_fmt(s2)}-{_fmt_end(e2)} overlap"
            )


def check_date(day: date) -> date:
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ValueError(f"holiday must be a date, got {day!r}")
    return day


def check_month_day(pair: MonthDay) -> MonthDay:
    try:
        month, day = pair
        date(2000, month, day)  # a leap year, so 29 February is a valid yearly holiday
    except (TypeError, ValueError):
        raise ValueError(f"bad yearly holiday {pair!r}, expected (month, day)") from None
    return month, day


# -- the spec ------------------------------------------------------------------------------------


def to_spec(
    timezone: str, week: Week, holidays: Iterable[date], yearly_holidays: Iterable[MonthDay]
) -> CalendarSpec:
    return {
        "timezone": timezone,
        "week": {
            name: [[_fmt(s), _fmt_end(e)] for s, e in windows]
            for name, windows in zip(DAY_NAMES, week, strict=True)
        },
        "holidays": sorted(d.isoformat() for d in holidays),
        "yearly_holidays": [f"{m:02d}-{d:02d}" for m, d in sorted(yearly_holidays)],
    }


def parse_spec(spec: object) -> tuple[str, Week, frozenset[date], frozenset[MonthDay]]:
    """(timezone, week, holidays, yearly holidays) of a spec; missing days or holiday lists
    mean none. Raises ValueError."""
    if not isinstance(spec, dict):
        raise ValueError(f"calendar spec must be a dict, got {type(spec).__name__}")
    _no_unknown_keys("calendar spec", spec, _SPEC_KEYS)
    if "timezone" not in spec or "week" not in spec:
        raise ValueError("calendar spec needs 'timezone' and 'week'")
    week = _parse_week(spec["week"])
    holidays = frozenset(_parse_date(d) for d in _listed("holidays", spec.get("holidays", [])))
    yearly = frozenset(
        _parse_month_day(md) for md in _listed("yearly_holidays", spec.get("yearly_holidays", []))
    )
    return spec["timezone"], week, holidays, yearly


def _parse_week(week_spec: object) -> Week:
    if not isinstance(week_spec, dict):
        raise ValueError("'week' must map day names (mon..sun) to lists of [start, end]")
    _no_unknown_keys("week", week_spec, set(DAY_NAMES))
    return tuple(
        tuple(_parse_window(name, w) for w in _listed(name, week_spec.get(name, [])))
        for name in DAY_NAMES
    )


def _no_unknown_keys(what: str, given: Iterable[object], known: set[str]) -> None:
    unknown = set(given) - known
    if unknown:
        raise ValueError(
            f"{what}: unknown keys {sorted(map(str, unknown))}, expected {sorted(known)}"
        )


def _listed(what: str, value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"{what}: expected a list, got {value!r}")
    return value


def _parse_window(day: str, window: object) -> Window:
    if not isinstance(window, (list, tuple)) or len(window) != 2:
        raise ValueError(f"{day}: a window is [start, end], got {window!r}")
    start, end = window
    if start == MIDNIGHT:
        raise ValueError(f"{day}: a window cannot start at 24:00")
    return _parse_time(day, start), None if end == MIDNIGHT else _parse_time(day, end)


def _parse_time(day: str, text: object) -> time:
    try:
        parsed = time.fromisoformat(_text(text))
    except (TypeError, ValueError):
        raise ValueError(f"{day}: bad time {text!r}, expected HH:MM") from None
    if parsed.tzinfo is not None:
        raise ValueError(
            f"{day}: time {text!r} must not carry an offset; the calendar's zone applies"
        )
    return parsed


def _parse_date(text: object) -> date:
    try:
        return date.fromisoformat(_text(text))
    except (TypeError, ValueError):
        raise ValueError(f"bad holiday date {text!r}, expected YYYY-MM-DD") from None


def _parse_month_day(text: object) -> MonthDay:
    try:
        month, day = (int(part) for part in _text(text).split("-"))
    except (TypeError, ValueError):
        raise ValueError(f"bad yearly holiday {text!r}, expected MM-DD") from None
    return check_month_day((month, day))


def _text(value: object) -> str:
    """A spec's value that must be text; TypeError, as the parsers raise, if it is not."""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _fmt(t: time) -> str:
    # HH:MM for the usual case; seconds only when present, so the round trip stays exact.
    return t.strftime("%H:%M") if not (t.second or t.microsecond) else t.isoformat()


def _fmt_end(t: time | None) -> str:
    return MIDNIGHT if t is None else _fmt(t)
