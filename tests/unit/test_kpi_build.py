"""A build's step (projections/kpi/kpi_build.py) counts many incidents whole at once: the
same cells, row for row, as putting each one in through the fold's diff
(`CellChanges.incident(None, view)`), in every reporting zone."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.kpi.kpi_buckets import ReportingZone, bucket_of
from projections.kpi.kpi_build import whole_rows
from projections.kpi.kpi_contributions import (
    CellChanges,
    CellRows,
    IncidentView,
    Interval,
    measures,
)

# UTC; whole-hour shifts; a half-hour shift (Lord Howe); shifts at midnight (Havana: the
# day's first hour is skipped or repeated); a +5:45 offset (Kathmandu).
ZONES = tuple(
    ReportingZone(name)
    for name in (
        "UTC",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Havana",
        "Asia/Kathmandu",
    )
)
START = datetime(2025, 3, 1, tzinfo=UTC).timestamp()  # every zone shifts within 400 days
HOUR = 3600.0


def _instant(draw: st.DrawFn) -> float:
    """An instant in the year, often at a bucket's very start in one of the zones."""
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.integers(0, 400))
    if draw(st.booleans()):
        local = datetime.fromtimestamp(START + day * 86400, zone.zone).date()
        grain = draw(st.sampled_from(("day", "week", "month")))
        return zone.start(grain, bucket_of(local, grain))
    return START + day * 86400 + draw(st.floats(0, 86399.5))


@st.composite
def views(draw: st.DrawFn) -> IncidentView:
    dims = tuple(
        draw(st.sampled_from((None, "a", "b", "c"))) for _ in range(5)
    )  # few values: incidents share cells
    names = draw(
        st.sets(st.sampled_from(("opened", "acknowledged", "resolved", "closed", "cancelled")))
    )
    moments = {
        name: (_instant(draw), measures(**{name: 1, "ack_s": draw(st.integers(0, 5)) * HOUR}))
        for name in names
    }
    ttr_s = draw(st.one_of(st.none(), st.floats(0, 90 * 86400)))
    intervals = {}
    at = _instant(draw)
    for seq in range(draw(st.integers(0, 6))):
        state = draw(st.sampled_from(("new", "in_progress", "on_hold", "resolved")))
        reason = draw(st.sampled_from((None, "caller", "vendor"))) if state == "on_hold" else None
        group = draw(st.sampled_from((None, "a", "b")))
        left = None if draw(st.integers(0, 4)) == 0 else max(at, _instant(draw))
        intervals[seq] = Interval(state, reason, group, at, left)
        at = left if left is not None else at
    return IncidentView(dims, moments, ttr_s, intervals)


def _keyed(rows: CellRows) -> dict[tuple, tuple]:
    """The rows by key (sums in another order are equal to rounding; zero: no cell), each
    value of a type the database drivers take (no numpy scalar)."""
    keyed = {}
    for table, keys in (("moments", 5), ("states", 6), ("bins", 6)):
        for row in getattr(rows, table):
            assert {type(v) for v in row} <= {str, int, float}, row
            sums = tuple(round(float(v), 6) + 0.0 for v in row[keys:])
            if any(sums):
                keyed[(table, *row[:keys])] = sums
    return keyed


@settings(max_examples=80, deadline=None)
@given(st.lists(views(), max_size=12))
def test_a_build_step_puts_in_the_rows_of_each_incident_put_in_one_by_one(incidents):
    one_by_one = CellChanges(ZONES)
    for view in incidents:
        one_by_one.incident(None, view)
    assert _keyed(whole_rows(ZONES, incidents)) == _keyed(one_by_one.rows())


def test_a_build_step_of_no_incident_writes_nothing():
    assert whole_rows(ZONES, []) == CellRows([], [], [])
