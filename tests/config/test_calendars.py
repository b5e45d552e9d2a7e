"""Business calendars: weekends, the holidays package's holidays and make-up working days,
business seconds across DST changes, and the config keys that name them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from exporter.config.calendars import (
    BusinessCalendar,
    CalendarSpec,
    make_calendar,
    weekday_numbers,
)
from exporter.config.load import parse_config
from exporter.config.schedule import DataPeriods, Granularity, make_schedule
from tests.helpers.configs import ENV, doc, group, problems_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
YEARS = (2020, 2030)
HOUR = 3600.0


def _calendar(zone: ZoneInfo = SHANGHAI, **spec: object) -> BusinessCalendar:
    return make_calendar(CalendarSpec("test", **spec), zone, YEARS)  # type: ignore[arg-type]


CN = _calendar(country="CN")
US = _calendar(
    NEW_YORK,
    country="US",
    # Sunday 2024-11-03 (25 hours: the clocks fall back) worked, Monday 2024-11-04 off.
    workdays=frozenset({date(2024, 11, 3)}),
    extra_holidays=frozenset({date(2024, 11, 4)}),
)


def _at(zone: ZoneInfo, *fields: int) -> float:
    return datetime(*fields, tzinfo=zone).timestamp()  # type: ignore[misc]


def _sh(*fields: int) -> float:
    return _at(SHANGHAI, *fields)


def _ny(*fields: int) -> float:
    return _at(NEW_YORK, *fields)


@pytest.mark.parametrize(
    ("calendar", "day", "business"),
    [
        (CN, date(2024, 9, 6), True),  # a Friday
        (CN, date(2024, 9, 7), False),  # a Saturday
        (CN, date(2024, 9, 8), False),  # a Sunday
        (CN, date(2024, 10, 1), False),  # National Day
        (CN, date(2024, 10, 7), False),  # a weekday off, swapped for 2024-10-12
        (CN, date(2024, 10, 12), True),  # the adjusted working Saturday
        (CN, date(2024, 9, 29), True),  # an adjusted working Sunday
        (CN, date(2025, 1, 29), False),  # Spring Festival
        (CN, date(2025, 2, 8), True),  # its make-up Saturday
        (US, date(2024, 11, 28), False),  # Thanksgiving
        (US, date(2024, 11, 29), True),  # the day after is a business day
        (US, date(2024, 11, 3), True),  # a configured workday on a Sunday
        (US, date(2024, 11, 4), False),  # an extra holiday
        (US, date(2024, 11, 9), False),
    ],
)
def test_business_days(calendar: BusinessCalendar, day: date, business: bool) -> None:
    assert calendar.is_business_day(day) is business


def test_a_workday_wins_over_a_holiday_and_weekends_are_configurable() -> None:
    calendar = _calendar(
        weekends=weekday_numbers(["fri", "sat"]),
        extra_holidays=frozenset({date(2024, 9, 2)}),
        workdays=frozenset({date(2024, 9, 2)}),
    )
    assert calendar.is_business_day(date(2024, 9, 2))
    assert not calendar.is_business_day(date(2024, 9, 6))  # Friday
    assert calendar.is_business_day(date(2024, 9, 8))  # Sunday


def test_a_weekend_holds_no_business_seconds() -> None:
    friday, monday = _sh(2024, 9, 6, 10), _sh(2024, 9, 9, 10)
    assert CN.business_seconds(friday, monday) == 24 * HOUR
    assert CN.business_seconds(_sh(2024, 9, 7, 1), _sh(2024, 9, 8, 23)) == 0.0
    assert CN.business_seconds(monday, friday) == -24 * HOUR


def test_national_day_holds_none_and_the_make_up_saturday_counts_whole() -> None:
    # Monday 2024-09-30 10:00 to Tuesday 2024-10-08 10:00: Oct 1-7 are off.
    assert CN.business_seconds(_sh(2024, 9, 30, 10), _sh(2024, 10, 8, 10)) == 24 * HOUR
    # Friday 2024-10-11 12:00 to Monday 2024-10-14 12:00: Saturday the 12th is worked.
    assert CN.business_seconds(_sh(2024, 10, 11, 12), _sh(2024, 10, 14, 12)) == 48 * HOUR


def test_thanksgiving_holds_none() -> None:
    assert US.business_seconds(_ny(2024, 11, 27, 18), _ny(2024, 11, 29, 6)) == 12 * HOUR


def test_a_business_day_across_the_fall_back_is_25_hours_and_a_holiday_across_it_none() -> None:
    # Friday 00:00 to Tuesday 00:00: Friday (24 h), Sunday the 3rd (worked, 25 h), Monday off.
    assert US.business_seconds(_ny(2024, 11, 1), _ny(2024, 11, 5)) == 49 * HOUR
    # Wall-clock seconds of that span: 97 hours.
    assert _ny(2024, 11, 5) - _ny(2024, 11, 1) == 97 * HOUR


def test_a_business_day_across_the_spring_forward_is_23_hours() -> None:
    calendar = _calendar(NEW_YORK, weekends=frozenset({5}))  # Saturdays only
    assert calendar.business_seconds(_ny(2024, 3, 10), _ny(2024, 3, 11)) == 23 * HOUR


def test_t_minus_one_on_monday_and_on_the_weekend_expects_friday() -> None:
    assert CN.previous_business_days(date(2024, 9, 9), 1) == date(2024, 9, 6)
    assert CN.previous_business_days(date(2024, 9, 7), 1) == date(2024, 9, 6)
    assert CN.previous_business_days(date(2024, 9, 8), 1) == date(2024, 9, 6)
    assert CN.previous_business_days(date(2024, 9, 10), 1) == date(2024, 9, 9)
    # After National Day, T-1 is the last working day before it.
    assert CN.previous_business_days(date(2024, 10, 8), 1) == date(2024, 9, 30)
    assert CN.previous_business_days(date(2024, 9, 9), 0) == date(2024, 9, 9)
    assert CN.next_business_days(date(2024, 9, 6), 1) == date(2024, 9, 9)
    assert CN.business_days_after(date(2024, 9, 6), date(2024, 9, 9)) == 1
    assert CN.business_days_after(date(2024, 9, 30), date(2024, 10, 8)) == 1
    assert CN.business_days_after(date(2024, 9, 30), date(2024, 10, 12)) == 5
    assert CN.business_days_after(date(2024, 9, 9), date(2024, 9, 6)) == 0


def test_today_is_business_day_in_the_calendars_zone() -> None:
    # 2024-09-06 17:00 UTC is Saturday 01:00 in Shanghai.
    assert not CN.today_is_business_day(datetime(2024, 9, 6, 17, tzinfo=UTC).timestamp())
    assert CN.today_is_business_day(datetime(2024, 9, 6, 15, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("calendar", [CN, US], ids=["cn", "us"])
@pytest.mark.parametrize("hours", [0.5, 1, 24, 26, 50, 73.25, 24 * 30])
def test_add_business_seconds_is_the_instant_the_business_seconds_pass(
    calendar: BusinessCalendar, hours: float
) -> None:
    starts = [_sh(2024, 9, 27, 10), _sh(2024, 9, 28, 10), _ny(2024, 11, 1, 13), _ny(2024, 11, 27)]
    for start in starts:
        instant = calendar.add_business_seconds(start, hours * HOUR)
        assert calendar.business_seconds(start, instant) == pytest.approx(hours * HOUR)
        assert calendar.business_seconds(start, instant + 1) > hours * HOUR
        # The last instant at or under it: a weekend right after it still counts as under.
        assert calendar.business_seconds(start, instant - 1) <= hours * HOUR


def test_crossing_into_a_weekend_is_the_end_of_the_weekend() -> None:
    # 14 business hours after Friday 10:00 is Friday midnight; more only from Monday 00:00.
    assert CN.add_business_seconds(_sh(2024, 9, 6, 10), 14 * HOUR) == _sh(2024, 9, 9)


def test_outside_the_covered_years_weekdays_still_count() -> None:
    # A week in 1990 and one in 2090: five business days, 24 hours each.
    assert CN.business_seconds(_sh(1990, 1, 1), _sh(1990, 1, 8)) == 5 * 24 * HOUR
    assert CN.business_seconds(_sh(2090, 1, 2), _sh(2090, 1, 9)) == 5 * 24 * HOUR
    # Across the edge, the whole covered span and the years around.
    whole = CN.business_seconds(_sh(2019, 12, 1), _sh(2031, 2, 1))
    assert whole == CN.business_seconds(_sh(2019, 12, 1), _sh(2025, 1, 1)) + CN.business_seconds(
        _sh(2025, 1, 1), _sh(2031, 2, 1)
    )


def test_the_extremes_of_time_do_not_fail() -> None:
    first = datetime(1, 1, 2, tzinfo=UTC).timestamp()
    last = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
    assert CN.business_seconds(first, last) > 0
    assert CN.add_business_seconds(last, 1e12) == float("inf")
    assert CN.business_seconds(float("-inf"), last) > 0


# --- the config keys ------------------------------------------------------------------------

CALENDARS = """\
calendars:
  cn:
    timezone: Asia/Shanghai
    holidays: {country: CN}
    extra_holidays: [2024-09-02, "2024-09-03"]
    workdays: ["2024-09-07"]
  us:
    holidays: {country: US, subdivision: NY}
    weekends: [sat, sun]
"""


def _groups(head: str, groups: str) -> dict[str, BusinessCalendar | None]:
    config = parse_config(doc(head=head, groups=groups), environ=ENV)
    return {g.name: g.calendar for g in config.groups}


def test_a_group_takes_its_calendar_or_the_defaults_one_and_empty_removes_it() -> None:
    calendars = _groups(
        CALENDARS + "defaults:\n  calendar: cn\n",
        group(name="inherits")
        + group("    calendar: us\n    schedule: {timezone: America/New_York}\n", name="own")
        + group('    calendar: ""\n', name="none"),
    )
    inherited, own = calendars["inherits"], calendars["own"]
    assert inherited is not None
    assert own is not None
    assert (inherited.name, inherited.zone) == ("cn", SHANGHAI)
    assert not inherited.is_business_day(date(2024, 9, 2))
    assert not inherited.is_business_day(date(2024, 9, 3))
    assert inherited.is_business_day(date(2024, 9, 7))
    assert not inherited.is_business_day(date(2024, 10, 1))
    # No timezone of its own: the group's schedule zone.
    assert (own.name, own.zone) == ("us", NEW_YORK)
    assert not own.is_business_day(date(2024, 11, 28))
    assert calendars["none"] is None


def test_without_a_calendar_key_a_group_has_none() -> None:
    assert _groups(CALENDARS, group()) == {"sales": None}


@pytest.mark.parametrize(
    ("head", "groups", "problem"),
    [
        (
            "calendars:\n  cn: {holidays: {country: XX}}\n",
            group(),
            "calendars.cn.holidays.country: unknown country 'XX': use an ISO 3166-1 alpha-2 "
            "code the holidays package supports, such as CN or US",
        ),
        (
            "calendars:\n  us: {holidays: {country: US, subdivision: ZZ}}\n",
            group(),
            "calendars.us.holidays.subdivision: unknown subdivision 'ZZ' of US "
            "(known: AK, AL, AR, AS, AZ, CA, CO, CT, ...)",
        ),
        (
            "calendars:\n  cn: {holidays: {country: CN, subdivision: BJ}}\n",
            group(),
            "calendars.cn.holidays.subdivision: unknown subdivision 'BJ': CN has none in holidays",
        ),
        (
            'calendars:\n  cn: {extra_holidays: [2024-10-01, "2024-13-01"]}\n',
            group(),
            "calendars.cn.extra_holidays[1]: invalid date: write it as YYYY-MM-DD, such as "
            "2024-10-01",
        ),
        (
            "calendars:\n  cn: {workdays: [20241012]}\n",
            group(),
            "calendars.cn.workdays[0]: invalid date: write it as YYYY-MM-DD, such as 2024-10-01",
        ),
        (
            "calendars:\n  cn: {weekends: [mon, tue, wed, thu, fri, sat, sun]}\n",
            group(),
            "calendars.cn.weekends: must leave at least one day of the week a business day",
        ),
        (
            "calendars:\n  cn: {timezone: Mars/Olympus}\n",
            group(),
            "calendars.cn.timezone: unknown time zone 'Mars/Olympus'; use an IANA name such as UTC",
        ),
        (
            "calendars:\n  cn: {holiday: {country: CN}}\n",
            group(),
            "calendars.cn.holiday: unknown key",
        ),
        (
            "defaults:\n  calendar: cn\n",
            group(),
            "defaults.calendar: unknown calendar 'cn'; define it under calendars",
        ),
        (
            CALENDARS,
            group("    calendar: uk\n"),
            "groups[0].calendar: unknown calendar 'uk'; define it under calendars",
        ),
    ],
)
def test_a_bad_calendar_is_one_line_naming_the_key(head: str, groups: str, problem: str) -> None:
    assert problems_of(doc(head=head, groups=groups)) == [problem]


# --- schedules on a calendar ----------------------------------------------------------------

NIGHTLY = make_schedule("30 2 * * *", SHANGHAI, HOUR, CN)
NIGHTLY_EVERY_DAY = make_schedule("30 2 * * *", SHANGHAI, HOUR)


def test_a_fire_on_a_day_off_sets_no_deadline() -> None:
    friday_deadline = _sh(2024, 9, 6, 3, 30)
    saturday = _sh(2024, 9, 7, 12)
    deadline = NIGHTLY.deadline(saturday)
    assert deadline is not None
    assert (deadline.fire, deadline.deadline) == (_sh(2024, 9, 6, 2, 30), friday_deadline)
    # Refreshed after Friday's fire: not overdue all weekend, where every day would be.
    refreshed = _sh(2024, 9, 6, 3)
    assert deadline.overdue(refreshed, saturday) == 0
    every_day = NIGHTLY_EVERY_DAY.deadline(saturday)
    assert every_day is not None
    assert every_day.overdue(refreshed, saturday) == saturday - _sh(2024, 9, 7, 3, 30)
    # Until Monday's deadline passes, Friday's stands; then Monday's.
    monday = NIGHTLY.deadline(_sh(2024, 9, 9, 3, 29))
    assert monday is not None
    assert monday.deadline == friday_deadline
    after = NIGHTLY.deadline(_sh(2024, 9, 9, 3, 30))
    assert after is not None
    assert after.deadline == _sh(2024, 9, 9, 3, 30)
    # Overdue from Monday's deadline, not Saturday's.
    assert NIGHTLY.overdue_from(refreshed) == _sh(2024, 9, 9, 3, 30)
    assert NIGHTLY_EVERY_DAY.overdue_from(refreshed) == _sh(2024, 9, 7, 3, 30)


def test_a_holiday_sets_no_deadline_and_a_make_up_saturday_does() -> None:
    # Refreshed on Monday 2024-09-30: next due on Tuesday 2024-10-08, after National Day.
    assert NIGHTLY.overdue_from(_sh(2024, 9, 30, 3)) == _sh(2024, 10, 8, 3, 30)
    during = NIGHTLY.deadline(_sh(2024, 10, 5, 12))
    assert during is not None
    assert during.deadline == _sh(2024, 9, 30, 3, 30)
    # Saturday 2024-10-12 is worked: its fire sets a deadline.
    assert NIGHTLY.overdue_from(_sh(2024, 10, 11, 3)) == _sh(2024, 10, 12, 3, 30)


def test_a_cron_that_fires_only_on_days_off_has_no_deadline() -> None:
    sundays = make_schedule("30 2 * * sun", SHANGHAI, HOUR, _calendar(country=None))
    assert sundays.deadline(_sh(2024, 9, 9, 12)) is None
    assert sundays.overdue_from(_sh(2024, 9, 9, 12)) == float("inf")


T_MINUS_1 = DataPeriods(Granularity.DAY, 86400.0, SHANGHAI, CN)


@pytest.mark.parametrize(
    ("now", "data_day", "behind"),
    [
        # T-1 on a Monday expects Friday's data; so do Saturday and Sunday.
        ((2024, 9, 9, 10), date(2024, 9, 6), 0),
        ((2024, 9, 9, 10), date(2024, 9, 5), 1),
        ((2024, 9, 7, 10), date(2024, 9, 6), 0),
        ((2024, 9, 8, 23), date(2024, 9, 6), 0),
        ((2024, 9, 8, 23), date(2024, 9, 5), 1),
        # Tuesday expects Monday's: Friday's is one business day behind, not four days.
        ((2024, 9, 10, 0, 30), date(2024, 9, 6), 1),
        # After National Day, the last working day before it; Friday's data misses that Monday
        # and the Sunday before it, a make-up working day.
        ((2024, 10, 8, 10), date(2024, 9, 30), 0),
        ((2024, 10, 8, 10), date(2024, 9, 27), 2),
        # Wednesday 2024-10-09 expects Tuesday's; Sunday 2024-09-29 was worked.
        ((2024, 10, 9, 10), date(2024, 9, 27), 3),
    ],
)
def test_data_periods_count_business_days(
    now: tuple[int, ...], data_day: date, behind: int
) -> None:
    data_time = _sh(data_day.year, data_day.month, data_day.day)
    assert T_MINUS_1.behind(data_time, _sh(*now)) == behind


def test_behind_from_is_when_the_first_business_day_is_missed() -> None:
    friday = _sh(2024, 9, 6)
    assert T_MINUS_1.behind_from(friday) == _sh(2024, 9, 10)
    # Thursday's data is behind from Saturday, when T-1 expects Friday's.
    assert T_MINUS_1.behind_from(_sh(2024, 9, 5)) == _sh(2024, 9, 7)
    assert T_MINUS_1.behind(_sh(2024, 9, 5), _sh(2024, 9, 6, 23, 59)) == 0
    late = DataPeriods(Granularity.DAY, 86400.0 + 3 * HOUR, SHANGHAI, CN)
    assert late.behind_from(friday) == _sh(2024, 9, 10, 3)
    assert late.behind(friday, _sh(2024, 9, 10, 2, 59)) == 0
    assert late.behind(friday, _sh(2024, 9, 10, 3)) == 1
    # Before National Day: missed on Wednesday 2024-10-09, when Tuesday's is expected.
    assert T_MINUS_1.behind_from(_sh(2024, 9, 30)) == _sh(2024, 10, 9)
    # Hourly periods stay on the wall clock.
    hourly = DataPeriods(Granularity.HOUR, 0.0, SHANGHAI, CN)
    assert hourly.behind(_sh(2024, 9, 7, 10), _sh(2024, 9, 7, 12)) == 2


def test_a_group_with_a_calendar_and_a_schedule_uses_it_for_both() -> None:
    (sales,) = parse_config(
        doc(
            head=CALENDARS,
            groups=group(
                "    calendar: cn\n    schedule: {refresh_cron: '30 2 * * *'}\n"
                "    data_granularity: day\n    expected_data_delay: 1d\n"
            ),
        ),
        environ=ENV,
    ).groups
    assert sales.schedule is not None
    assert sales.data_periods is not None
    assert sales.schedule.calendar is sales.calendar
    assert sales.data_periods.calendar is sales.calendar
