"""The YAML configuration: plan groups, CAN targets and their defaults.

``load_config(path)`` reads, expands ``${VAR}``, validates and resolves the file into a
``Config`` whose groups carry every inherited setting, or raises ``ConfigError`` with one
line per problem, each naming the key path. It does no network I/O and no logging: allowed
but suspicious settings come back in ``Config.warnings``.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

from exporter.boundedfile import (
    CONFIG_FILE_MAX_BYTES,
    PEM_FILE_MAX_BYTES,
    SECRET_FILE_MAX_BYTES,
    FileReadError,
    read_regular_file,
)
from exporter.can.models import local_zone
from exporter.durations import format_duration, parse_duration
from exporter.metrics import RESERVED_LABELS
from exporter.proxy import Proxy, connect_header_ignored, inline_proxy_secrets, resolve_proxy
from exporter.redact import MIN_SECRET_LENGTH, redact, short_secret_problem
from exporter.schedule import DataPeriods, Granularity, Schedule, cron_trigger, make_schedule
from exporter.textsafe import header_value_problem
from exporter.yamlfile import (
    ProblemsError,
    YamlError,
    load_yaml,
    os_reason,
    validation_problems,
)

LATEST_TIME_PATH = "/anymetrics/api/v1/accelerate/latestTime"


class ConfigError(ProblemsError):
    """The configuration is unusable; ``problems`` holds one message per problem."""

    label = "config error"


def parse_yaml(text: str) -> Any:
    """Parse YAML safely; raise ConfigError with the position on syntax errors."""
    try:
        return load_yaml(text)
    except YamlError as exc:
        raise ConfigError([str(exc)]) from None


# --- ${VAR} expansion ----------------------------------------------------------------------

_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: Any, environ: Mapping[str, str], path: str = "") -> Any:
    """Expand ``${VAR}`` in every string; ``$$`` stands for a literal ``$``.

    Raises ConfigError naming each key path whose variable is unset.
    """
    problems: list[str] = []
    expanded = _expand(value, environ, path, problems)
    if problems:
        raise ConfigError(problems)
    return expanded


def _expand(value: Any, environ: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        return _expand_string(value, environ, path, problems)
    if isinstance(value, dict):
        return {
            key: _expand(item, environ, _join(path, key), problems) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_expand(item, environ, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    return value


def _expand_string(text: str, environ: Mapping[str, str], path: str, problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in environ:
            problems.append(f"{path or '<root>'}: environment variable {name} is not set")
            return ""
        return environ[name]

    return _ENV_REFERENCE.sub(replace, text)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


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


DEFAULT_MAX_BACKOFF = 600.0
# per_plan: auto asks CAN about at most this many of an unhealthy group's plans, one by one.
DEFAULT_DRILLDOWN_MAX_PLANS = 50


# Checked key by key when the config is resolved, so each problem names its own key path.
RawLabels = dict[Any, Any]


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
            cron_trigger(expression, UTC)
        return expression


class Defaults(_Model):
    interval: Duration = 60.0
    timeout: Duration = 10.0
    max_backoff: Duration = DEFAULT_MAX_BACKOFF
    drilldown_max_plans: DrilldownMaxPlans = DEFAULT_DRILLDOWN_MAX_PLANS
    thresholds: Thresholds = Thresholds()
    labels: RawLabels = {}
    schedule: ScheduleSettings = ScheduleSettings()
    data_granularity: Granularity | None = None
    expected_data_delay: NonNegativeDuration | None = None


class AuthType(StrEnum):
    UID = "UID"
    TOKEN = "TOKEN"  # noqa: S105 - a method name, not a secret
    ACCOUNT = "ACCOUNT"
    APIKEY = "APIKEY"


def _header_value(value: str) -> str:
    problem = header_value_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Sent as an HTTP header: a CR LF in it would start a header of its own.
HeaderValue = Annotated[str, Field(min_length=1), AfterValidator(_header_value)]


def _auth_value_problem(secret: str, auth_type: AuthType) -> str | None:
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
            problem = _auth_value_problem(value.get_secret_value(), auth_type)
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


class GroupSettings(_Model):
    name: Name
    target: Name
    plan_ids: list[Plan] | None = None
    plan_names: list[Plan] | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    max_backoff: Duration | None = None
    per_plan: PerPlan = False
    drilldown_max_plans: DrilldownMaxPlans | None = None
    thresholds: Thresholds = Thresholds()
    labels: RawLabels = {}
    schedule: ScheduleSettings = ScheduleSettings()
    data_granularity: Granularity | None = None
    expected_data_delay: NonNegativeDuration | None = None

    @model_validator(mode="after")
    def _one_plan_list(self) -> GroupSettings:
        if (self.plan_ids is None) == (self.plan_names is None):
            raise ValueError("set exactly one of plan_ids or plan_names")
        return self


class ConfigFile(_Model):
    defaults: Defaults = Defaults()
    targets: list[TargetSettings]
    groups: list[GroupSettings] = []


# --- the resolved configuration ---------------------------------------------------------------


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

    @property
    def endpoint(self) -> str:
        return self.url + LATEST_TIME_PATH


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

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, self.name)


@dataclass(frozen=True, slots=True)
class Config:
    targets: Mapping[str, Target]
    groups: tuple[Group, ...]
    source: str | None = None
    warnings: tuple[str, ...] = ()

    def secrets(self) -> list[str]:
        return [
            *(t.auth_value.get_secret_value() for t in self.targets.values()),
            *(secret for t in self.targets.values() if t.proxy for secret in t.proxy.secrets()),
        ]

    def secret_files(self) -> list[Path]:
        """The files secrets were read from, to re-read when they change."""
        return sorted({t.auth_value_file for t in self.targets.values() if t.auth_value_file})


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # OSError: a directory of the zone database (`Asia`) or a name too long for a path.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as UTC") from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration file at ``path``."""
    source = str(path)
    try:
        text = read_regular_file(Path(path), CONFIG_FILE_MAX_BYTES).decode("utf-8")
    except FileReadError as exc:
        raise ConfigError([exc.describe("config file")], source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"cannot read config file: {os_reason(exc)}"], source) from None
    try:
        return parse_config(text, environ, base_dir=Path(path).parent, source=source)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None


def parse_config(
    text: str,
    environ: Mapping[str, str] | None = None,
    *,
    base_dir: Path = Path(),
    source: str | None = None,
) -> Config:
    """Validate configuration text; relative ``*_file`` paths resolve against ``base_dir``."""
    raw = parse_yaml(text)
    if raw is None:
        raise ConfigError(["the file is empty; it needs at least a targets list"])
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping with targets and groups"])
    environ = os.environ if environ is None else environ
    raw = expand_env(raw, environ)
    # An auth value written into the wrong key would otherwise be echoed by its error.
    inline_secrets = [*_inline_secrets(raw), *inline_proxy_secrets(raw)]
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_redacted(validation_problems(exc), inline_secrets)) from None
    return _resolve(parsed, base_dir, source, inline_secrets, environ)


def _inline_secrets(raw: dict[str, Any]) -> list[str]:
    targets = raw.get("targets")
    auths = (
        [t.get("auth") for t in targets if isinstance(t, dict)] if isinstance(targets, list) else []
    )
    # A short one is a refused credential or a user's UID: masked in an error line that it
    # did not come from (none quotes its input), it would only garble the line.
    return [
        auth["value"]
        for auth in auths
        if isinstance(auth, dict)
        and isinstance(auth.get("value"), str)
        and len(auth["value"]) >= MIN_SECRET_LENGTH
    ]


def _redacted(problems: Iterable[str], secrets: Sequence[str]) -> list[str]:
    return [redact(problem, secrets) for problem in problems]


def _resolve(
    parsed: ConfigFile,
    base_dir: Path,
    source: str | None,
    inline_secrets: Sequence[str],
    environ: Mapping[str, str],
) -> Config:
    problems: list[str] = []
    warnings: list[str] = []
    targets: dict[str, Target] = {}
    for index, target_settings in enumerate(parsed.targets):
        where = f"targets[{index}]"
        if target_settings.name in targets:
            problems.append(f"{where}.name: duplicate target name {target_settings.name!r}")
            continue
        try:
            targets[target_settings.name] = _resolve_target(
                target_settings, parsed.defaults, base_dir, environ
            )
        except ValueError as exc:
            problems.append(f"{where}.{exc}")
        if connect_header_ignored(target_settings.url, target_settings.proxy_connect_header):
            warnings.append(
                f"{where}.proxy_connect_header: has no effect on an http:// target; "
                "it is sent on the CONNECT request of https:// targets only"
            )

    default_labels, label_problems = _check_labels(parsed.defaults.labels, "defaults.labels")
    problems.extend(label_problems)
    groups: list[Group] = []
    seen_groups: set[tuple[str, str]] = set()
    for index, settings in enumerate(parsed.groups):
        where = f"groups[{index}]"
        target = targets.get(settings.target)
        if target is None:
            if not any(t.name == settings.target for t in parsed.targets):
                problems.append(f"{where}.target: unknown target {settings.target!r}")
            continue
        if (settings.target, settings.name) in seen_groups:
            problems.append(
                f"{where}.name: duplicate group {settings.name!r} for target {settings.target!r}"
            )
            continue
        seen_groups.add((settings.target, settings.name))
        problems.extend(_check_group(settings, where))
        labels, label_problems = _group_labels(settings.labels, default_labels, where)
        problems.extend(label_problems)
        try:
            group = _resolve_group(settings, target, parsed.defaults, labels)
        except ValueError as exc:
            problems.append(f"{where}.{exc}")
            continue
        if settings.drilldown_max_plans is not None and not group.drilldown:
            warnings.append(f"{where}.drilldown_max_plans: has no effect unless per_plan is auto")
        if group.interval < group.timeout:
            problems.append(
                f"{where}.interval: {format_duration(group.interval)} is shorter than the "
                f"timeout {format_duration(group.timeout)}"
            )
        groups.append(group)
    if problems:
        secrets = [*inline_secrets, *(t.auth_value.get_secret_value() for t in targets.values())]
        raise ConfigError(_redacted(problems, secrets))
    return Config(
        targets=targets,
        groups=tuple(groups),
        source=source,
        warnings=(*warnings, *_suspicious(groups)),
    )


def _resolve_target(
    settings: TargetSettings, defaults: Defaults, base_dir: Path, environ: Mapping[str, str]
) -> Target:
    auth = settings.auth
    value_file = base_dir / auth.value_file if auth.value_file is not None else None
    return Target(
        name=settings.name,
        url=settings.url,
        tenant_id=settings.tenant_id,
        auth_type=auth.type,
        auth_value=auth.value
        if auth.value is not None
        else _read_auth_value(value_file, auth.type),
        timezone=load_zone(settings.timezone) if settings.timezone else None,
        max_concurrency=settings.max_concurrency,
        rate_limit=settings.rate_limit,
        timeout=settings.timeout or defaults.timeout,
        ca_file=_resolve_ca_file(settings.tls.ca_file, base_dir),
        insecure_skip_verify=settings.tls.insecure_skip_verify,
        auth_value_file=value_file,
        proxy=resolve_proxy(
            settings.url,
            settings.proxy_url,
            settings.no_proxy,
            settings.proxy_from_environment,
            environ,
            connect_header=settings.proxy_connect_header,
        ),
    )


def _read_auth_value(path: Path | None, auth_type: AuthType) -> SecretStr:
    assert path is not None  # AuthSettings guarantees value or value_file
    try:
        value = read_regular_file(path, SECRET_FILE_MAX_BYTES).decode("utf-8").strip()
    except FileReadError as exc:
        raise ValueError(f"auth.value_file: {exc.describe()}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"auth.value_file: cannot read {path}: {os_reason(exc)}") from None
    if not value:
        raise ValueError(f"auth.value_file: {path} is empty")
    problem = _auth_value_problem(value, auth_type)
    if problem is not None:
        raise ValueError(f"auth.value_file: {path}: {problem}")
    return SecretStr(value)


def _resolve_ca_file(path: Path | None, base_dir: Path) -> Path | None:
    """The CA bundle's path, once it has been seen to load: the client builds its TLS context
    from it, and a file that is not a PEM bundle would fail there, with a traceback."""
    resolved = _resolve_path(path, base_dir, "tls.ca_file")
    if resolved is not None:
        # OpenSSL reads the path itself: check first that it is a regular file of sane size.
        try:
            read_regular_file(resolved, PEM_FILE_MAX_BYTES)
        except FileReadError as exc:
            raise ValueError(f"tls.ca_file: {exc.describe()}") from None
        try:
            ssl.create_default_context(cafile=str(resolved))
        except (ssl.SSLError, OSError, UnicodeDecodeError) as exc:
            detail = getattr(exc, "reason", None) or os_reason(exc)
            raise ValueError(f"tls.ca_file: {resolved} is not a PEM CA bundle: {detail}") from None
    return resolved


def _resolve_path(path: Path | None, base_dir: Path, key: str) -> Path | None:
    if path is None:
        return None
    resolved = base_dir / path
    if not resolved.exists():
        raise ValueError(f"{key}: no such file {resolved}")
    return resolved


def _check_group(settings: GroupSettings, where: str) -> Iterator[str]:
    key = "plan_ids" if settings.plan_ids is not None else "plan_names"
    plans = settings.plan_ids if settings.plan_ids is not None else settings.plan_names or []
    if not plans:
        yield f"{where}.{key}: must not be empty"
    seen: set[str] = set()
    for position, plan in enumerate(plans):
        if plan in seen:
            yield f"{where}.{key}[{position}]: duplicate plan {plan!r}"
        seen.add(plan)


def _resolve_group(
    settings: GroupSettings,
    target: Target,
    defaults: Defaults,
    labels: tuple[tuple[str, str], ...] = (),
) -> Group:
    if settings.plan_ids is not None:
        plan_key, plans = PlanKey.IDS, settings.plan_ids
    else:
        plan_key, plans = PlanKey.NAMES, settings.plan_names or []
    return Group(
        target=target.name,
        name=settings.name,
        plan_key=plan_key,
        plans=tuple(plans),
        interval=settings.interval or defaults.interval,
        timeout=settings.timeout or target.timeout,
        per_plan=settings.per_plan is True,
        max_backoff=settings.max_backoff or defaults.max_backoff,
        labels=labels,
        schedule=_resolve_schedule(settings, target, defaults),
        data_periods=_resolve_data_periods(settings, target, defaults),
        drilldown=settings.per_plan == "auto",
        drilldown_max_plans=settings.drilldown_max_plans or defaults.drilldown_max_plans,
        data_lag=_merge_thresholds(
            settings.thresholds.data_lag,
            defaults.thresholds.data_lag,
            DEFAULT_THRESHOLDS.data_lag,
        ),
        refresh_age=_merge_thresholds(
            settings.thresholds.refresh_age,
            defaults.thresholds.refresh_age,
            DEFAULT_THRESHOLDS.refresh_age,
        ),
        refreshes_without_new_data=_merge_count_thresholds(
            settings.thresholds.refreshes_without_new_data,
            defaults.thresholds.refreshes_without_new_data,
            DEFAULT_THRESHOLDS.refreshes_without_new_data,
        ),
    )


def _schedule_zone(settings: GroupSettings, target: Target, defaults: Defaults) -> tzinfo:
    """schedule.timezone, from the group or defaults, else the target's zone, else the local."""
    name = settings.schedule.timezone or defaults.schedule.timezone
    if name:
        return load_zone(name)
    return target.timezone or local_zone()


def _resolve_schedule(
    settings: GroupSettings, target: Target, defaults: Defaults
) -> Schedule | None:
    own, inherited = settings.schedule, defaults.schedule
    cron = own.refresh_cron if own.refresh_cron is not None else inherited.refresh_cron
    if not cron:
        return None
    grace = next((g for g in (own.grace, inherited.grace) if g is not None), DEFAULT_GRACE)
    try:
        return make_schedule(cron, _schedule_zone(settings, target, defaults), grace)
    except ValueError as exc:
        raise ValueError(f"schedule.refresh_cron: {exc}") from None


def _resolve_data_periods(
    settings: GroupSettings, target: Target, defaults: Defaults
) -> DataPeriods | None:
    granularity = settings.data_granularity or defaults.data_granularity
    if granularity is None:
        if settings.expected_data_delay is not None:
            raise ValueError("expected_data_delay: needs data_granularity (day or hour)")
        return None
    delay = next(
        (d for d in (settings.expected_data_delay, defaults.expected_data_delay) if d is not None),
        0.0,
    )
    return DataPeriods(granularity, delay, _schedule_zone(settings, target, defaults))


MAX_LABELS = 16
MAX_LABEL_VALUE_LENGTH = 256
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _check_labels(raw: RawLabels, where: str) -> tuple[dict[str, str], list[str]]:
    """The valid entries of one ``labels`` map, and a problem line for each invalid one."""
    labels: dict[str, str] = {}
    problems: list[str] = []
    for name, value in raw.items():
        problem = _label_name_problem(name)
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        problem = _label_value_problem(value)
        if problem is not None:
            problems.append(f"{where}.{name}: {problem}")
            continue
        labels[str(name)] = str(value)
    if len(raw) > MAX_LABELS:
        problems.append(f"{where}: {len(raw)} labels; at most {MAX_LABELS}")
    return labels, problems


def _label_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
        return (
            f"{name!r} is not a valid label name (letters, digits and _, not starting with a digit)"
        )
    if name.startswith("__"):
        return f"{name!r} is reserved: names starting with __ are for Prometheus' internal use"
    if name in RESERVED_LABELS:
        return f"{name!r} is reserved: the exporter or Prometheus sets it on the group's series"
    return None


def _label_value_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string; put numbers, booleans and dates in quotes"
    if len(value) > MAX_LABEL_VALUE_LENGTH:
        return f"{len(value)} characters; at most {MAX_LABEL_VALUE_LENGTH}"
    return None


def _group_labels(
    raw: RawLabels, defaults: Mapping[str, str], where: str
) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The group's labels over the defaults'; an empty value removes the label."""
    own, problems = _check_labels(raw, f"{where}.labels")
    merged = {**defaults, **own}
    labels = tuple(sorted((name, value) for name, value in merged.items() if value))
    if len(labels) > MAX_LABELS and len(raw) <= MAX_LABELS:
        problems.append(
            f"{where}.labels: {len(labels)} labels with those from defaults.labels; "
            f"at most {MAX_LABELS}"
        )
    return labels, problems


def _merge_thresholds(*layers: ThresholdPair | CountThresholdPair) -> ThresholdValues:
    """The first layer that sets a severity wins: group, then defaults, then built-in."""

    def first(severity: Literal["warning", "critical"]) -> float | None:
        return next(
            (getattr(layer, severity) for layer in layers if getattr(layer, severity) is not None),
            None,
        )

    return ThresholdValues(warning=first("warning"), critical=first("critical"))


def _merge_count_thresholds(*layers: CountThresholdPair) -> ThresholdValues:
    """As ``_merge_thresholds``; a 0 that wins turns the severity off."""
    merged = _merge_thresholds(*layers)
    return ThresholdValues(
        warning=float(merged.warning) if merged.warning else None,
        critical=float(merged.critical) if merged.critical else None,
    )


def _suspicious(groups: Sequence[Group]) -> list[str]:
    """Allowed but probably unintended: returned for the caller to log once secrets are masked."""
    if not groups:
        return ["groups: none configured; the exporter will only export its own metrics"]
    owners: dict[tuple[str, PlanKey, str], list[str]] = {}
    for group in groups:
        for plan in group.plans:
            owners.setdefault((group.target, group.plan_key, plan), []).append(group.name)
    return [
        f"groups: plan {plan!r} of target {target!r} is in {_names(names)}"
        for (target, _, plan), names in owners.items()
        if len(names) > 1
    ]


def _names(names: list[str], shown: int = 3) -> str:
    quoted = [repr(name) for name in names[:shown]]
    if len(names) <= shown:
        return f"both {quoted[0]} and {quoted[1]}" if len(names) == 2 else ", ".join(quoted)
    return f"{len(names)} groups: {', '.join(quoted)}, ..."
