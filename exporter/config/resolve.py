"""Resolution of the validated file into the frozen ``Config``.

Inheritance (group over defaults over built-in), secret files, CA bundles, proxies, schedules
and the checks that span several keys (duplicates, interval against timeout). Problems are
collected, one line per key path, and raised together.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Literal

from exporter.config.calendars import (
    BusinessCalendar,
    CalendarSpec,
    covered_years,
    make_calendar,
    weekday_numbers,
)
from exporter.config.durations import format_duration
from exporter.config.errors import ConfigError
from exporter.config.labels import check_labels, group_labels
from exporter.config.maintenance import MaintenanceWindow, resolve_windows
from exporter.config.model import (
    Config,
    FreshBelow,
    Group,
    PlanKey,
    Target,
    ThresholdValues,
)
from exporter.config.proxy import connect_header_ignored
from exporter.config.schedule import DataPeriods, Schedule, make_schedule
from exporter.config.schema import (
    DEFAULT_GRACE,
    DEFAULT_THRESHOLDS,
    ConfigFile,
    CountThresholdPair,
    Defaults,
    GroupSettings,
    ThresholdPair,
)
from exporter.config.targets import resolve_target
from exporter.config.zones import load_zone, local_zone
from exporter.redact import redact


def resolve(
    parsed: ConfigFile,
    base_dir: Path,
    source: str | None,
    inline_secrets: Sequence[str],
    environ: Mapping[str, str],
    *,
    now: float | None = None,
) -> Config:
    """``now``: the Unix time windows that have ended are judged against; the clock's by default."""
    at = time.time() if now is None else now
    problems: list[str] = []
    warnings: list[str] = []
    targets: dict[str, Target] = {}
    default_windows = resolve_windows(
        parsed.defaults.maintenance, "defaults", at, problems, warnings
    )
    target_windows: dict[str, tuple[MaintenanceWindow, ...]] = {}
    for index, target_settings in enumerate(parsed.targets):
        where = f"targets[{index}]"
        if target_settings.name in targets:
            problems.append(f"{where}.name: duplicate target name {target_settings.name!r}")
            continue
        try:
            targets[target_settings.name] = resolve_target(
                target_settings, parsed.defaults, base_dir, environ
            )
        except ValueError as exc:
            problems.append(f"{where}.{exc}")
        if connect_header_ignored(target_settings.url, target_settings.proxy_connect_header):
            warnings.append(
                f"{where}.proxy_connect_header: has no effect on an http:// target; "
                "it is sent on the CONNECT request of https:// targets only"
            )
        target_windows[target_settings.name] = resolve_windows(
            target_settings.maintenance, where, at, problems, warnings, from_target=True
        )

    groups = _resolve_groups(
        parsed,
        targets,
        target_windows=target_windows,
        default_windows=default_windows,
        at=at,
        problems=problems,
        warnings=warnings,
    )
    if problems:
        secrets = [*inline_secrets, *(t.auth_value.get_secret_value() for t in targets.values())]
        raise ConfigError([redact(problem, secrets) for problem in problems])
    return Config(
        targets=targets,
        groups=tuple(groups),
        source=source,
        warnings=(*warnings, *_suspicious(groups)),
        target_maintenance={name: windows for name, windows in target_windows.items() if windows},
    )


def _resolve_groups(
    parsed: ConfigFile,
    targets: Mapping[str, Target],
    *,
    target_windows: Mapping[str, tuple[MaintenanceWindow, ...]],
    default_windows: tuple[MaintenanceWindow, ...],
    at: float,
    problems: list[str],
    warnings: list[str],
) -> list[Group]:
    """Each ``groups`` entry resolved; each problem or warning appended, naming its key path."""
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
        # The target's windows always; the group's own list, when set, replaces defaults'.
        own = (
            default_windows
            if settings.maintenance is None
            else resolve_windows(settings.maintenance, where, at, problems, warnings)
        )
        group = replace(group, maintenance=(*target_windows.get(target.name, ()), *own))
        if settings.drilldown_max_plans is not None and not group.drilldown:
            warnings.append(f"{where}.drilldown_max_plans: has no effect unless per_plan is auto")
        if group.interval < group.timeout:
            problems.append(
                f"{where}.interval: {format_duration(group.interval)} is shorter than the "
                f"timeout {format_duration(group.timeout)}"
            )
        groups.append(group)
    return groups


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
