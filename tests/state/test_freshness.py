"""Freshness: the instant a reading stops being fresh, and the exact fresh/observed seconds."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from exporter.can.models import CanError, FailureReason, PollResult, Reading
from exporter.config.calendars import CalendarSpec, make_calendar
from exporter.config.model import FreshBelow, Group, ThresholdValues
from exporter.config.schedule import DataPeriods, Granularity, make_schedule
from exporter.state.freshness import FreshnessLedger, stale_from
from exporter.state.snapshots import GroupSnapshot, next_snapshot, regrouped
from tests.helpers.builders import NOW, make_group, make_reading

HOUR = 3600.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Critical at 10h of data lag and 5h of refresh age; warning at half those.
LAG = ThresholdValues(warning=5 * HOUR, critical=10 * HOUR)
AGE = ThresholdValues(warning=2.5 * HOUR, critical=5 * HOUR)


def _group(**options: object) -> Group:
    return make_group(data_lag=LAG, refresh_age=AGE, **options)  # type: ignore[arg-type]


def _ok(
    data_age: float, refresh_age: float, at: datetime, *, not_ready: bool = False
) -> PollResult:
    """A reading at ``at`` whose data is ``data_age`` and refresh ``refresh_age`` seconds old."""
    reading = make_reading(
        at - timedelta(seconds=data_age), at - timedelta(seconds=refresh_age), not_ready=not_ready
    )
    return PollResult(reading, None, 0.1)


def _failed() -> PollResult:
    return PollResult(None, CanError(FailureReason.TIMEOUT, "timed out"), 10.0)


def _at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def _totals(snapshot: GroupSnapshot, hours: float) -> tuple[float, float]:
    return snapshot.freshness.totals(_at(hours).timestamp())


# -- the instant a reading stops being fresh -----------------------------------------------------


def test_the_critical_lag_and_age_bound_a_reading() -> None:
    reading = _ok(data_age=8 * HOUR, refresh_age=1 * HOUR, at=NOW).reading
    assert reading is not None
    # Data lag reaches 10h two hours on; refresh age reaches 5h four hours on.
    assert stale_from(_group(), reading) == _at(2).timestamp()


def test_fresh_below_warning_takes_the_warning_thresholds() -> None:
    reading = _ok(data_age=1 * HOUR, refresh_age=2 * HOUR, at=NOW).reading
    assert reading is not None
    # Refresh age reaches the warning 2.5h half an hour on, data lag its 5h four hours on.
    group = _group(fresh_below=FreshBelow.WARNING)
    assert stale_from(group, reading) == _at(0.5).timestamp()


def test_not_ready_is_never_fresh_below_warning_and_does_not_count_below_critical() -> None:
    reading = _ok(data_age=0, refresh_age=0, at=NOW, not_ready=True).reading
    assert reading is not None
    assert stale_from(_group(fresh_below=FreshBelow.WARNING), reading) == -math.inf
    assert stale_from(_group(), reading) == _at(5).timestamp()


def test_without_times_or_thresholds_nothing_makes_a_reading_stale() -> None:
    reading = make_reading(None, None)
    assert stale_from(_group(), reading) == math.inf
    no_thresholds = make_group(
        data_lag=ThresholdValues(None, None), refresh_age=ThresholdValues(None, None)
    )
    assert stale_from(no_thresholds, make_reading()) == math.inf


def test_an_overdue_refresh_makes_it_stale_at_the_deadline_of_the_first_fire_after_it() -> None:
    # Fires 02:30 Shanghai (18:30 UTC), due an hour later. NOW is 04:00 UTC on 2024-09-02.
    nightly = make_schedule("30 2 * * *", SHANGHAI, HOUR)
    group = _group(fresh_below=FreshBelow.WARNING, schedule=nightly)
    # Refreshed 03:00 UTC: the next fire is 18:30 UTC, due 19:30 UTC.
    reading = make_reading(NOW - timedelta(minutes=30), NOW - timedelta(hours=1))
    expected = datetime(2024, 9, 2, 19, 30, tzinfo=UTC).timestamp()
    # The refresh age (2.5h warning) ends it first, at 05:30 UTC; without age thresholds the
    # deadline does.
    lenient = make_group(
        data_lag=ThresholdValues(None, None),
        refresh_age=ThresholdValues(None, None),
        schedule=nightly,
        fresh_below=FreshBelow.WARNING,
    )
    assert stale_from(lenient, reading) == expected
    assert stale_from(group, reading) == _at(1.5).timestamp()
    # The schedule's own deadline agrees: overdue is 0 up to that instant and positive after.
    _, refresh = _times(reading)
    at_deadline = nightly.deadline(expected)
    after = nightly.deadline(expected + 1)
    assert at_deadline is not None
    assert after is not None
    assert at_deadline.overdue(refresh, expected) == 0.0
    assert after.overdue(refresh, expected + 1) > 0


def _times(reading: Reading) -> tuple[float, float]:
    assert reading.latest_data_time is not None
    assert reading.latest_refresh_time is not None
    return reading.latest_data_time.timestamp(), reading.latest_refresh_time.timestamp()


def test_data_periods_behind_makes_it_stale_when_the_next_period_is_expected() -> None:
    # T-1 in Shanghai: at 00:00 on day D+2 (plus the 1-day delay) the data of D is behind.
    periods = DataPeriods(Granularity.DAY, 86400.0, SHANGHAI)
    group = make_group(
        data_lag=ThresholdValues(None, None),
        refresh_age=ThresholdValues(None, None),
        data_periods=periods,
        fresh_below=FreshBelow.WARNING,
    )
    data_time = datetime(2024, 9, 1, 10, 0, tzinfo=SHANGHAI)
    reading = make_reading(data_time, data_time)
    boundary = datetime(2024, 9, 3, 0, 0, tzinfo=SHANGHAI).timestamp()
    assert stale_from(group, reading) == boundary
    assert periods.behind(data_time.timestamp(), boundary - 1) == 0
    assert periods.behind(data_time.timestamp(), boundary) == 1


def test_a_period_boundary_in_a_spring_forward_gap_is_the_jump_itself() -> None:
    # Hourly data, no delay, Berlin: 2024-03-31 02:00 does not exist; 01:59:59 CET is followed
    # by 03:00 CEST at 01:00 UTC. Data of the 01:00 hour is behind from that instant.
    berlin = ZoneInfo("Europe/Berlin")
    periods = DataPeriods(Granularity.HOUR, 0.0, berlin)
    data_time = datetime(2024, 3, 31, 1, 30, tzinfo=berlin).timestamp()
    jump = datetime(2024, 3, 31, 1, 0, tzinfo=UTC).timestamp()
    assert periods.behind_from(data_time) == pytest.approx(jump, abs=0.002)
    assert periods.behind(data_time, jump - 1) == 0
    assert periods.behind(data_time, jump + 1) >= 1


@pytest.mark.parametrize("fresh_below", list(FreshBelow))
def test_the_instant_agrees_with_the_alert_conditions_at_every_minute(
    fresh_below: FreshBelow,
) -> None:
    """Freshness from stale_from is what the shipped alerts' conditions say at each instant."""
    nightly = make_schedule("30 2 * * *", SHANGHAI, HOUR)
    periods = DataPeriods(Granularity.DAY, 86400.0, SHANGHAI)
    group = make_group(
        data_lag=ThresholdValues(30 * HOUR, 50 * HOUR),
        refresh_age=ThresholdValues(25 * HOUR, 49 * HOUR),
        schedule=nightly,
        data_periods=periods,
        fresh_below=fresh_below,
    )
    for data_hours, refresh_hours in ((2, 1), (20, 3), (30, 20), (50, 26)):
        reading = make_reading(_at(-data_hours), _at(-refresh_hours))
        boundary = stale_from(group, reading)
        for minute in range(0, 3 * 24 * 60, 17):
            now = _at(minute / 60).timestamp()
            assert (now <= boundary) == _fresh_by_the_alerts(group, _times(reading), now)


@pytest.mark.parametrize("fresh_below", list(FreshBelow))
@pytest.mark.parametrize(
    "start",
    [
        # Friday 2024-08-30 12:00 in Shanghai: the weekend follows.
        datetime(2024, 8, 30, 4, tzinfo=UTC),
        # Friday 2024-09-27: Sunday the 29th is worked, then National Day (October 1 to 7).
        datetime(2024, 9, 27, 4, tzinfo=UTC),
    ],
    ids=["weekend", "national-day"],
)
@pytest.mark.parametrize(
    ("lag", "age"),
    [
        (ThresholdValues(10 * HOUR, 26 * HOUR), ThresholdValues(6 * HOUR, 25 * HOUR)),
        # No warning thresholds: below warning, the deadlines and periods decide.
        (ThresholdValues(None, 200 * HOUR), ThresholdValues(None, 200 * HOUR)),
    ],
    ids=["thresholds", "schedule"],
)
def test_on_a_calendar_the_instant_agrees_with_the_business_alerts_at_every_minute(
    fresh_below: FreshBelow, start: datetime, lag: ThresholdValues, age: ThresholdValues
) -> None:
    calendar = make_calendar(CalendarSpec("cn", country="CN"), SHANGHAI, (2020, 2030))
    group = make_group(
        data_lag=lag,
        refresh_age=age,
        fresh_below=fresh_below,
        calendar=calendar,
        # No deadline on a day off, and T-1 in business days.
        schedule=make_schedule("30 2 * * *", SHANGHAI, HOUR, calendar),
        data_periods=DataPeriods(Granularity.DAY, 86400.0 + 3 * HOUR, SHANGHAI, calendar),
    )
    for data_hours, refresh_hours in ((2, 1), (20, 3), (30, 20), (50, 26), (0, 0)):
        reading = make_reading(
            start - timedelta(hours=data_hours), start - timedelta(hours=refresh_hours)
        )
        boundary = stale_from(group, reading)
        for minute in range(0, 12 * 24 * 60, 13):
            now = (start + timedelta(minutes=minute)).timestamp()
            assert (now <= boundary) == _fresh_by_the_alerts(group, _times(reading), now)
        if fresh_below is FreshBelow.CRITICAL:
            # The business lag and age stand still on a day off: no crossing falls in one.
            assert calendar.today_is_business_day(boundary)


def _fresh_by_the_alerts(group: Group, times: tuple[float, float], now: float) -> bool:
    """The alerts' conditions: the business lag and age where the group has a calendar."""
    data, refresh = times
    calendar = group.calendar
    lag = calendar.business_seconds(data, now) if calendar else now - data
    age = calendar.business_seconds(refresh, now) if calendar else now - refresh
    severities = ["critical"]
    if group.fresh_below is FreshBelow.WARNING:
        severities.append("warning")
    for severity in severities:
        lag_limit, age_limit = (
            getattr(group.data_lag, severity),
            getattr(group.refresh_age, severity),
        )
        if lag_limit is not None and lag > lag_limit:
            return False
        if age_limit is not None and age > age_limit:
            return False
    if group.fresh_below is FreshBelow.WARNING and group.schedule is not None:
        assert group.data_periods is not None
        deadline = group.schedule.deadline(now)
        if deadline is not None and deadline.overdue(refresh, now) > 0:
            return False
        if (group.data_periods.behind(data, now) or 0) >= 1:
            return False
    return True


# -- exact accounting ---------------------------------------------------------------------------


def test_unknown_before_the_first_reading_counts_neither_way() -> None:
    snapshot = GroupSnapshot(_group())
    assert snapshot.freshness.is_fresh(_at(5).timestamp()) is None
    assert _totals(snapshot, 5) == (0.0, 0.0)
    failed = next_snapshot(snapshot, _failed(), _at(1))
    assert _totals(failed, 5) == (0.0, 0.0)


def test_a_threshold_crossed_between_two_scrapes_counts_from_the_crossing() -> None:
    # Data 8h old at NOW: the 10h critical lag is crossed at NOW+2h, between scrapes at
    # NOW+1h and NOW+3h; nothing polls again.
    snapshot = next_snapshot(GroupSnapshot(_group()), _ok(8 * HOUR, HOUR, NOW), NOW)
    assert snapshot.freshness.is_fresh(_at(1).timestamp()) is True
    assert _totals(snapshot, 1) == (HOUR, HOUR)
    assert snapshot.freshness.is_fresh(_at(3).timestamp()) is False
    assert _totals(snapshot, 3) == (2 * HOUR, 3 * HOUR)


def test_a_failed_poll_keeps_the_reading_and_the_count_goes_on() -> None:
    snapshot = next_snapshot(GroupSnapshot(_group()), _ok(8 * HOUR, HOUR, NOW), NOW)
    failed = next_snapshot(snapshot, _failed(), _at(1))
    assert _totals(failed, 3) == (2 * HOUR, 3 * HOUR)


def test_a_reading_that_makes_a_stale_group_fresh_counts_fresh_from_that_poll() -> None:
    stale = next_snapshot(GroupSnapshot(_group()), _ok(12 * HOUR, HOUR, NOW), NOW)
    assert stale.freshness.is_fresh(NOW.timestamp()) is False
    fresh = next_snapshot(stale, _ok(HOUR, 0.0, _at(1.5)), _at(1.5))
    assert fresh.freshness.is_fresh(_at(1.5).timestamp()) is True
    assert _totals(fresh, 4) == (2.5 * HOUR, 4 * HOUR)


def test_a_reload_that_changes_the_thresholds_judges_the_reading_anew_from_then_on() -> None:
    # Stale by its 10h critical lag from NOW+2h; at NOW+3h a reload raises it to 20h.
    snapshot = next_snapshot(GroupSnapshot(_group()), _ok(8 * HOUR, HOUR, NOW), NOW)
    lenient = make_group(
        data_lag=ThresholdValues(None, 20 * HOUR), refresh_age=AGE, slo_objective=0.99
    )
    reloaded = regrouped(snapshot, lenient, _at(3))
    assert reloaded.group is lenient
    assert reloaded.freshness.is_fresh(_at(3).timestamp()) is True
    # Fresh 0-2h under the old thresholds, 3-4h under the new (age reaches 5h at NOW+4h).
    assert _totals(reloaded, 6) == (3 * HOUR, 6 * HOUR)


def test_a_reload_before_the_first_reading_starts_nothing() -> None:
    reloaded = regrouped(GroupSnapshot(_group()), _group(slo_objective=0.99), _at(1))
    assert reloaded.freshness == FreshnessLedger()


def test_the_counters_never_go_back_when_the_clock_does() -> None:
    snapshot = next_snapshot(GroupSnapshot(_group()), _ok(HOUR, 0.0, NOW), NOW)
    later = next_snapshot(snapshot, _ok(HOUR, 0.0, _at(1)), _at(1))
    # The clock is stepped back half an hour before the next poll.
    earlier = next_snapshot(later, _ok(HOUR, 0.0, _at(0.5)), _at(0.5))
    assert earlier.freshness.since == _at(1).timestamp()
    assert _totals(earlier, 2) == (2 * HOUR, 2 * HOUR)
    fresh, observed = _totals(earlier, 0.25)
    assert (fresh, observed) == (HOUR, HOUR)


def test_the_same_times_again_keep_the_interval_going() -> None:
    # Data 8h old at NOW, polled again unchanged (another traceId) an hour later.
    first = _ok(8 * HOUR, HOUR, NOW)
    snapshot = next_snapshot(GroupSnapshot(_group()), first, NOW)
    assert first.reading is not None
    again = PollResult(replace(first.reading, trace_id="trace-2"), None, 0.1)
    polled = next_snapshot(snapshot, again, _at(1))
    assert polled.freshness is snapshot.freshness
    assert _totals(polled, 3) == (2 * HOUR, 3 * HOUR)
