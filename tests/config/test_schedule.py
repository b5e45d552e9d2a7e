"""Refresh deadlines from cron expressions and data periods behind, at fixed times."""

from __future__ import annotations

import bisect
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from exporter.config.cron import first_fire, last_fire, next_fire, parse_crontab
from exporter.config.schedule import (
    DataPeriods,
    Deadline,
    Granularity,
    Schedule,
    make_schedule,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR = 3600.0
DAY = 86400.0


def at(zone: ZoneInfo, *fields: int, fold: int = 0) -> float:
    """A wall-clock time in ``zone`` as Unix time."""
    return datetime(*fields, tzinfo=zone, fold=fold).timestamp()  # type: ignore[misc]


def utc(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()  # type: ignore[misc]


def fresh(schedule: Schedule) -> Schedule:
    """The same schedule without the shared cache, for a computation from scratch."""
    return Schedule(schedule.refresh_cron, schedule.zone, schedule.grace, schedule.crontab)


# --- deadlines ---------------------------------------------------------------------------------


def test_the_deadline_is_the_last_fire_plus_grace_that_has_passed() -> None:
    schedule = fresh(make_schedule("30 2 * * *", SHANGHAI, HOUR))
    yesterday = Deadline(at(SHANGHAI, 2024, 9, 1, 2, 30), at(SHANGHAI, 2024, 9, 1, 3, 30))
    today = Deadline(at(SHANGHAI, 2024, 9, 2, 2, 30), at(SHANGHAI, 2024, 9, 2, 3, 30))

    # After today's fire but inside its grace, yesterday's deadline is the last one passed.
    assert schedule.deadline(at(SHANGHAI, 2024, 9, 2, 3, 0)) == yesterday
    assert schedule.deadline(at(SHANGHAI, 2024, 9, 2, 3, 29, 59)) == yesterday
    assert schedule.deadline(at(SHANGHAI, 2024, 9, 2, 3, 30)) == today
    assert schedule.deadline(at(SHANGHAI, 2024, 9, 2, 23, 59)) == today


def test_a_grace_longer_than_the_cron_spacing_belongs_to_an_older_fire() -> None:
    schedule = fresh(make_schedule("0 * * * *", UTC, 2.5 * HOUR))
    assert schedule.deadline(utc(2024, 9, 2, 12, 0)) == Deadline(
        utc(2024, 9, 2, 9, 0), utc(2024, 9, 2, 11, 30)
    )


def test_zero_grace_makes_the_fire_itself_the_deadline() -> None:
    schedule = fresh(make_schedule("*/15 * * * *", UTC, 0.0))
    assert schedule.deadline(utc(2024, 9, 2, 12, 15)) == Deadline(
        utc(2024, 9, 2, 12, 15), utc(2024, 9, 2, 12, 15)
    )
    assert schedule.deadline(utc(2024, 9, 2, 12, 14, 59)).fire == utc(2024, 9, 2, 12, 0)  # type: ignore[union-attr]


def test_rare_fires_are_found_years_back() -> None:
    leap_day = fresh(make_schedule("0 2 29 2 *", UTC, HOUR))
    assert leap_day.deadline(utc(2027, 1, 1)) == Deadline(utc(2024, 2, 29, 2), utc(2024, 2, 29, 3))
    weekly = fresh(make_schedule("0 6 * * mon", UTC, 0.0))
    # 2024-09-02 is a Monday.
    assert weekly.deadline(utc(2024, 9, 8, 23)) == Deadline(utc(2024, 9, 2, 6), utc(2024, 9, 2, 6))


def test_overdue_counts_from_the_deadline_until_a_refresh_ends_after_the_fire() -> None:
    deadline = Deadline(fire=1000.0, deadline=4600.0)
    assert deadline.overdue(1000.5, 5000.0) == 0
    assert deadline.overdue(1000.0, 5000.0) == 400
    assert deadline.overdue(999.0, 5000.0) == 400
    assert deadline.overdue(None, 5000.0) == 400


@pytest.mark.parametrize(
    ("zone", "day", "before", "after"),
    [
        # Spring forward at 02:00: 02:30 does not exist that night.
        (BERLIN, (2025, 3, 30), (2025, 3, 29), (2025, 3, 31)),
        (NEW_YORK, (2025, 3, 9), (2025, 3, 8), (2025, 3, 10)),
    ],
    ids=["Europe/Berlin", "America/New_York"],
)
def test_a_fire_in_the_skipped_hour_counts_an_hour_later(
    zone: ZoneInfo, day: tuple[int, int, int], before: tuple[int, int, int], after: tuple[int, ...]
) -> None:
    schedule = fresh(make_schedule("30 2 * * *", zone, HOUR))
    # The 02:30 that does not exist fires at 03:30 summer time, due at 04:30.
    skipped_fire = at(zone, *day, 3, 30)
    assert schedule.deadline(at(zone, *day, 4, 29)) == Deadline(
        at(zone, *before, 2, 30), at(zone, *before, 3, 30)
    )
    assert schedule.deadline(at(zone, *day, 4, 30)) == Deadline(skipped_fire, at(zone, *day, 4, 30))
    # The next night is back on 02:30; 23 hours of real time after the skipped hour's fire.
    next_night = schedule.deadline(at(zone, *after, 3, 30))
    assert next_night == Deadline(at(zone, *after, 2, 30), at(zone, *after, 3, 30))
    assert next_night.fire - skipped_fire == 23 * HOUR


@pytest.mark.parametrize(
    ("zone", "day"),
    [(BERLIN, (2025, 10, 26)), (NEW_YORK, (2025, 11, 2))],
    ids=["Europe/Berlin", "America/New_York"],
)
def test_a_wall_time_the_fall_back_repeats_fires_once(
    zone: ZoneInfo, day: tuple[int, int, int]
) -> None:
    # 01:30 is repeated in New York and 02:30 in Berlin; the job runs at the first one.
    hour = 2 if zone is BERLIN else 1
    schedule = fresh(make_schedule(f"30 {hour} * * *", zone, HOUR))
    first = at(zone, *day, hour, 30, fold=0)
    second = at(zone, *day, hour, 30, fold=1)
    assert second - first == HOUR
    expected = Deadline(first, first + HOUR)
    # An hour after the second 02:30, the deadline still belongs to the first: a refresh that
    # ended between the two is on time (APScheduler alone would fire again and call it late).
    deadline = schedule.deadline(second + 2 * HOUR)
    assert deadline == expected
    assert deadline.overdue(first + 600, second + 2 * HOUR) == 0
    # The next day's deadline comes 25 hours of real time after this one.
    day_after = schedule.deadline(first + 25 * HOUR + HOUR)
    assert day_after is not None
    assert day_after.fire - first == 25 * HOUR


def test_an_hourly_cron_skips_the_repeated_hour_of_a_fall_back() -> None:
    schedule = fresh(make_schedule("0 * * * *", BERLIN, 0.0))
    # 02:00 summer time is 00:00 UTC; 02:00 winter time (01:00 UTC) repeats it and is skipped.
    assert schedule.deadline(utc(2025, 10, 26, 1, 30)).fire == utc(2025, 10, 26, 0, 0)  # type: ignore[union-attr]
    assert schedule.deadline(utc(2025, 10, 26, 2, 0)).fire == utc(2025, 10, 26, 2, 0)  # type: ignore[union-attr]


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK, SHANGHAI], ids=str)
@pytest.mark.parametrize("cron", ["30 2 * * *", "0 * * * *", "*/20 1-3 * * mon-fri"])
def test_the_cached_deadline_equals_a_fresh_one(zone: ZoneInfo, cron: str) -> None:
    schedule = fresh(make_schedule(cron, zone, 1800.0))
    rng = random.Random(cron + str(zone))
    # A few days around each DST change of 2025 in Berlin and New York, in steps of minutes to
    # hours, now and then back, and a jump of weeks in between.
    for start in (utc(2025, 3, 6), utc(2025, 3, 27), utc(2025, 10, 23), utc(2025, 10, 30)):
        now = start
        for _ in range(100):
            now += rng.uniform(-0.3, 1.0) * rng.choice([600.0, HOUR, 4 * HOUR])
            assert schedule.deadline(now) == fresh(schedule).deadline(now), now


def test_schedules_with_the_same_settings_share_one_cache() -> None:
    assert make_schedule("30 2 * * *", BERLIN, HOUR) is make_schedule("30 2 * * *", BERLIN, HOUR)
    assert make_schedule("30 2 * * *", BERLIN, HOUR) == fresh(
        make_schedule("30 2 * * *", BERLIN, HOUR)
    )
    assert make_schedule("30 2 * * *", BERLIN, HOUR) != make_schedule("30 2 * * *", UTC, HOUR)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("30 2 * *", "Wrong number of fields; got 4, expected 5"),
        ("61 2 * * *", "the minute 61 is outside 0-59"),
        ("0 2 * * 8", "the day of week 8 is outside 0-7"),
        ("0 2 * * fri-mon", "the range fri-mon ends before it starts"),
        ("*/0 * * * *", "the step in '*/0' is 0"),
        ("0 2 * foo *", "'foo' is not a month"),
        ("0 0 30 2 *", "it never fires"),
        ("0 0 31 4,6 *", "it never fires"),
        # cronsim's extensions are not taken: APScheduler read "mon#2" as every Monday.
        ("0 2 * * mon#2", "bad day of week field 'mon#2'"),
        ("0 2 L * *", "'l' is not a day of month"),
        ("@daily", "Wrong number of fields; got 1, expected 5"),
        ("\u0663 2 * * *", "only ASCII characters"),  # an Arabic-Indic 3
        ("0\u00a02 * * *", "only ASCII characters"),  # a no-break space between fields
    ],
)
def test_bad_expressions_are_refused_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid cron expression ") as caught:
        parse_crontab(expression)
    assert reason in str(caught.value)
    assert repr(expression) in str(caught.value)


def fires(cron: str, zone: ZoneInfo, start: float, count: int) -> list[str]:
    """The first ``count`` fires at or after ``start``, as wall times in ``zone``."""
    trigger, moment, found = parse_crontab(cron), int(start), []
    for _ in range(count):
        fire = first_fire(trigger, zone, moment)
        assert fire is not None
        found.append(datetime.fromtimestamp(fire, zone).strftime("%a %Y-%m-%d %H:%M"))
        moment = fire + 1
    return found


@pytest.mark.parametrize("cron", ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * 7-7"])
def test_sunday_is_day_0_and_day_7_as_in_crontab(cron: str) -> None:
    # 2025-03-02 is a Sunday.
    assert fires(cron, UTC, utc(2025, 3, 1), 2) == ["Sun 2025-03-02 00:00", "Sun 2025-03-09 00:00"]


def test_numbered_days_of_week_count_from_sunday() -> None:
    assert fires("0 6 * * 1-5", BERLIN, utc(2025, 3, 7), 3) == [
        "Fri 2025-03-07 06:00",
        "Mon 2025-03-10 06:00",
        "Tue 2025-03-11 06:00",
    ]
    assert fires("0 6 * * */3", BERLIN, utc(2025, 3, 3), 3) == [
        "Wed 2025-03-05 06:00",
        "Sat 2025-03-08 06:00",
        "Sun 2025-03-09 06:00",
    ]


def test_a_day_of_month_and_a_day_of_week_fire_when_either_matches() -> None:
    # Cron's rule: the 1st of the month and every Monday (2025-09-01 is a Monday).
    assert fires("0 0 1 * mon", UTC, utc(2025, 9, 20), 4) == [
        "Mon 2025-09-22 00:00",
        "Mon 2025-09-29 00:00",
        "Wed 2025-10-01 00:00",
        "Mon 2025-10-06 00:00",
    ]
    # A day field starting with * is unrestricted, so */2 and mon must both match (Vixie cron).
    assert fires("0 0 */2 * mon", UTC, utc(2025, 9, 2), 2) == [
        "Mon 2025-09-15 00:00",
        "Mon 2025-09-29 00:00",
    ]


def test_a_step_over_a_range_of_names_is_taken() -> None:
    # APScheduler dropped the step after a range of names and fired Monday to Friday.
    assert fires("0 6 * * mon-fri/2", UTC, utc(2025, 9, 1), 4) == [
        "Mon 2025-09-01 06:00",
        "Wed 2025-09-03 06:00",
        "Fri 2025-09-05 06:00",
        "Mon 2025-09-08 06:00",
    ]


# Expressions accepted before cronsim, whose fires APScheduler's CronTrigger computed.
ACCEPTED_BEFORE = [
    "30 2 * * *",
    "0 * * * *",
    "15 */4 * * *",
    "*/20 1-3 * * mon-fri",
    "*/5 0-4 * * sun",
    "5/15 9-17 * * *",
    "0 0-23/6 * * *",
    "30 1,2 * * *",
    "0 1-3 * * sun",
    "0 6 * * mon",
    "0 7 * * mon-sun",
    "0 7 * * sun-sun",
    "45 23 * * sat,sun",
    "0 12 * * TUE-thu",
    "0 0 1 * *",
    "0 0 1,15 * *",
    "0 0 10-20/5 * *",
    "0 3 last * *",
    "0 4 1,last * *",
    "30 1 * jan-mar,oct-dec *",
    "0 8 * JAN-jun *",
    "0 9 * 3,11 sun",
]


def apscheduler_fires(cron: str, zone: ZoneInfo, start: int, end: int) -> list[int]:
    """The fires APScheduler's CronTrigger gave the exporter before, a repeated wall time once.

    Each day's fires are asked from the start of that day, and on a day with a DST change from
    the start of each hour: a search across a DST change can skip fires (from 15 March,
    "0 0 1 * *" in Berlin came to 1 May), which the exporter used to inherit.
    """
    trigger = CronTrigger.from_crontab(cron, timezone=zone)
    found = set()
    for day in range(start, end, int(DAY)):
        step = 3600 if utc_offset(day, zone) != utc_offset(day + int(DAY), zone) else int(DAY)
        for since in range(day, day + int(DAY), step):
            moment = datetime.fromtimestamp(since, UTC)
            while True:
                fire = trigger.get_next_fire_time(None, moment).astimezone(UTC)
                local = fire.astimezone(zone)
                if local.fold == 0 or local.replace(fold=0).utcoffset() == local.utcoffset():
                    found.add(int(fire.timestamp()))
                if fire.timestamp() >= since + step:
                    break
                moment = fire + timedelta(seconds=1)  # in UTC: on the wall clock it may repeat
    return sorted(found)


def utc_offset(moment: float, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(moment, zone).utcoffset()


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK, SHANGHAI], ids=str)
@pytest.mark.parametrize("cron", ACCEPTED_BEFORE)
def test_expressions_accepted_before_keep_their_fires(cron: str, zone: ZoneInfo) -> None:
    # A year with both DST changes in Berlin and New York, and a margin either side.
    start, end = int(utc(2025, 1, 1)), int(utc(2026, 1, 1))
    expected = apscheduler_fires(cron, zone, start - 200 * int(DAY), end + 125 * int(DAY))
    inside = [fire for fire in expected if start <= fire < end]
    trigger = parse_crontab(cron)
    found, fire = [], first_fire(trigger, zone, start)
    while fire is not None and fire < end:
        found.append(fire)
        fire = next_fire(trigger, zone, fire)
    assert set(inside) <= set(found)
    # APScheduler dropped a wall time the spring-forward skips when it searched from an earlier
    # fire that night ("30 1,2 * * *": 01:30, then the next night); it fires an hour later on
    # the wall clock (03:30), as a lone "30 2 * * *" did.
    extra = set(found) - set(inside)
    assert all(utc_offset(fire - 3600, zone) != utc_offset(fire, zone) for fire in extra), extra
    assert len(extra) == (1 if cron == "30 1,2 * * *" and zone is not SHANGHAI else 0)
    expected = sorted({*expected, *extra})
    # Back from every fire near a DST change and a sample of the others, from just before them
    # too, and both ways from random moments.
    sample = max(1, len(found) // 500)
    for index, fire in enumerate(found):
        if index % sample and utc_offset(fire - DAY, zone) == utc_offset(fire + DAY, zone):
            continue
        assert last_fire(trigger, zone, fire) == fire
        assert last_fire(trigger, zone, fire - 1) == expected[expected.index(fire) - 1], fire
    rng = random.Random(cron + str(zone))
    for moment in (rng.randrange(start, end) for _ in range(200)):
        after = bisect.bisect_left(expected, moment)
        assert first_fire(trigger, zone, moment) == expected[after], moment
        before = bisect.bisect_right(expected, moment) - 1
        assert last_fire(trigger, zone, moment) == expected[before], moment


def test_a_search_across_a_dst_change_finds_every_fire() -> None:
    # APScheduler came from 15 March to 1 May in Berlin, past 1 April (after the spring-forward).
    trigger = parse_crontab("0 0 1 * *")
    assert first_fire(trigger, BERLIN, int(at(BERLIN, 2025, 3, 15))) == at(BERLIN, 2025, 4, 1)
    assert last_fire(trigger, BERLIN, int(at(BERLIN, 2025, 4, 15))) == at(BERLIN, 2025, 4, 1)


# --- data periods ------------------------------------------------------------------------------


def test_a_daily_pipeline_one_day_late_reads_one_whatever_the_hour() -> None:
    periods = DataPeriods(Granularity.DAY, DAY, SHANGHAI)
    # T-1: on 2024-09-03 the data of 2024-09-02 is expected; it has 2024-09-01's.
    data = at(SHANGHAI, 2024, 9, 1)
    for hour, minute in [(0, 0), (0, 10), (9, 0), (23, 50), (23, 59)]:
        assert periods.behind(data, at(SHANGHAI, 2024, 9, 3, hour, minute)) == 1, (hour, minute)
    assert periods.behind(data, at(SHANGHAI, 2024, 9, 2, 23, 59)) == 0
    assert periods.behind(data, at(SHANGHAI, 2024, 9, 4, 0, 0)) == 2


def test_data_ahead_of_the_expected_period_is_not_behind() -> None:
    periods = DataPeriods(Granularity.DAY, DAY, SHANGHAI)
    now = at(SHANGHAI, 2024, 9, 3, 12)
    assert periods.behind(at(SHANGHAI, 2024, 9, 3), now) == 0
    assert periods.behind(at(SHANGHAI, 2024, 9, 5), now) == 0


def test_the_data_time_is_floored_in_the_schedules_zone() -> None:
    periods = DataPeriods(Granularity.DAY, 0.0, SHANGHAI)
    now = at(SHANGHAI, 2024, 9, 3, 12)
    # 17:00 UTC on 2024-09-02 is already 01:00 on 2024-09-03 in Shanghai.
    assert periods.behind(utc(2024, 9, 2, 17), now) == 0
    assert periods.behind(utc(2024, 9, 2, 15, 59), now) == 1


def test_hours_behind_with_a_delay() -> None:
    periods = DataPeriods(Granularity.HOUR, 2 * HOUR, SHANGHAI)
    now = at(SHANGHAI, 2024, 9, 3, 12, 40)  # 10:00's data is expected
    assert periods.behind(at(SHANGHAI, 2024, 9, 3, 10), now) == 0
    assert periods.behind(at(SHANGHAI, 2024, 9, 3, 9, 59, 59), now) == 1
    assert periods.behind(at(SHANGHAI, 2024, 9, 2, 10), now) == 24


def test_a_one_day_delay_is_yesterday_on_the_wall_clock_across_spring_forward() -> None:
    periods = DataPeriods(Granularity.DAY, DAY, BERLIN)
    # 00:30 on 2025-03-31 is only 23.5 hours after 00:00 on 2025-03-30 (a 23-hour day), yet
    # the 30th is the expected date: 24 hours of real time back would be the 29th.
    now = at(BERLIN, 2025, 3, 31, 0, 30)
    assert periods.behind(at(BERLIN, 2025, 3, 30), now) == 0
    assert periods.behind(at(BERLIN, 2025, 3, 29), now) == 1


def test_hours_are_counted_on_the_wall_clock_across_dst_changes() -> None:
    periods = DataPeriods(Granularity.HOUR, 0.0, NEW_YORK)
    # Spring forward: 02:00 does not exist, and the hour it skips counts as one period.
    assert periods.behind(at(NEW_YORK, 2025, 3, 9, 1), at(NEW_YORK, 2025, 3, 9, 3, 30)) == 2
    # Fall back: during the second 01:00-02:00, data of 01:00 is current, not an hour behind.
    second_one_thirty = at(NEW_YORK, 2025, 11, 2, 1, 30, fold=1)
    assert periods.behind(at(NEW_YORK, 2025, 11, 2, 1), second_one_thirty) == 0
    assert periods.behind(at(NEW_YORK, 2025, 11, 2, 0), second_one_thirty) == 1


def test_a_data_time_past_year_9999_in_the_schedule_zone_counts_no_periods() -> None:
    # 9999-12-31 23:00 UTC, a "max date" some pipelines write, is year 10000 in Tokyo.
    data_time = datetime(9999, 12, 31, 23, tzinfo=UTC).timestamp()
    periods = DataPeriods(Granularity.DAY, 0.0, ZoneInfo("Asia/Tokyo"))
    now = datetime(2024, 9, 2, 4, tzinfo=UTC).timestamp()
    assert periods.behind(data_time, now) is None
    assert DataPeriods(Granularity.DAY, 0.0, UTC).behind(data_time, now) == 0
