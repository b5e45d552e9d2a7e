"""Human-readable views of the snapshots: the ``--once`` table and landing-page cells."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from exporter.config.durations import format_duration
from exporter.config.maintenance import active_end
from exporter.config.model import ThresholdValues
from exporter.metrics import declarations as m
from exporter.metrics.samples import schedule_values
from exporter.state.snapshots import GroupSnapshot
from exporter.textsafe import escape_controls

_COLUMNS = (
    "TARGET",
    "GROUP",
    "STATUS",
    "DATA TIME (UTC)",
    "DATA LAG",
    "REFRESH TIME (UTC)",
    "REFRESH AGE",
    "NOT READY",
    "DURATION",
    "NEXT POLL",
    "ATTENTION",
)


class Severity(Enum):
    CRITICAL = "critical"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One condition a shipped alert rule tests, true at the time of the report."""

    severity: Severity
    text: str


def describe_status(snapshot: GroupSnapshot) -> str:
    if snapshot.poll_success is None:
        return "pending"
    if snapshot.poll_success:
        return "ok"
    status = f"failed: {snapshot.last_reason}" if snapshot.last_reason else "failed"
    if snapshot.consecutive_failures > 1:
        status += f" ({snapshot.consecutive_failures} in a row)"
    return status


def format_age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = round((now - moment).total_seconds())
    if seconds < 0:
        return f"{format_duration(-seconds)} ahead"
    return format_duration(seconds)


def format_until(moment: datetime | None, now: datetime) -> str:
    """How long until ``moment``: ``in 4m``, ``due`` when it has passed, ``-`` when unknown."""
    if moment is None:
        return "-"
    seconds = round((moment - now).total_seconds())
    return f"in {format_duration(seconds)}" if seconds > 0 else "due"


def format_time(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def table_rows(snapshot: GroupSnapshot, now: datetime) -> list[str]:
    reading = snapshot.reading
    group = snapshot.group
    durations = snapshot.durations
    return [
        group.target,
        group.name,
        describe_status(snapshot),
        format_time(reading.latest_data_time if reading else None),
        format_age(reading.latest_data_time if reading else None, now),
        format_time(reading.latest_refresh_time if reading else None),
        format_age(reading.latest_refresh_time if reading else None, now),
        ("yes" if reading.has_not_ready else "no") if reading else "-",
        f"{durations.total / durations.count:.3f}s" if durations.count else "-",
        format_until(snapshot.next_poll_time, now),
        describe_attention(snapshot, now),
    ]


def findings(snapshot: GroupSnapshot, now: datetime) -> list[Finding]:
    """What the alert rules in deploy/prometheus compare, as they compare it, at ``now``:
    lag and age strictly over a threshold, not ready, a refresh overdue, data periods behind,
    refreshes without new data at a threshold. Critical first. The rules also wait their
    ``for:`` before firing; a failed poll shows in the status instead."""
    group, reading = snapshot.group, snapshot.reading
    if reading is None:
        return []
    at = now.timestamp()
    found: list[Finding] = []
    calendar = group.calendar
    for measure, moment, thresholds in (
        ("data lag", reading.latest_data_time, group.data_lag),
        ("refresh age", reading.latest_refresh_time, group.refresh_age),
    ):
        if moment is None:
            continue
        # On a calendar the rules compare business seconds: days off add nothing.
        if calendar is not None:
            age = calendar.business_seconds(moment.timestamp(), at)
            name, shown = f"business {measure}", format_duration(round(max(age, 0.0)))
        else:
            age, shown = at - moment.timestamp(), format_age(moment, now)
            name = measure
        if passed := _passed(age, thresholds, strictly=True):
            severity, threshold = passed
            found.append(Finding(severity, f"{name} {shown} over {format_duration(threshold)}"))
    if reading.has_not_ready:
        found.append(Finding(Severity.WARNING, "not ready"))
    for spec, value in schedule_values(group, reading, at):
        if spec is m.REFRESH_OVERDUE and value > 0:
            overdue = format_duration(round(value))
            found.append(Finding(Severity.WARNING, f"refresh overdue {overdue}"))
        elif spec is m.DATA_LAG_PERIODS and value >= 1:
            found.append(Finding(Severity.WARNING, f"{value:.0f} data periods behind"))
    streak = snapshot.changes.refreshes_without_new_data
    if passed := _passed(streak, group.refreshes_without_new_data, strictly=False):
        severity, threshold = passed
        text = f"{streak} refreshes without new data (threshold {threshold:.0f})"
        found.append(Finding(severity, text))
    return sorted(found, key=lambda finding: finding.severity is not Severity.CRITICAL)


def _passed(
    value: float, thresholds: ThresholdValues, *, strictly: bool
) -> tuple[Severity, float] | None:
    """The highest severity whose threshold ``value`` passes, and that threshold."""
    for severity, threshold in (
        (Severity.CRITICAL, thresholds.critical),
        (Severity.WARNING, thresholds.warning),
    ):
        if threshold is not None and (value > threshold if strictly else value >= threshold):
            return severity, threshold
    return None


def describe_findings(found: Sequence[Finding]) -> str:
    return "; ".join(f"{finding.severity.value}: {finding.text}" for finding in found) or "-"


def describe_maintenance(snapshot: GroupSnapshot, now: datetime) -> str | None:
    """``maintenance until <end> UTC, <reason>`` while a window covers the group (the one that
    ends last), else None. The reason comes from config: escape it where it is shown."""
    window = active_end(snapshot.group.maintenance, now.timestamp())
    if window is None:
        return None
    end = format_time(datetime.fromtimestamp(window.end, UTC))
    return f"maintenance until {end} UTC, {window.reason}"


def describe_attention(snapshot: GroupSnapshot, now: datetime) -> str:
    """The attention cell: the maintenance in force (its alerts are silenced), then findings."""
    found = findings(snapshot, now)
    maintenance = describe_maintenance(snapshot, now)
    if maintenance is None:
        return describe_findings(found)
    return "; ".join([maintenance, *([describe_findings(found)] if found else [])])


def render_table(snapshots: Sequence[GroupSnapshot], now: datetime) -> str:
    """A fixed-width table, one group a row, then one line per failure with CAN's details."""
    # Cells and details hold CAN's texts and config values: no control character gets through.
    rows = [
        list(_COLUMNS),
        *([escape_controls(cell) for cell in table_rows(snapshot, now)] for snapshot in snapshots),
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    details: list[str] = []
    for snapshot in snapshots:
        where = f"{snapshot.group.target}/{snapshot.group.name}"
        if snapshot.last_error:
            details.append(f"{where}: {snapshot.last_error}")
        # Named by the per-plan requests (per_plan: true, or auto's drilldown).
        details.extend(
            f"{where}: plan {p.plan} does not exist" for p in snapshot.plans if p.missing
        )
    return "\n".join([*lines, *map(escape_controls, details)]) + "\n"
