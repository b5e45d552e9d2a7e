"""The store behind tests/golden/metrics.prom: one group in each state the exporter can show.

``python -m tests.helpers.golden`` rewrites the golden file from it, after a deliberate change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest

from exporter.can.models import CanError, FailureReason, PollResult
from exporter.clock import FixedClock
from exporter.config.calendars import CalendarSpec, make_calendar
from exporter.config.maintenance import MaintenanceWindow
from exporter.config.schedule import DataPeriods, Granularity, make_schedule
from exporter.metrics.collector import CanCollector
from exporter.state.snapshots import GroupSnapshot, SnapshotStore, TargetSnapshot, next_snapshot
from tests.helpers.builders import NOW, make_group, make_reading

GOLDEN = Path(__file__).parents[1] / "golden" / "metrics.prom"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Fires 02:30 in Shanghai (18:30 UTC the day before), due at 03:30 (19:30 UTC).
NIGHTLY = make_schedule("30 2 * * *", SHANGHAI, 3600.0)
# T-1: at NOW (12:00 on 2024-09-02 in Shanghai) the data of 2024-09-01 is expected.
T_MINUS_1 = DataPeriods(Granularity.DAY, 86400.0, SHANGHAI)
# Mainland China's working days; at NOW (Monday noon in Shanghai) 12 business hours have passed
# since the finance group's data time (Sunday 08:00).
CN_CALENDAR = make_calendar(CalendarSpec("cn", country="CN"), SHANGHAI, (2020, 2030))
FINANCE_LABELS = (
    ("dashboard_url", "https://grafana.example.com/d/fin?var-group=finance&orgId=1"),
    ("owner", 'Finance "ledger" team'),
    ("team", "finance"),
)


def _ok(seconds: float = 0.2) -> PollResult:
    return PollResult(make_reading(), None, seconds)


def _failed(reason: FailureReason, seconds: float = 0.1) -> PollResult:
    return PollResult(None, CanError(reason, "boom"), seconds)


def golden_store() -> SnapshotStore:
    store = SnapshotStore()
    # Data rolled back 12 hours, then one refresh brought no new data.
    day = datetime(2024, 9, 1, tzinfo=UTC)
    sales = GroupSnapshot(
        make_group("sales", schedule=NIGHTLY, data_periods=T_MINUS_1, slo_objective=0.995)
    )
    for data_time, refresh_hour, at in (
        (day + timedelta(hours=12), 1, NOW - timedelta(hours=3)),
        (day, 2, NOW - timedelta(hours=2)),
        (day, 3, NOW),
    ):
        reading = make_reading(data_time, day + timedelta(days=1, hours=refresh_hour))
        sales = next_snapshot(sales, PollResult(reading, None, 0.04), at)
    store.put(sales)
    failing = next_snapshot(
        GroupSnapshot(make_group("finance", labels=FINANCE_LABELS, calendar=CN_CALENDAR)),
        _ok(0.3),
        NOW - timedelta(hours=1),
    )
    failing = next_snapshot(failing, _failed(FailureReason.HTTP_STATUS, 2.0), NOW)
    store.put(replace(failing, next_poll_time=NOW + timedelta(minutes=2)))
    store.put_target(TargetSnapshot("prod", circuit_open=False, requests_sent=7))
    never = PollResult(make_reading(None, None, not_ready=True), None, 0.02)
    store.put(next_snapshot(GroupSnapshot(make_group("inventory")), never, NOW))
    store.put(
        next_snapshot(
            GroupSnapshot(make_group("exec", plans=("a", "b"), per_plan=True)),
            _ok(0.05),
            NOW,
            {"a": _ok(0.01), "b": _failed(FailureReason.PLAN_NOT_FOUND, 0.01)},
        )
    )
    # Last refreshed before last night's fire, with data of 2024-08-31 in Shanghai: late.
    late = make_reading(
        datetime(2024, 8, 30, 16, 0, tzinfo=UTC), datetime(2024, 9, 1, 10, 0, tzinfo=UTC)
    )
    # In a maintenance window of its own until 06:00 (and one inside it, ending sooner).
    upgrade = (
        MaintenanceWindow(
            (NOW - timedelta(hours=1)).timestamp(), (NOW + timedelta(hours=2)).timestamp(), "up"
        ),
        MaintenanceWindow(NOW.timestamp(), (NOW + timedelta(hours=1)).timestamp(), "db"),
    )
    nightly = replace(
        make_group("nightly", schedule=NIGHTLY, data_periods=T_MINUS_1), maintenance=upgrade
    )
    store.put(next_snapshot(GroupSnapshot(nightly), PollResult(late, None, 0.03), NOW))
    return store


def golden_text() -> bytes:
    """What the collector writes for the golden store at NOW."""
    registry = CollectorRegistry()
    registry.register(CanCollector(golden_store(), FixedClock(NOW)))
    return generate_latest(registry)


if __name__ == "__main__":
    GOLDEN.write_bytes(golden_text())
