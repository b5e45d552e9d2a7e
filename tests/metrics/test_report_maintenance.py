"""The --once table's attention cell during a maintenance window."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from exporter.can.models import PollResult
from exporter.config.maintenance import MaintenanceWindow
from exporter.metrics.report import describe_attention, render_table
from exporter.state.snapshots import GroupSnapshot, next_snapshot
from tests.helpers.builders import NOW, make_group, make_reading

START = NOW.timestamp()


def _snapshot(*windows: MaintenanceWindow, data_time: datetime | None = None) -> GroupSnapshot:
    group = replace(make_group(), maintenance=windows)
    hour_ago = NOW - timedelta(hours=1)
    reading = make_reading(data_time or hour_ago, hour_ago)
    return next_snapshot(GroupSnapshot(group), PollResult(reading, None, 0.1), NOW)


def test_the_attention_cell_names_the_end_in_utc_and_the_reason() -> None:
    snapshot = _snapshot(
        MaintenanceWindow(START - 60, START + 7200, "CAN upgrade"),
        MaintenanceWindow(START, START + 600, "db"),
    )
    assert describe_attention(snapshot, NOW) == (
        "maintenance until 2024-09-02 06:00:00 UTC, CAN upgrade"
    )
    # Once it has ended, the findings as usual.
    assert describe_attention(snapshot, NOW + timedelta(hours=2)) == "-"


def test_findings_follow_the_maintenance() -> None:
    stale = datetime(2024, 8, 30, tzinfo=UTC)
    snapshot = _snapshot(MaintenanceWindow(START, START + 60, "upgrade"), data_time=stale)
    assert describe_attention(snapshot, NOW) == (
        "maintenance until 2024-09-02 04:01:00 UTC, upgrade; critical: data lag 3d4h over 2d2h"
    )


def test_the_reason_reaches_the_terminal_without_control_characters() -> None:
    snapshot = _snapshot(MaintenanceWindow(START, START + 60, "up\x1b[2Jgrade"))
    (_, row) = render_table([snapshot], NOW).splitlines()
    assert "\x1b" not in row
    assert row.endswith("maintenance until 2024-09-02 04:01:00 UTC, up\\u001b[2Jgrade")
