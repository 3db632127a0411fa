"""The calendar periods KPIs are reported by: days, ISO weeks from Monday and calendar
months, in a chosen time zone. They are computed here and handed to SQL, so that every
engine buckets the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month")
MAX_PERIODS = 1000


class KpiQueryError(ValueError):
    """A query the read model cannot answer as asked (unknown period, too many periods...);
    `field` names the parameter at fault."""

    def __init__(self, message: str, field: str = "period") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime

    @property
    def t0(self) -> float:
        return self.start.timestamp()

    @property
    def t1(self) -> float:
        return self.end.timestamp()


def periods(start: datetime, end: datetime, period: str = "week", tz: str = "UTC") -> list[Period]:
    """The calendar periods (in `tz`) that intersect [start, end), whole."""
    if period not in PERIODS:
        raise KpiQueryError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    zone = ZoneInfo(tz)
    day = _period_start(start.astimezone(zone).date(), period)
    result: list[Period] = []
    while (begin := _midnight(day, zone)) < end:
        following = _next_start(day, period)
        result.append(Period(_label(day, period), begin, _midnight(following, zone)))
        if len(result) > MAX_PERIODS:
            raise _too_many(period, start, end)
        day = following
    return result


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), zone)


def _period_start(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def _next_start(day: date, period: str) -> date:
    if period == "day":
        return day + timedelta(days=1)
    if period == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _label(day: date, period: str) -> str:
    return day.strftime("%Y-%m") if period == "month" else day.isoformat()


def _too_many(period: str, start: datetime, end: datetime) -> KpiQueryError:
    return KpiQueryError(
        f"more than {MAX_PERIODS} {period}s between {start.isoformat()}"
        f" and {end.isoformat()}: choose a longer period or a shorter"
        " range"
    )
