"""Resolution of the validated file into the frozen ``Config``.

Inheritance (group over defaults over built-in), secret files, CA bundles, proxies, schedules
and the checks that span several keys (duplicates, interval against timeout). Problems are
collected, one line per key path, and raised together.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from exporter.config.calendars import (
    BusinessCalendar,
    CalendarSpec,
    covered_years,
    make_calendar,
    weekday_numbers,
)
from exporter.config.durations import format_duration
from exporter.config.errors import ConfigError
from exporter.config.files import (
    PEM_FILE_MAX_BYTES,
    SECRET_FILE_MAX_BYTES,
    FileReadError,
    read_regular_file,
)
from exporter.config.labels import check_labels, group_labels
from exporter.config.model import (
    AuthType,
    Config,
    FreshBelow,
    Group,
    PlanKey,
    Target,
    ThresholdValues,
)
from exporter.config.proxy import connect_header_ignored, resolve_proxy
from exporter.config.schedule import DataPeriods, Schedule, make_schedule
from exporter.config.schema import (
    DEFAULT_GRACE,
    DEFAULT_THRESHOLDS,
    ConfigFile,
    CountThresholdPair,
    Defaults,
    GroupSettings,
    TargetSettings,
    ThresholdPair,
    auth_value_problem,
)
from exporter.config.yamlfile import os_reason
from exporter.config.zones import load_zone, local_zone
from exporter.redact import redact


def resolve(
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

    default_labels, label_problems = check_labels(parsed.defaults.labels, "defaults.labels")
    problems.extend(label_problems)
    groups: list[Group] = []
    seen_groups: set[tuple[str, str]] = set()
    problems.extend(_check_calendar_name(parsed.defaults.calendar, parsed, "defaults"))
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
        problems.extend(_check_calendar_name(settings.calendar, parsed, where))
        labels, label_problems = group_labels(settings.labels, default_labels, where)
        problems.extend(label_problems)
        try:
            calendar = _resolve_calendar(settings, target, parsed)
            group = _resolve_group(settings, target, parsed.defaults, labels, calendar)
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
        raise ConfigError([redact(problem, secrets) for problem in problems])
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
    problem = auth_value_problem(value, auth_type)
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
    calendar: BusinessCalendar | None = None,
) -> Group:
    if settings.plan_ids is not None:
        plan_key, plans = PlanKey.IDS, settings.plan_ids
    else:
        plan_key, plans = PlanKey.NAMES, settings.plan_names or []
    fresh_below, slo_objective = _resolve_slo(settings, defaults)
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
        schedule=_resolve_schedule(settings, target, defaults, calendar),
        data_periods=_resolve_data_periods(settings, target, defaults, calendar),
        drilldown=settings.per_plan == "auto",
        drilldown_max_plans=settings.drilldown_max_plans or defaults.drilldown_max_plans,
        fresh_below=fresh_below,
        slo_objective=slo_objective,
        calendar=calendar,
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


def _resolve_slo(settings: GroupSettings, defaults: Defaults) -> tuple[FreshBelow, float | None]:
    """slo over defaults.slo, key by key; ``slo: null`` drops the inherited one whole, and an
    objective of "" or null drops the inherited objective."""
    if "slo" in settings.model_fields_set and settings.slo is None:
        return FreshBelow.CRITICAL, None
    layers = [layer for layer in (settings.slo, defaults.slo) if layer is not None]
    objective = next(
        (layer.objective for layer in layers if "objective" in layer.model_fields_set), None
    )
    fresh_below = next(
        (layer.fresh_below for layer in layers if layer.fresh_below is not None),
        FreshBelow.CRITICAL,
    )
    return fresh_below, objective


def _schedule_zone(settings: GroupSettings, target: Target, defaults: Defaults) -> tzinfo:
    """schedule.timezone, from the group or defaults, else the target's zone, else the local."""
    name = settings.schedule.timezone or defaults.schedule.timezone
    if name:
        return load_zone(name)
    return target.timezone or local_zone()


def _resolve_schedule(
    settings: GroupSettings,
    target: Target,
    defaults: Defaults,
    calendar: BusinessCalendar | None = None,
) -> Schedule | None:
    own, inherited = settings.schedule, defaults.schedule
    cron = own.refresh_cron if own.refresh_cron is not None else inherited.refresh_cron
    if not cron:
        return None
    grace = next((g for g in (own.grace, inherited.grace) if g is not None), DEFAULT_GRACE)
    try:
        return make_schedule(cron, _schedule_zone(settings, target, defaults), grace, calendar)
    except ValueError as exc:
        raise ValueError(f"schedule.refresh_cron: {exc}") from None


def _resolve_data_periods(
    settings: GroupSettings,
    target: Target,
    defaults: Defaults,
    calendar: BusinessCalendar | None = None,
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
    return DataPeriods(granularity, delay, _schedule_zone(settings, target, defaults), calendar)


def _check_calendar_name(name: str | None, parsed: ConfigFile, where: str) -> Iterator[str]:
    if name and name not in parsed.calendars:
        yield f"{where}.calendar: unknown calendar {name!r}; define it under calendars"


def _resolve_calendar(
    settings: GroupSettings, target: Target, parsed: ConfigFile
) -> BusinessCalendar | None:
    """groups[].calendar over defaults.calendar ("" removes an inherited one), in its own
    timezone or the group's schedule zone. An unknown name is reported by the check above."""
    name = settings.calendar if settings.calendar is not None else parsed.defaults.calendar
    found = parsed.calendars.get(name) if name else None
    if name is None or found is None:
        return None
    spec = CalendarSpec(
        name,
        weekday_numbers(found.weekends),
        found.holidays.country if found.holidays else None,
        found.holidays.subdivision if found.holidays else None,
        frozenset(found.extra_holidays),
        frozenset(found.workdays),
    )
    zone = load_zone(found.timezone) if found.timezone else None
    years = covered_years(datetime.now(UTC).year)
    return make_calendar(spec, zone or _schedule_zone(settings, target, parsed.defaults), years)


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
