"""Business calendar against a brute-force reference that walks time minute by minute.

The reference is deliberately naive: for every UTC minute it converts to the calendar's
local time and asks "is this wall-clock minute inside a window of a non-holiday day?".
Windows, offsets and instants are all whole minutes, so counting minutes is exact.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.shared_kernel.business_calendar import BusinessCalendar

# DST changes per zone, so many examples straddle one of their own zone's changes.
TRANSITIONS = {
    "Europe/London": [date(2024, 3, 31), date(2024, 10, 27), date(2025, 3, 30)],
    "America/New_York": [date(2024, 3, 10), date(2024, 11, 3), date(2025, 3, 9)],
    "Australia/Sydney": [date(2024, 4, 7), date(2024, 10, 6), date(2025, 4, 6)],
    "Australia/Lord_Howe": [date(2024, 4, 7), date(2024, 10, 6), date(2025, 4, 6)],  # 30-minute DST
    "Asia/Kolkata": [date(2024, 3, 31)],  # +05:30 all year: no change, a half-hour offset
    "UTC": [date(2024, 2, 29)],
}
ZONES = sorted(TRANSITIONS)
MINUTE = timedelta(minutes=1)
MAX_SPAN = 10 * 24 * 60  # minutes
PROPERTY = settings(max_examples=150, deadline=None, print_blob=True)

# -- the reference


def is_business(cal: BusinessCalendar, instant: datetime) -> bool:
    local = instant.astimezone(ZoneInfo(cal.timezone))
    day = local.date()
    if day in cal.holidays or (day.month, day.day) in cal.yearly_holidays:
        return False
    wall = local.time()
    return any(
        start <= wall and (end is None or wall < end) for start, end in cal.week[local.weekday()]
    )


def minute_flags(cal: BusinessCalendar, start: datetime, minutes: int) -> list[bool]:
    """flags[i]: is the minute [start + i, start + i + 1) business time?"""
    return [is_business(cal, start + i * MINUTE) for i in range(minutes)]


def brute_measure(cal: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    minutes = int((end - start) / MINUTE)
    return sum(minute_flags(cal, start, max(minutes, 0))) * MINUTE


# -- strategies

minute_of_day = st.one_of(
    st.integers(0, 96).map(lambda q: q * 15),  # quarter hours hit DST boundaries often
    st.integers(0, 1440),
)


def to_time(minute: int) -> time | None:
    return None if minute == 1440 else time(minute // 60, minute % 60)


@st.composite
def random_day(draw) -> tuple:
    points = sorted(draw(st.sets(minute_of_day, max_size=6)))
    pairs = zip(points[0::2], points[1::2], strict=False)
    return tuple((to_time(s), to_time(e)) for s, e in pairs)


PATTERNS = [
    (),
    ((time(9), time(17)),),
    ((time(9), time(12, 30)), (time(13, 30), time(17, 30))),  # lunch break
    ((time(18), None),),  # to midnight
    ((time(0), time(6)), (time(22), None)),  # night shift
    ((time(0), None),),  # all day
    ((time(1), time(3)),),  # around most DST changes
    ((time(1, 30), time(2, 30)),),
]
day_windows = st.one_of(st.sampled_from(PATTERNS), random_day())


@st.composite
def scenario(draw) -> tuple[BusinessCalendar, datetime, datetime]:
    """A random calendar and a range [start, end) of whole minutes (end may precede start).

    Most ranges hug a DST change of the calendar's zone, with both ends within two
    days of it; the others fall anywhere in 2023-2025 and span up to ten days. Holidays
    fall in the days around the start so that they matter.
    """
    zone = draw(st.sampled_from(ZONES))
    if draw(st.integers(0, 3)) > 0:
        # Changes happen between 15:00 UTC the day before (Sydney) and 07:00 UTC (New York).
        base = datetime.combine(draw(st.sampled_from(TRANSITIONS[zone])), time(), UTC)
        start = base + draw(st.integers(-48 * 60, 6 * 60)) * MINUTE
        end = base + draw(st.integers(-12 * 60, 48 * 60)) * MINUTE
    else:
        start = datetime(2023, 1, 1, tzinfo=UTC) + draw(st.integers(0, 3 * 365 * 1440)) * MINUTE
        end = start + draw(st.integers(-60, MAX_SPAN)) * MINUTE
    near = st.integers(-2, 12).map(lambda n: start.date() + timedelta(days=n))
    holidays = draw(st.frozensets(near, max_size=3))
    yearly = draw(st.frozensets(near.map(lambda d: (d.month, d.day)), max_size=2))
    week = tuple(
        draw(st.lists(day_windows, min_size=7, max_size=7).filter(any))
    )  # some working time
    return BusinessCalendar(zone, week, holidays, yearly), start, end


def shown_in_any_zone(draw, instant: datetime, cal: BusinessCalendar) -> datetime:
    """The API takes aware datetimes in any zone; vary the one callers pass."""
    zone = draw(st.sampled_from([UTC, ZoneInfo(cal.timezone), ZoneInfo("Asia/Tokyo")]))
    return instant.astimezone(zone)


# -- properties


@PROPERTY
@given(st.data())
def test_measure_matches_minute_by_minute_reference(data):
    cal, start, end = data.draw(scenario())
    got = cal.measure(
        shown_in_any_zone(data.draw, start, cal), shown_in_any_zone(data.draw, end, cal)
    )
    assert got == brute_measure(cal, start, end)


@PROPERTY
@given(st.data())
def test_add_is_the_earliest_instant_reaching_the_duration(data):
    cal, start, _ = data.draw(scenario())
    flags = minute_flags(cal, start, 4 * 1440)  # four days: a weekend and a DST change fit
    wanted = data.draw(st.integers(0, sum(flags)))  # reachable within the walked span
    duration = wanted * MINUTE

    got = cal.add(shown_in_any_zone(data.draw, start, cal), duration)

    assert got.tzinfo is UTC
    if wanted == 0:
        assert got == start
    else:
        # Reference: the end of the wanted-th business minute.
        business_minutes = [i for i, busy in enumerate(flags) if busy]
        assert got == start + (business_minutes[wanted - 1] + 1) * MINUTE
        assert cal.measure(start, got - MINUTE) < duration
    assert cal.measure(start, got) == duration


@PROPERTY
@given(st.data())
def test_measure_excluding_pauses_matches_reference(data):
    cal, start, end = data.draw(scenario())
    span = max(int((end - start) / MINUTE), 0)
    pause = st.tuples(
        st.integers(-1440, span + 1440),
        st.one_of(st.none(), st.integers(0, 4 * 1440)),  # None: still paused
    ).map(
        lambda p: (start + p[0] * MINUTE, None if p[1] is None else start + (p[0] + p[1]) * MINUTE)
    )
    pauses = data.draw(st.lists(pause, max_size=4))

    def paused(instant: datetime) -> bool:
        return any(p0 <= instant and (p1 is None or instant < p1) for p0, p1 in pauses)

    expected = (
        sum(
            1
            for i in range(span)
            if not paused(start + i * MINUTE) and is_business(cal, start + i * MINUTE)
        )
        * MINUTE
    )
    assert cal.measure_excluding(start, end, pauses) == expected


@PROPERTY
@given(st.data())
def test_measure_is_additive_at_any_instant(data):
    cal, start, _ = data.draw(scenario())
    # Cut points need not be whole minutes: microseconds must add up too.
    cuts = sorted(
        start + timedelta(microseconds=data.draw(st.integers(0, MAX_SPAN * 60_000_000)))
        for _ in range(2)
    )
    middle = data.draw(st.sampled_from(cuts))
    assert cal.measure(start, cuts[1]) == cal.measure(start, middle) + cal.measure(middle, cuts[1])


@PROPERTY
@given(st.data())
def test_spec_round_trip(data):
    cal, _, _ = data.draw(scenario())
    assert BusinessCalendar.from_dict(cal.to_dict()) == cal
