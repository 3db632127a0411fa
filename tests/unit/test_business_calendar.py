"""Business calendar examples: office hours, breaks, holidays, 24x7, DST and the spec format."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.shared_kernel.business_calendar import BusinessCalendar

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)
M = timedelta(minutes=1)


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def every_day(timezone: str, *windows) -> BusinessCalendar:
    return BusinessCalendar.working_days(timezone, windows, days=range(7))


OFFICE = BusinessCalendar.working_days("Europe/London", [(time(9), time(17))])


# -- office hours: 9-17 Monday to Friday, London


def test_friday_afternoon_plus_two_hours_is_monday_ten():
    assert OFFICE.add(london(2024, 6, 7, 16), 2 * H) == london(2024, 6, 10, 10)


def test_add_returns_utc():
    result = OFFICE.add(london(2024, 6, 7, 16), 2 * H)
    assert result.tzinfo is UTC and result == utc(2024, 6, 10, 9)


def test_add_ends_at_closing_time_rather_than_next_opening():
    assert OFFICE.add(london(2024, 6, 7, 16), H) == london(2024, 6, 7, 17)


def test_add_from_before_opening_starts_counting_at_opening():
    assert OFFICE.add(london(2024, 6, 10, 6), 30 * M) == london(2024, 6, 10, 9, 30)


def test_add_zero_returns_start_even_outside_hours():
    saturday = london(2024, 6, 8, 12)
    assert OFFICE.add(saturday, timedelta(0)) == saturday


def test_measure_over_a_weekend_counts_only_working_hours():
    assert OFFICE.measure(london(2024, 6, 7, 16), london(2024, 6, 10, 10)) == 2 * H


def test_measure_whole_week_is_forty_hours():
    assert OFFICE.measure(london(2024, 6, 10), london(2024, 6, 17)) == 40 * H


def test_measure_accepts_any_timezone():
    assert OFFICE.measure(utc(2024, 6, 10, 8), datetime(2024, 6, 10, 12, tzinfo=NEW_YORK)) == 8 * H


def test_half_hour_offset_kolkata():
    cal = BusinessCalendar.working_days("Asia/Kolkata", [(time(9), time(17))])
    assert (
        cal.measure(utc(2024, 6, 10, 3), utc(2024, 6, 10, 12)) == 8 * H
    )  # 08:30-17:30 IST covers the whole 09:00-17:00 window
    assert cal.add(utc(2024, 6, 10), H) == utc(2024, 6, 10, 4, 30)


def test_measure_backwards_is_zero():
    assert OFFICE.measure(london(2024, 6, 10, 12), london(2024, 6, 10, 10)) == timedelta(0)


def test_measure_a_year_and_add_a_thousand_hours_are_fast():
    import time as clock

    begun = clock.perf_counter()
    assert OFFICE.measure(utc(2024, 1, 1), utc(2025, 1, 1)) == 262 * 8 * H  # 262 weekdays in 2024
    target = OFFICE.add(utc(2024, 1, 1), 1000 * H)
    elapsed = clock.perf_counter() - begun
    assert OFFICE.measure(utc(2024, 1, 1), target) == 1000 * H
    assert elapsed < 0.1  # about 3 ms on a quiet machine; slack for shared CI cores


# -- several windows a day, and windows to midnight


LUNCH = BusinessCalendar.working_days(
    "Europe/London", [(time(9), time(12, 30)), (time(13, 30), time(17))]
)


def test_lunch_break_is_not_counted():
    assert LUNCH.measure(london(2024, 6, 10, 9), london(2024, 6, 10, 17)) == 7 * H


def test_add_skips_the_lunch_break():
    assert LUNCH.add(london(2024, 6, 10, 11), 2 * H) == london(2024, 6, 10, 14)


EVENINGS = BusinessCalendar.working_days("Europe/London", [(time(18), None)])


def test_window_to_midnight_counts_up_to_midnight():
    assert EVENINGS.measure(london(2024, 6, 10, 20), london(2024, 6, 11, 2)) == 4 * H


def test_add_across_midnight_window_end():
    assert EVENINGS.add(london(2024, 6, 10, 23), 2 * H) == london(2024, 6, 11, 19)


def test_add_reaching_exactly_midnight_returns_midnight():
    assert EVENINGS.add(london(2024, 6, 10, 23), H) == london(2024, 6, 11, 0)


def test_night_shift_is_two_windows_across_midnight():
    nights = every_day("Europe/London", (time(0), time(6)), (time(22), None))
    assert nights.measure(london(2024, 6, 10, 21), london(2024, 6, 11, 7)) == 8 * H


# -- holidays are whole local days


def test_fixed_holiday_is_skipped():
    cal = BusinessCalendar.working_days(
        "Europe/London", [(time(9), time(17))], holidays=[date(2024, 5, 6)]
    )
    assert cal.add(london(2024, 5, 3, 16), 2 * H) == london(2024, 5, 7, 10)


CHRISTMAS = BusinessCalendar.working_days(
    "Europe/London", [(time(9), time(17))], yearly_holidays=[(12, 25), (12, 26)]
)


def test_christmas_is_skipped_in_2024():
    assert CHRISTMAS.add(london(2024, 12, 24, 16), 2 * H) == london(2024, 12, 27, 10)


def test_christmas_recurs_every_year():
    # 2025: Christmas Thursday, Boxing Day Friday, then the weekend.
    assert CHRISTMAS.add(london(2025, 12, 24, 16), 2 * H) == london(2025, 12, 29, 10)


def test_holiday_is_the_local_day_not_the_utc_day():
    cal = BusinessCalendar(
        "America/New_York", (((time(0), None),),) * 7, holidays=frozenset({date(2024, 7, 4)})
    )
    # UTC 4 July 00:00 is 3 July 20:00 in New York: 4h on the 3rd, the 4th is off, 8h on the 5th.
    assert cal.measure(utc(2024, 7, 4), utc(2024, 7, 5, 12)) == 12 * H


def test_leap_day_yearly_holiday_only_applies_in_leap_years():
    cal = BusinessCalendar.working_days(
        "UTC", [(time(0), None)], days=range(7), yearly_holidays=[(2, 29)]
    )
    assert cal.measure(utc(2024, 2, 28), utc(2024, 3, 1)) == 24 * H
    assert cal.measure(utc(2023, 2, 28), utc(2023, 3, 1)) == 24 * H


# -- 24x7


def test_always_counts_every_instant():
    assert BusinessCalendar.always().measure(utc(2024, 1, 1), utc(2025, 1, 1)) == timedelta(
        days=366
    )


def test_always_adds_plain_elapsed_time_across_dst():
    # Real time, not wall clock: 24h after Saturday noon GMT is Sunday 13:00 BST.
    assert BusinessCalendar.always().add(london(2024, 3, 30, 12), 24 * H) == london(2024, 3, 31, 13)


# -- DST, Europe/London: 31 March 2024 01:00 GMT -> 02:00 BST; 27 October 02:00 BST -> 01:00 GMT


def test_london_spring_forward_day_is_23_hours():
    assert (
        every_day("Europe/London", (time(0), None)).measure(london(2024, 3, 31), london(2024, 4, 1))
        == 23 * H
    )


def test_london_office_hours_across_spring_forward():
    assert OFFICE.add(london(2024, 3, 29, 16), 2 * H) == utc(2024, 4, 1, 9)  # Monday 10:00 BST


def test_london_window_starting_in_the_gap_starts_after_the_gap():
    cal = every_day("Europe/London", (time(1, 30), time(3)))
    # 01:30 does not exist on 31 March: the window runs 02:00 BST (01:00Z) to 03:00 BST.
    assert cal.measure(utc(2024, 3, 31), utc(2024, 3, 31, 12)) == H
    assert cal.add(utc(2024, 3, 31), 30 * M) == utc(2024, 3, 31, 1, 30)


def test_london_fall_back_repeated_hour_counts_twice():
    cal = every_day("Europe/London", (time(0), time(3)))
    assert cal.measure(london(2024, 10, 27), london(2024, 10, 27, 3)) == 4 * H


def test_london_window_inside_repeated_hour_happens_twice():
    cal = every_day("Europe/London", (time(1), time(1, 30)))
    # 01:00-01:30 BST is 00:00-00:30Z, 01:00-01:30 GMT is 01:00-01:30Z.
    assert cal.measure(utc(2024, 10, 26, 12), utc(2024, 10, 27, 12)) == H
    assert cal.add(utc(2024, 10, 26, 12), 45 * M) == utc(2024, 10, 27, 1, 15)


def test_london_fall_back_day_is_25_hours():
    assert (
        every_day("Europe/London", (time(0), None)).measure(
            london(2024, 10, 27), london(2024, 10, 28)
        )
        == 25 * H
    )


# -- DST, America/New_York: 10 March 2024 02:00 EST -> 03:00 EDT; 3 November 02:00 EDT -> 01:00 EST


def test_new_york_spring_forward_window_loses_the_missing_hour():
    cal = every_day("America/New_York", (time(1), time(4)))
    # 01:00 EST is 06:00Z, 04:00 EDT is 08:00Z.
    assert cal.measure(utc(2024, 3, 10), utc(2024, 3, 10, 12)) == 2 * H
    assert cal.add(utc(2024, 3, 10, 6), 90 * M) == utc(2024, 3, 10, 7, 30)  # 03:30 EDT


def test_new_york_window_entirely_in_the_gap_is_empty():
    cal = every_day("America/New_York", (time(2), time(3)))
    assert cal.measure(utc(2024, 3, 10), utc(2024, 3, 11)) == timedelta(0)
    assert cal.add(utc(2024, 3, 10), 30 * M) == utc(2024, 3, 11, 6, 30)  # Monday 02:30 EDT


def test_new_york_night_shift_across_spring_forward():
    nights = every_day("America/New_York", (time(0), time(6)), (time(22), None))
    start = datetime(2024, 3, 9, 22, tzinfo=NEW_YORK)  # 03:00Z
    assert nights.measure(start, datetime(2024, 3, 10, 6, tzinfo=NEW_YORK)) == 7 * H
    assert nights.add(start, 7 * H) == utc(2024, 3, 10, 10)  # 06:00 EDT


def test_new_york_night_shift_across_fall_back():
    nights = every_day("America/New_York", (time(0), time(6)), (time(22), None))
    start = datetime(2024, 11, 2, 22, tzinfo=NEW_YORK)  # 02:00Z
    assert nights.measure(start, datetime(2024, 11, 3, 6, tzinfo=NEW_YORK)) == 9 * H
    assert nights.add(start, 8 * H) == utc(2024, 11, 3, 10)  # 05:00 EST


def test_lord_howe_half_hour_fall_back_day_is_24_and_a_half_hours():
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    cal = every_day("Australia/Lord_Howe", (time(0), None))
    day = datetime(2024, 4, 7, tzinfo=lord_howe), datetime(2024, 4, 8, tzinfo=lord_howe)
    assert cal.measure(*day) == 24 * H + 30 * M


# -- pauses (on hold)


def test_pause_over_the_weekend_removes_only_its_working_hours():
    pause = (london(2024, 6, 7, 16), london(2024, 6, 10, 10))
    assert (
        OFFICE.measure_excluding(london(2024, 6, 7, 9), london(2024, 6, 10, 17), [pause]) == 14 * H
    )


def test_overlapping_and_open_pauses():
    pauses = [
        (london(2024, 6, 10, 10), london(2024, 6, 10, 12)),
        (london(2024, 6, 10, 11), london(2024, 6, 10, 13)),  # overlaps the first
        (london(2024, 6, 11, 16), None),  # still on hold
    ]
    got = OFFICE.measure_excluding(london(2024, 6, 10, 9), london(2024, 6, 12, 9), pauses)
    assert got == 16 * H - 3 * H - H


def test_pauses_outside_the_range_are_ignored():
    pauses = [(london(2024, 6, 1), london(2024, 6, 2)), (london(2024, 6, 20), None)]
    assert (
        OFFICE.measure_excluding(london(2024, 6, 10, 9), london(2024, 6, 10, 17), pauses) == 8 * H
    )


# -- the spec dict carried by policy events


FULL = BusinessCalendar(
    "Europe/London",
    (
        ((time(9), time(12, 30)), (time(13, 30), time(17, 30))),
        ((time(9), time(17)),),
        ((time(0), time(6)), (time(22), None)),
        (),
        ((time(8, 15, 30), time(16)),),
        ((time(10), None),),
        (),
    ),
    holidays=frozenset({date(2024, 5, 6), date(2024, 8, 26)}),
    yearly_holidays=frozenset({(12, 25), (1, 1), (2, 29)}),
)


def test_spec_round_trip_is_exact():
    assert BusinessCalendar.from_dict(FULL.to_dict()) == FULL


def test_spec_survives_json():
    assert BusinessCalendar.from_dict(json.loads(json.dumps(FULL.to_dict()))) == FULL


def test_spec_format():
    spec = FULL.to_dict()
    assert spec["timezone"] == "Europe/London"
    assert spec["week"]["mon"] == [["09:00", "12:30"], ["13:30", "17:30"]]
    assert spec["week"]["wed"] == [["00:00", "06:00"], ["22:00", "24:00"]]
    assert spec["week"]["fri"] == [["08:15:30", "16:00"]]
    assert spec["week"]["sun"] == []
    assert spec["holidays"] == ["2024-05-06", "2024-08-26"]
    assert spec["yearly_holidays"] == ["01-01", "02-29", "12-25"]


def test_equal_however_built_and_hashable():
    listed = BusinessCalendar(
        "UTC", [[(time(13), time(17)), (time(9), time(12))]] * 7, {date(2024, 1, 2)}, {(12, 25)}
    )
    from_spec = BusinessCalendar.from_dict(
        {
            "timezone": "UTC",
            "week": {
                d: [["09:00", "12:00"], ["13:00", "17:00"]]
                for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            },
            "holidays": ["2024-01-02"],
            "yearly_holidays": ["12-25"],
        }
    )
    assert listed == from_spec and hash(listed) == hash(from_spec)


def test_always_round_trips():
    assert (
        BusinessCalendar.from_dict(BusinessCalendar.always().to_dict()) == BusinessCalendar.always()
    )


def test_missing_days_and_holidays_mean_none():
    cal = BusinessCalendar.from_dict({"timezone": "UTC", "week": {"mon": [["09:00", "17:00"]]}})
    assert cal == BusinessCalendar.working_days("UTC", [(time(9), time(17))], days=[0])


def spec(**changes):
    base = {"timezone": "Europe/London", "week": {"mon": [["09:00", "17:00"]]}}
    base.update(changes)
    return base


@pytest.mark.parametrize(
    "bad, message",
    [
        (spec(timezone="Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (spec(timezone=""), "unknown timezone"),
        (
            spec(week={"mon": [["17:00", "09:00"]]}),
            "mon: window end 09:00:00 is not after start 17:00:00",
        ),
        (spec(week={"tue": [["09:00", "09:00"]]}), "not after start"),
        (
            spec(week={"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}),
            "mon: windows 09:00-13:00 and 12:00-17:00 overlap",
        ),
        (spec(week={"mon": [["20:00", "24:00"], ["21:00", "22:00"]]}), "overlap"),
        (spec(week={"mon": [["24:00", "24:00"]]}), "cannot start at 24:00"),
        (spec(week={"mon": [["9am", "17:00"]]}), "mon: bad time '9am', expected HH:MM"),
        (spec(week={"mon": [["25:00", "26:00"]]}), "bad time '25:00'"),
        (spec(week={"mon": [["09:00+01:00", "17:00"]]}), "must not carry an offset"),
        (spec(week={"mon": [["09:00"]]}), "a window is [start, end]"),
        (spec(week={"monday": [["09:00", "17:00"]]}), "week: unknown keys ['monday']"),
        (spec(week=[]), "'week' must map day names"),
        (spec(week={"mon": "09:00-17:00"}), "mon: expected a list"),
        (spec(week={}), "week has no working windows at all"),
        (spec(holidays="2024-12-25"), "holidays: expected a list"),
        (spec(yearly_holidays=None), "yearly_holidays: expected a list"),
        (spec(holidays=["2024-02-30"]), "bad holiday date '2024-02-30', expected YYYY-MM-DD"),
        (spec(holidays=["tomorrow"]), "bad holiday date"),
        (spec(yearly_holidays=["02-30"]), "bad yearly holiday (2, 30), expected (month, day)"),
        (spec(yearly_holidays=["13-01"]), "bad yearly holiday"),
        (spec(yearly_holidays=["Christmas"]), "bad yearly holiday 'Christmas', expected MM-DD"),
        (spec(colour="blue"), "unknown keys ['colour']"),
        ({"week": {}}, "needs 'timezone' and 'week'"),
    ],
)
def test_spec_validation(bad, message):
    with pytest.raises(ValueError) as raised:
        BusinessCalendar.from_dict(bad)
    assert message in str(raised.value)


def test_constructor_validation():
    with pytest.raises(ValueError, match="write midnight as None"):
        BusinessCalendar.working_days("UTC", [(time(18), time(0))])
    with pytest.raises(ValueError, match="week needs 7 days"):
        BusinessCalendar("UTC", (((time(9), time(17)),),) * 5)
    with pytest.raises(ValueError, match="holiday must be a date"):
        BusinessCalendar.working_days("UTC", [(time(9), time(17))], holidays=[datetime(2024, 1, 1)])
    with pytest.raises(ValueError, match="unknown timezone"):
        BusinessCalendar("Europe/Londres", BusinessCalendar.always().week)
    with pytest.raises(ValueError, match=r"mon: a window is a \(start, end\) pair"):
        BusinessCalendar.working_days("UTC", [(time(9),)])
    with pytest.raises(ValueError, match=r"bad yearly holiday \(12,\), expected \(month, day\)"):
        BusinessCalendar.working_days("UTC", [(time(9), time(17))], yearly_holidays=[(12,)])


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="start must be a timezone-aware datetime"):
        OFFICE.measure(datetime(2024, 6, 10, 9), utc(2024, 6, 10, 17))
    with pytest.raises(ValueError, match="pause end must be a timezone-aware"):
        OFFICE.measure_excluding(
            utc(2024, 6, 10), utc(2024, 6, 11), [(utc(2024, 6, 10), datetime(2024, 6, 11))]
        )


def test_negative_duration_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        OFFICE.add(utc(2024, 6, 10), -H)


def test_add_gives_up_when_every_day_is_a_holiday():
    every_date = {(d.month, d.day) for d in (date(2000, 1, 1) + timedelta(n) for n in range(366))}
    cal = BusinessCalendar.working_days("UTC", [(time(9), time(17))], yearly_holidays=every_date)
    with pytest.raises(ValueError, match="no working time for 800 days"):
        cal.add(utc(2024, 1, 1), H)


def test_a_calendar_without_any_window_is_refused():
    with pytest.raises(ValueError, match="week has no working windows at all"):
        BusinessCalendar("UTC", ((),) * 7)
