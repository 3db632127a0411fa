"""The contributions find an instant's buckets from the zone's offset over a quarter hour
(projections/kpi/kpi_contributions.py); it must be the calendar's answer for every instant,
around every change of offset too."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.kpi.kpi_buckets import ReportingZone
from projections.kpi.kpi_contributions import _buckets

# Odd ones on purpose: half-hour DST, +12:45, +05:45, an offset of -0:44:30 until 1972.
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Paris",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "Africa/Monrovia",
]
INSTANTS = st.floats(min_value=0, max_value=7.25e9, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ZONES), INSTANTS)
def test_the_buckets_of_any_instant_are_the_calendars(name, seconds):
    zone = ReportingZone(name)
    assert _buckets(zone, seconds) == zone.buckets(seconds)


def _changes(name: str, start: int, end: int) -> list[int]:
    """The instants in [start, end) where the zone's offset changes."""
    zone, found = ZoneInfo(name), []
    offset = datetime.fromtimestamp(start, zone).utcoffset()
    for t in range(start, end, 6 * 3600):
        if datetime.fromtimestamp(t, zone).utcoffset() != offset:
            low, high = t - 6 * 3600, t
            while high - low > 1:
                middle = (low + high) // 2
                if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = datetime.fromtimestamp(t, zone).utcoffset()
    return found


def test_the_buckets_around_every_change_of_offset_are_the_calendars():
    for name in ZONES[1:]:
        zone = ReportingZone(name)
        changes = _changes(name, 0, 2_000_000_000)
        assert changes
        for change in changes:
            for delta in (-900.5, -1.0, -0.25, 0.0, 0.25, 0.999, 1.0, 899.0):
                assert _buckets(zone, change + delta) == zone.buckets(change + delta)
