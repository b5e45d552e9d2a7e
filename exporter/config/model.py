"""The resolved configuration: frozen targets and groups, every inherited setting applied.

This is what the rest of the exporter reads; nothing downstream sees the YAML's models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from exporter.config.calendars import BusinessCalendar
from exporter.config.maintenance import MaintenanceWindow
from exporter.config.proxy import Proxy
from exporter.config.schedule import DataPeriods, Schedule

DEFAULT_MAX_BACKOFF = 600.0
# per_plan: auto asks CAN about at most this many of an unhealthy group's plans, one by one.
DEFAULT_DRILLDOWN_MAX_PLANS = 50


class AuthType(StrEnum):
    UID = "UID"
    TOKEN = "TOKEN"  # noqa: S105 - a method name, not a secret
    ACCOUNT = "ACCOUNT"
    APIKEY = "APIKEY"


class FreshBelow(StrEnum):
    """``slo.fresh_below``: the severity of the freshness alerts that make a group not fresh.

    ``critical``: a critical data lag or refresh age. ``warning``: any freshness alert of
    warning severity or above (warning thresholds, not ready, refresh overdue, periods behind).
    """

    WARNING = "warning"
    CRITICAL = "critical"


class PlanKey(StrEnum):
    """How a group names its plans; the value is the request body's list key."""

    IDS = "planIdList"
    NAMES = "planNameList"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    tenant_id: str
    auth_type: AuthType
    auth_value: SecretStr = field(repr=False)
    timezone: ZoneInfo | None
    max_concurrency: int
    timeout: float
    ca_file: Path | None
    insecure_skip_verify: bool
    rate_limit: float | None = None  # requests per second; None: no limit
    # Where auth_value was read from, watched for rotation; None when it was inline.
    auth_value_file: Path | None = None
    # The proxy its requests go through; None: direct.
    proxy: Proxy | None = None


@dataclass(frozen=True, slots=True)
class ThresholdValues:
    warning: float | None
    critical: float | None


DEFAULT_REFRESHES_WITHOUT_NEW_DATA = ThresholdValues(warning=3.0, critical=None)


@dataclass(frozen=True, slots=True)
class Group:
    target: str
    name: str
    plan_key: PlanKey
    plans: tuple[str, ...]
    interval: float
    timeout: float
    per_plan: bool
    data_lag: ThresholdValues
    refresh_age: ThresholdValues
    # Consecutive failures stretch the interval up to this (never below the interval).
    max_backoff: float = DEFAULT_MAX_BACKOFF
    # The group's own labels (defaults.labels merged in), sorted by name; on group_info.
    labels: tuple[tuple[str, str], ...] = ()
    # From schedule.refresh_cron: the refresh deadline and how overdue the group is.
    schedule: Schedule | None = None
    # From data_granularity: how many periods the data is behind.
    data_periods: DataPeriods | None = None
    # Counts, not seconds; None: that severity is off.
    refreshes_without_new_data: ThresholdValues = DEFAULT_REFRESHES_WITHOUT_NEW_DATA
    # per_plan: auto (per_plan is then False): the group is asked as a whole, and its plans one
    # by one (the first drilldown_max_plans) only while it is unhealthy.
    drilldown: bool = False
    drilldown_max_plans: int = DEFAULT_DRILLDOWN_MAX_PLANS
    # slo: which alerts define fresh, and the objective (a ratio in (0, 1); None: no SLO).
    fresh_below: FreshBelow = FreshBelow.CRITICAL
    slo_objective: float | None = None
    # Its maintenance windows (its own or defaults', and its target's), not yet ended at load.
    maintenance: tuple[MaintenanceWindow, ...] = ()
    # calendar: which days are business days; the business lag and age are exported for it.
    calendar: BusinessCalendar | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, self.name)


@dataclass(frozen=True, slots=True)
class Config:
    targets: Mapping[str, Target]
    groups: tuple[Group, ...]
    source: str | None = None
    warnings: tuple[str, ...] = ()
    # Each target's own maintenance windows (its groups carry them too), by target name.
    target_maintenance: Mapping[str, tuple[MaintenanceWindow, ...]] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        return [
            *(t.auth_value.get_secret_value() for t in self.targets.values()),
            *(secret for t in self.targets.values() if t.proxy for secret in t.proxy.secrets()),
        ]

    def secret_files(self) -> list[Path]:
        """The files secrets were read from, to re-read when they change."""
        return sorted({t.auth_value_file for t in self.targets.values() if t.auth_value_file})
