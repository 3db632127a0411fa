"""The buckets KPI cells are kept in: days, ISO weeks from Monday and calendar months of one
reporting zone, numbered so that consecutive buckets are consecutive integers (months) or
differ by the grain's step (days: a date's ordinal; weeks: their Monday's ordinal).

A bucket is [its local midnight, the next one): the same periods as the query's
(projections/kpi/kpi_periods.py), so a period of a reporting zone is exactly one bucket.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

GRAINS = ("day", "week", "month")
# Rollups, so that a prefix reads years, then months, then buckets, not every bucket: the
# runs of days and weeks are also summed per month (`day>month`, `week>month`, by the month a
# bucket starts in), the runs of every grain and the months' state deltas per year
# (`day>year`, `week>year`, `month>year`, by the year of that month).
MONTHLY = {"day": "day>month", "week": "week>month"}
YEARLY = {grain: f"{grain}>year" for grain in GRAINS}


def month_key(day: date) -> int:
    return day.year * 12 + day.month - 1


def year_of(month: int) -> int:
    """The year of a month key (a year's rollup bucket)."""
    return month // 12


def month_first(key: int) -> date:
    return date(key // 12, key % 12 + 1, 1)


# A tuple, not a dataclass: the fold's caches are keyed by the zone, and a tuple hashes and
# compares in C.
class ReportingZone(NamedTuple):
    name: str

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.name)

    def local_day(self, seconds: float) -> date:
        return datetime.fromtimestamp(seconds, self.zone).date()

    def start(self, grain: str, bucket: int) -> float:
        """The bucket's first instant, in epoch seconds."""
        return datetime.combine(
            first_day(grain, bucket), datetime.min.time(), self.zone
        ).timestamp()

    def buckets(self, seconds: float) -> tuple[int, int, int]:
        """The day, week and month the instant falls in."""
        day = self.local_day(seconds)
        return bucket_of(day, "day"), bucket_of(day, "week"), bucket_of(day, "month")

    def last_overlapped(self, grain: str, seconds: float) -> int:
        """The last bucket an interval ending at `seconds` (excluded) has time in."""
        bucket = bucket_of(self.local_day(seconds), grain)
        return bucket - step(grain) if self.start(grain, bucket) == seconds else bucket


def bucket_of(day: date, grain: str) -> int:
    if grain == "day":
        return day.toordinal()
    if grain == "week":
        return day.toordinal() - day.weekday()
    return month_key(day)


def first_day(grain: str, bucket: int) -> date:
    return month_first(bucket) if grain == "month" else date.fromordinal(bucket)


def step(grain: str) -> int:
    return 7 if grain == "week" else 1


def month_of(grain: str, bucket: int) -> int:
    """The month a bucket starts in (its rollup)."""
    return bucket if grain == "month" else month_key(first_day(grain, bucket))


def month_buckets(grain: str, month: int) -> tuple[int, int]:
    """[first, last + 1): the buckets of `grain` (day or week) that start in the month."""
    return _first_starting(grain, month), _first_starting(grain, month + 1)


def _first_starting(grain: str, month: int) -> int:
    first = month_first(month)
    return first.toordinal() + ((-first.weekday()) % 7 if grain == "week" else 0)


def month_floor(grain: str, bucket: int) -> int:
    """The first bucket of `grain` that starts in the month `bucket` starts in."""
    if grain == "month":
        return bucket
    first = month_first(month_of(grain, bucket))
    if grain == "day":
        return first.toordinal()
    return first.toordinal() + (-first.weekday()) % 7


def label(grain: str, bucket: int) -> str:
    day = first_day(grain, bucket)
    return day.strftime("%Y-%m") if grain == "month" else day.isoformat()


def bucket_of_label(grain: str, text: str) -> int:
    if grain == "month":
        return month_key(date.fromisoformat(text + "-01"))
    return date.fromisoformat(text).toordinal()


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
