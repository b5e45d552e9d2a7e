"""The --once table and the status texts shared with the landing page."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from exporter.can.client import PollResult
from exporter.can.models import CanError, FailureReason
from exporter.report import describe_status, format_until, render_table
from exporter.state import GroupSnapshot, PlanSnapshot, next_snapshot
from tests.conftest import NOW, make_group, make_reading


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
    assert header.split()[-2:] == ["NEXT", "POLL"]
    assert row.split()[:3] == ["prod", "sales", "failed:"]
    assert row.endswith("in 8m")
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
