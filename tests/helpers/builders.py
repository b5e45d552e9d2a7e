"""Builders for the objects unit tests need: groups, readings, configs, CAN's answers."""

from __future__ import annotations

from datetime import UTC, datetime

from exporter.can.models import Reading
from exporter.config.calendars import BusinessCalendar
from exporter.config.load import parse_config
from exporter.config.model import (
    DEFAULT_REFRESHES_WITHOUT_NEW_DATA,
    Config,
    FreshBelow,
    Group,
    PlanKey,
    ThresholdValues,
)
from exporter.config.schedule import DataPeriods, Schedule

NOW = datetime(2024, 9, 2, 4, 0, 0, tzinfo=UTC)
DEFAULT_DATA_LAG = ThresholdValues(93600.0, 180000.0)
DEFAULT_REFRESH_AGE = ThresholdValues(90000.0, 176400.0)


def make_group(
    name: str = "sales",
    target: str = "prod",
    plans: tuple[str, ...] = ("p1",),
    *,
    per_plan: bool = False,
    data_lag: ThresholdValues = DEFAULT_DATA_LAG,
    refresh_age: ThresholdValues = DEFAULT_REFRESH_AGE,
    labels: tuple[tuple[str, str], ...] = (),
    schedule: Schedule | None = None,
    data_periods: DataPeriods | None = None,
    refreshes_without_new_data: ThresholdValues = DEFAULT_REFRESHES_WITHOUT_NEW_DATA,
    fresh_below: FreshBelow = FreshBelow.CRITICAL,
    slo_objective: float | None = None,
    calendar: BusinessCalendar | None = None,
) -> Group:
    return Group(
        target=target,
        name=name,
        plan_key=PlanKey.IDS,
        plans=plans,
        interval=60.0,
        timeout=10.0,
        per_plan=per_plan,
        data_lag=data_lag,
        refresh_age=refresh_age,
        labels=labels,
        schedule=schedule,
        data_periods=data_periods,
        refreshes_without_new_data=refreshes_without_new_data,
        fresh_below=fresh_below,
        slo_objective=slo_objective,
        calendar=calendar,
    )


def make_reading(
    data_time: datetime | None = datetime(2024, 9, 1, 0, 0, tzinfo=UTC),
    refresh_time: datetime | None = datetime(2024, 9, 2, 3, 0, tzinfo=UTC),
    *,
    not_ready: bool = False,
) -> Reading:
    return Reading(not_ready, data_time, refresh_time, trace_id="t-1")


def config_for(url: str, groups_yaml: str, *, secret: str = "s3cret-value") -> Config:
    """A one-target config pointing at ``url``; ``groups_yaml`` is the groups list's YAML."""
    text = f"""
targets:
  - name: prod
    url: {url}
    tenant_id: "10001"
    auth: {{type: APIKEY, value: "{secret}"}}
    timezone: UTC
groups:
{groups_yaml}
"""
    return parse_config(text, environ={})


# CAN's answers as the poller tests use them: fresh data, and the documented missing plan.
CAN_OK_BODY = {
    "data": {
        "hasNotReady": False,
        "latestDateTime": "2024-09-01 00:00:00",
        "latestRefreshTime": "2024-09-02 03:00:00",
    },
    "success": True,
    "code": "200",
    "errorMsg": None,
    "traceId": "trace-ok",
}
CAN_MISSING_BODY = {
    "data": None,
    "success": True,
    "code": "200",
    "errorMsg": "Acceleration plan does not exist",
    "traceId": "trace-missing",
}
