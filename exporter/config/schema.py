"""The configuration file's schema: pydantic models of exactly what the YAML may say.

Every model forbids unknown keys, so a misspelled key is an error naming its path. Values are
checked one by one here; what needs several keys at once is checked in ``resolve``.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.config.calendars import WEEKDAYS, check_country
from exporter.config.cron import parse_crontab
from exporter.config.durations import parse_duration
from exporter.config.labels import RawLabels
from exporter.config.maintenance import MaintenanceList
from exporter.config.model import (
    DEFAULT_DRILLDOWN_MAX_PLANS,
    DEFAULT_MAX_BACKOFF,
    AuthType,
    FreshBelow,
)
from exporter.config.schedule import Granularity
from exporter.config.zones import load_zone
from exporter.redact import short_secret_problem
from exporter.textsafe import header_value_problem

# --- models of the file ----------------------------------------------------------------------


def _duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: write it with a unit, like 30s or 5m")
    return parse_duration(value)


def _positive_duration(value: Any) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be greater than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(_positive_duration)]
# 0s allowed (a grace or a data delay of nothing); durations have no sign.
NonNegativeDuration = Annotated[float, BeforeValidator(_duration)]

_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def _per_plan(value: Any) -> bool | str:
    """true and false as pydantic reads a bool (yes, no, 1, 0 too), or the word auto."""
    if value == "auto":
        return "auto"
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        raise ValueError("must be true, false or auto") from None


PerPlan = Annotated[bool | Literal["auto"], BeforeValidator(_per_plan)]
DrilldownMaxPlans = Annotated[int, Field(ge=1)]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s\x00-\x1f]+$")]


def _zone_name(zone: str) -> str:
    load_zone(zone)
    return zone


# An IANA zone name, checked when the config loads and kept as written.
ZoneName = Annotated[str, AfterValidator(_zone_name)]
Plan = Annotated[str, Field(min_length=1, max_length=512)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ThresholdPair(_Model):
    warning: Duration | None = None
    critical: Duration | None = None


# A count of polls; 0 turns the severity off (unset inherits, as durations do).
Count = Annotated[int, Field(ge=0, strict=True)]


class CountThresholdPair(_Model):
    warning: Count | None = None
    critical: Count | None = None


class Thresholds(_Model):
    data_lag: ThresholdPair = ThresholdPair()
    refresh_age: ThresholdPair = ThresholdPair()
    refreshes_without_new_data: CountThresholdPair = CountThresholdPair()


DEFAULT_THRESHOLDS = Thresholds.model_validate(
    {
        "data_lag": {"warning": "26h", "critical": "50h"},
        "refresh_age": {"warning": "25h", "critical": "49h"},
        "refreshes_without_new_data": {"warning": 3},
    }
)


# A refresh is due this long after its cron fire unless schedule.grace says otherwise.
DEFAULT_GRACE = 3600.0


class ScheduleSettings(_Model):
    # "" removes a refresh_cron inherited from defaults.schedule.
    refresh_cron: str | None = None
    timezone: ZoneName | None = None
    grace: NonNegativeDuration | None = None

    @field_validator("refresh_cron")
    @classmethod
    def _check_cron(cls, expression: str | None) -> str | None:
        if expression:
            parse_crontab(expression)
        return expression


def _objective(value: Any) -> float | None:
    """A ratio (0.995) or a percentage (99.5%), strictly between 0 and 1; "" removes it."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a ratio such as 0.995 or a percentage such as 99.5%")
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = Decimal(text.removesuffix("%").strip())
    except InvalidOperation:
        raise ValueError(
            f"invalid objective {text!r}: write a ratio such as 0.995 or a percentage such as 99.5%"
        ) from None
    # In decimal, so that 99.9% is 0.999 and not 0.9990000000000001.
    ratio = float(number / 100 if percent else number)
    if not math.isfinite(ratio) or not 0 < ratio < 1:
        hint = f" (for a percentage, write {text}%)" if not percent and 1 < ratio < 100 else ""
        raise ValueError(f"objective {text} must be strictly between 0 and 1{hint}")
    return ratio


Objective = Annotated[float | None, BeforeValidator(_objective)]


class SloSettings(_Model):
    # Unset inherits from defaults.slo key by key; "" or null removes an inherited objective.
    objective: Objective = None
    fresh_below: FreshBelow | None = None


def _date(value: Any) -> date:
    """A date as YAML reads an unquoted one, or a quoted YYYY-MM-DD."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("invalid date: write it as YYYY-MM-DD, such as 2024-10-01")


Date = Annotated[date, BeforeValidator(_date)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class HolidaySource(_Model):
    """A calendar's public holidays, from the ``holidays`` package."""

    country: str
    subdivision: str | None = None

    @field_validator("country")
    @classmethod
    def _check_country(cls, country: str) -> str:
        problem, _ = check_country(country, None)
        if problem is not None:
            raise ValueError(problem)
        return country

    @field_validator("subdivision")
    @classmethod
    def _check_subdivision(cls, subdivision: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if subdivision is not None and country is not None:
            _, problem = check_country(country, subdivision)
            if problem is not None:
                raise ValueError(problem)
        return subdivision


class CalendarSettings(_Model):
    """One entry of ``calendars``: see config/calendars.py."""

    # Default: the schedule zone of the group using it.
    timezone: ZoneName | None = None
    weekends: list[Weekday] = ["sat", "sun"]
    holidays: HolidaySource | None = None
    extra_holidays: list[Date] = []
    workdays: list[Date] = []

    @field_validator("weekends")
    @classmethod
    def _check_weekends(cls, weekends: list[str]) -> list[str]:
        if len(set(weekends)) == len(WEEKDAYS):
            raise ValueError("must leave at least one day of the week a business day")
        return weekends


# A calendars entry's name; "" in a group's calendar removes one inherited from defaults.
CalendarName = Annotated[str, Field(max_length=128)]


class _Inherited(_Model):
    """The keys a group inherits from ``defaults`` (each resolved key by key)."""

    thresholds: Thresholds = Thresholds()
    labels: RawLabels = {}
    schedule: ScheduleSettings = ScheduleSettings()
    data_granularity: Granularity | None = None
    expected_data_delay: NonNegativeDuration | None = None
    slo: SloSettings | None = None
    maintenance: MaintenanceList | None = None
    calendar: CalendarName | None = None


class Defaults(_Inherited):
    interval: Duration = 60.0
    timeout: Duration = 10.0
    max_backoff: Duration = DEFAULT_MAX_BACKOFF
    drilldown_max_plans: DrilldownMaxPlans = DEFAULT_DRILLDOWN_MAX_PLANS


def _header_value(value: str) -> str:
    problem = header_value_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Sent as an HTTP header: a CR LF in it would start a header of its own.
HeaderValue = Annotated[str, Field(min_length=1), AfterValidator(_header_value)]


def auth_value_problem(secret: str, auth_type: AuthType) -> str | None:
    """Why an auth value cannot be used, inline or from a file: it is sent as a header, and a
    credential too short to be masked wherever it occurs in a log line is refused. A UID or an
    ACCOUNT names a user and may be short (masked then only as a whole word)."""
    problem = header_value_problem(secret)
    if problem is None and auth_type in (AuthType.TOKEN, AuthType.APIKEY):
        problem = short_secret_problem(secret)
    return problem


class AuthSettings(_Model):
    type: AuthType
    value: SecretStr | None = None
    value_file: Path | None = None

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            # An invalid type has its own error; the value is then held to a credential's rules.
            auth_type = info.data.get("type", AuthType.APIKEY)
            problem = auth_value_problem(value.get_secret_value(), auth_type)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> AuthSettings:
        if (self.value is None) == (self.value_file is None):
            raise ValueError("set exactly one of value or value_file")
        if self.value is not None and not self.value.get_secret_value():
            raise ValueError("value must not be empty")
        return self


class TLSSettings(_Model):
    ca_file: Path | None = None
    insecure_skip_verify: bool = False


class TargetSettings(_Model):
    name: Name
    url: str
    tenant_id: HeaderValue
    auth: AuthSettings
    timezone: ZoneName | None = None
    max_concurrency: Annotated[int, Field(ge=1, le=1000)] = 8
    rate_limit: Annotated[float, Field(gt=0, le=100_000)] | None = None
    timeout: Duration | None = None
    tls: TLSSettings = TLSSettings()
    # Prometheus' proxy keys, checked and resolved by exporter/proxy.py.
    proxy_url: str | None = None
    no_proxy: str | None = None
    proxy_from_environment: bool = False
    proxy_connect_header: dict[str, list[SecretStr]] | None = None
    # Covers every group of the target, whatever the groups' own lists say.
    maintenance: MaintenanceList | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; use auth")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return url.rstrip("/")


class GroupSettings(_Inherited):
    name: Name
    target: Name
    plan_ids: list[Plan] | None = None
    plan_names: list[Plan] | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    max_backoff: Duration | None = None
    per_plan: PerPlan = False
    drilldown_max_plans: DrilldownMaxPlans | None = None

    @model_validator(mode="after")
    def _one_plan_list(self) -> GroupSettings:
        if (self.plan_ids is None) == (self.plan_names is None):
            raise ValueError("set exactly one of plan_ids or plan_names")
        return self


class ConfigFile(_Model):
    defaults: Defaults = Defaults()
    targets: list[TargetSettings]
    groups: list[GroupSettings] = []
    calendars: dict[Name, CalendarSettings] = {}


# --- the resolved configuration ---------------------------------------------------------------
