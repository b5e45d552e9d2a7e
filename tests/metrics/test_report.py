"""The --once table and the status texts shared with the landing page."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from exporter.can.models import CanError, FailureReason, PollResult, Reading
from exporter.config.calendars import CalendarSpec, make_calendar
from exporter.config.model import Group, ThresholdValues
from exporter.config.schedule import DataPeriods, Granularity, make_schedule
from exporter.metrics.report import describe_status, findings, format_until, render_table
from exporter.state.snapshots import GroupSnapshot, PlanSnapshot, next_snapshot
from tests.helpers.builders import NOW, make_group, make_reading


def _failed(reason: FailureReason) -> PollResult:
    return PollResult(None, CanError(reason, "HTTP 503"), 0.5)


def test_status_names_the_reason_and_the_failures_in_a_row() -> None:
    snapshot = GroupSnapshot(make_group())
    assert describe_status(snapshot) == "pending"
    snapshot = next_snapshot(snapshot, _failed(FailureReason.HTTP_STATUS), NOW)
    assert describe_status(snapshot) == "failed: http_status"
    snapshot = next_snapshot(snapshot, _failed(FailureReason.HTTP_STATUS), NOW)
    assert describe_status(snapshot) == "failed: http_status (2 in a row)"
    ok = PollResult(make_reading(), None, 0.1)
    assert describe_status(next_snapshot(snapshot, ok, NOW)) == "ok"


def test_format_until() -> None:
    assert format_until(None, NOW) == "-"
    assert format_until(NOW + timedelta(minutes=4), NOW) == "in 4m"
    assert format_until(NOW - timedelta(seconds=3), NOW) == "due"


def test_table_shows_the_next_poll_of_a_backed_off_group() -> None:
    snapshot = next_snapshot(GroupSnapshot(make_group()), _failed(FailureReason.TIMEOUT), NOW)
    snapshot = replace(snapshot, next_poll_time=NOW + timedelta(minutes=8))
    header, row, detail = render_table([snapshot], NOW).splitlines()
    assert header.split()[-3:] == ["NEXT", "POLL", "ATTENTION"]
    assert row.split()[:3] == ["prod", "sales", "failed:"]
    assert row.split()[-3:] == ["in", "8m", "-"]
    assert detail == "prod/sales: HTTP 503"


def test_table_names_the_plans_can_says_do_not_exist() -> None:
    group = make_group(plans=("p1", "gone", "p3"))
    snapshot = next_snapshot(GroupSnapshot(group), _failed(FailureReason.PLAN_NOT_FOUND), NOW)
    plans = (
        PlanSnapshot("p1", make_reading(), True),
        PlanSnapshot("gone", None, False, missing=True),
    )
    lines = render_table([replace(snapshot, plans=plans)], NOW).splitlines()
    assert lines[2:] == ["prod/sales: HTTP 503", "prod/sales: plan gone does not exist"]


def _polled(group: Group, reading: Reading | None = None) -> GroupSnapshot:
    result = PollResult(reading or make_reading(), None, 0.1)
    return next_snapshot(GroupSnapshot(group), result, NOW)


def _texts(snapshot: GroupSnapshot) -> list[str]:
    return [f"{f.severity.value}: {f.text}" for f in findings(snapshot, NOW)]


def test_findings_compare_lag_and_age_as_the_alerts_do() -> None:
    # 28 h of lag against the default 26 h warning / 50 h critical; refreshed 1 h ago.
    assert _texts(_polled(make_group())) == ["warning: data lag 1d4h over 1d2h"]
    exactly = make_group(data_lag=ThresholdValues(28 * 3600.0, None))
    assert _texts(_polled(exactly)) == []  # strictly over, as `>` in the rules
    stale = make_reading(
        datetime(2024, 8, 30, tzinfo=UTC), datetime(2024, 8, 31, 3, tzinfo=UTC), not_ready=True
    )
    assert _texts(_polled(make_group(), stale)) == [
        "critical: data lag 3d4h over 2d2h",
        "warning: refresh age 2d1h over 1d1h",
        "warning: not ready",
    ]
    off = make_group(data_lag=ThresholdValues(None, None), refresh_age=ThresholdValues(None, None))
    assert _texts(_polled(off, stale)) == ["warning: not ready"]


def test_findings_need_a_reading_and_skip_null_times() -> None:
    failed = next_snapshot(GroupSnapshot(make_group()), _failed(FailureReason.TIMEOUT), NOW)
    assert findings(failed, NOW) == []
    never = make_reading(None, None, not_ready=True)
    assert _texts(_polled(make_group(), never)) == ["warning: not ready"]


def test_findings_from_the_schedule_and_the_change_streak() -> None:
    quiet = ThresholdValues(None, None)
    group = make_group(
        data_lag=quiet,
        refresh_age=quiet,
        schedule=make_schedule("0 2 * * *", UTC, 3600.0),  # due by 03:00, NOW is 04:00
        data_periods=DataPeriods(Granularity.DAY, 0.0, UTC),
    )
    # Data of 1 September is a day behind on 2 September; the last refresh before 02:00.
    late = make_reading(datetime(2024, 9, 1, tzinfo=UTC), datetime(2024, 9, 1, 23, tzinfo=UTC))
    assert _texts(_polled(group, late)) == [
        "warning: refresh overdue 1h",
        "warning: 1 data periods behind",
    ]
    on_time = make_reading(
        datetime(2024, 9, 2, tzinfo=UTC), datetime(2024, 9, 2, 2, 30, tzinfo=UTC)
    )
    assert _texts(_polled(group, on_time)) == []

    snapshot = _polled(make_group(data_lag=quiet))
    streak = ThresholdValues(3.0, 5.0)
    for count, expected in [
        (2, []),
        (3, ["warning: 3 refreshes without new data (threshold 3)"]),
        (5, ["critical: 5 refreshes without new data (threshold 5)"]),
    ]:
        changes = replace(snapshot.changes, refreshes_without_new_data=count)
        counted = replace(
            snapshot,
            group=replace(snapshot.group, refreshes_without_new_data=streak),
            changes=changes,
        )
        assert _texts(counted) == expected


def test_the_table_ends_with_what_needs_attention() -> None:
    lines = render_table([_polled(make_group())], NOW).splitlines()
    assert lines[0].endswith("ATTENTION")
    assert lines[1].endswith("warning: data lag 1d4h over 1d2h")


def test_table_lets_no_control_character_from_can_or_the_config_reach_the_terminal() -> None:
    hostile = "x\x1b]0;pwned\x07\x9b2J\x7f\u2028\u202e"
    group = make_group(plans=("p1", f"gone{hostile}"))
    group = replace(group, name=f"sales{hostile}")
    error = CanError(FailureReason.API_ERROR, f"CAN says {hostile}", trace_id=f"t{hostile}")
    snapshot = next_snapshot(GroupSnapshot(group), PollResult(None, error, 0.5), NOW)
    plans = (PlanSnapshot(f"gone{hostile}", None, False, missing=True),)
    table = render_table([replace(snapshot, plans=plans)], NOW)
    assert table.isascii()
    assert all(char.isprintable() for line in table.splitlines() for char in line)
    escaped = "x\\u001b]0;pwned\\u0007\\u009b2J\\u007f\\u2028\\u202e"
    assert f"sales{escaped}" in table.splitlines()[1]
    assert f"CAN says {escaped}" in table
    assert f"plan gone{escaped} does not exist" in table


def test_findings_on_a_calendar_compare_business_seconds_as_the_alerts_do() -> None:
    # NOW is Monday 04:00 UTC; the calendar's weekend adds nothing to the lag.
    weekdays = make_calendar(CalendarSpec("weekdays"), UTC, (2024, 2024))
    group = replace(make_group(), calendar=weekdays)
    refreshed = datetime(2024, 9, 2, 3, tzinfo=UTC)
    friday_noon = make_reading(datetime(2024, 8, 30, 12, tzinfo=UTC), refreshed)
    # 64 h on the wall clock (over the 50 h critical), 16 h of business days (under 26 h).
    assert _texts(_polled(make_group(), friday_noon)) == ["critical: data lag 2d16h over 2d2h"]
    assert _texts(_polled(group, friday_noon)) == []
    friday = make_reading(datetime(2024, 8, 30, tzinfo=UTC), refreshed)
    assert _texts(_polled(group, friday)) == ["warning: business data lag 1d4h over 1d2h"]
