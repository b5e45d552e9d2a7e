"""What each scraped metric's value is, computed once for both renderers.

``write_target`` and ``write_group`` walk one snapshot and hand every value to a ``Sink`` with
the metric it is a sample of; the sink adds the labels and formats it. The collector's sink
fills prometheus_client families (OpenMetrics, and the reference), the exposition's writes the
text format straight. Ages are computed against ``now``, the scrape's time.

The order of the calls is the order of the samples within each metric: both renderers write
the same bytes because they are fed the same calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from exporter.can.models import Reading
from exporter.config.calendars import BusinessCalendar
from exporter.config.maintenance import active, active_end
from exporter.config.model import Group, ThresholdValues
from exporter.metrics import declarations as m
from exporter.state.snapshots import REASONS, DurationHistogram, GroupSnapshot, TargetSnapshot

GroupLabels = tuple[tuple[str, str], ...]


class Sink(Protocol):
    """Where the values go: each method adds one sample (or a histogram) to ``spec``."""

    def target(self, spec: m.MetricSpec, target: str, value: float) -> None:
        """A sample labelled with the target."""

    def begin_group(self, group: Group) -> None:
        """The samples until the next call are the group's: labelled with its target and name."""

    def info(self, spec: m.MetricSpec, labels: GroupLabels, value: float) -> None:
        """A sample with the group's labels and the given ones (its configured labels)."""

    def group(self, spec: m.MetricSpec, value: float) -> None:
        """A sample with the group's labels."""

    def labelled(self, spec: m.MetricSpec, label: str, value: float) -> None:
        """A sample with the group's labels and ``label`` as the value of the spec's extra
        label (``severity``, ``reason``)."""

    def histogram(self, spec: m.MetricSpec, durations: DurationHistogram) -> None:
        """The group's histogram: its buckets, count and sum."""

    def begin_plan(self, plan: str) -> None:
        """The ``plan`` samples until the next call are this plan's, of the current group."""

    def plan(self, spec: m.MetricSpec, value: float) -> None:
        """A sample with the current plan's labels."""


def write_target(out: Sink, target: TargetSnapshot) -> None:
    out.target(m.TARGET_CIRCUIT_OPEN, target.name, 1.0 if target.circuit_open else 0.0)
    out.target(m.TARGET_REQUESTS, target.name, float(target.requests_sent))


def write_targets(out: Sink, targets: Sequence[TargetSnapshot], now: float) -> None:
    """Every target's samples. Only the target's own windows put it in maintenance, not
    one of its groups'."""
    for target in targets:
        write_target(out, target)
        in_force = active(target.maintenance, now)
        out.target(m.TARGET_MAINTENANCE, target.name, 1.0 if in_force else 0.0)


def write_group(out: Sink, snapshot: GroupSnapshot, now: float) -> None:
    group = snapshot.group
    out.begin_group(group)
    out.info(m.GROUP_INFO, group.labels, 1.0)
    _thresholds(out, m.DATA_LAG_THRESHOLD, group.data_lag)
    _thresholds(out, m.REFRESH_AGE_THRESHOLD, group.refresh_age)
    _thresholds(out, m.REFRESHES_WITHOUT_NEW_DATA_THRESHOLD, group.refreshes_without_new_data)
    reading = snapshot.reading
    if reading is not None:
        _reading(out, reading, now)
    if group.schedule is not None or group.data_periods is not None:
        for spec, value in schedule_values(group, reading, now):
            out.group(spec, value)
    if group.calendar is not None:
        for spec, value in business_values(group.calendar, reading, now):
            out.group(spec, value)
    _status(out, snapshot)
    _freshness(out, snapshot, now)
    _maintenance(out, group, now)
    out.histogram(m.POLL_DURATION, snapshot.durations)
    for reason, count in zip(REASONS, snapshot.errors, strict=True):
        # Reasons that never happened stay absent, which keeps a healthy group to few series.
        if count:
            out.labelled(m.POLL_ERRORS, reason.value, float(count))
    _plans(out, snapshot, now)


def _status(out: Sink, snapshot: GroupSnapshot) -> None:
    if snapshot.poll_success is not None:
        out.group(m.POLL_SUCCESS, 1.0 if snapshot.poll_success else 0.0)
    if snapshot.last_success_time is not None:
        out.group(m.LAST_SUCCESS_TIMESTAMP, snapshot.last_success_time.timestamp())
    if snapshot.next_poll_time is not None:
        out.group(m.NEXT_POLL_TIMESTAMP, snapshot.next_poll_time.timestamp())
    changes = snapshot.changes
    if snapshot.polled:
        out.group(m.CONSECUTIVE_FAILURES, float(snapshot.consecutive_failures))
        # The counter starts at 0 with the first poll, so increase() sees the first regression.
        out.group(m.DATA_TIME_REGRESSIONS, float(changes.regressions))
        out.group(m.REFRESHES_WITHOUT_NEW_DATA, float(changes.refreshes_without_new_data))
    if changes.last_change_time is not None:
        out.group(m.DATA_TIME_LAST_CHANGE, changes.last_change_time.timestamp())


def _freshness(out: Sink, snapshot: GroupSnapshot, now: float) -> None:
    ledger = snapshot.freshness
    fresh = ledger.is_fresh(now)
    if fresh is not None:
        out.group(m.FRESH, 1.0 if fresh else 0.0)
    if snapshot.group.slo_objective is not None:
        out.group(m.SLO_OBJECTIVE, snapshot.group.slo_objective)
    # From the start, at 0, so that increase() sees the first seconds.
    fresh_seconds, observed_seconds = ledger.totals(now)
    out.group(m.FRESH_SECONDS, fresh_seconds)
    out.group(m.OBSERVED_SECONDS, observed_seconds)


def _maintenance(out: Sink, group: Group, now: float) -> None:
    # 0 outside a window rather than absent, so that rules can say "unless ... == 1".
    window = active_end(group.maintenance, now)
    out.group(m.MAINTENANCE, 0.0 if window is None else 1.0)
    if window is not None:
        out.group(m.MAINTENANCE_END, window.end)


def _plans(out: Sink, snapshot: GroupSnapshot, now: float) -> None:
    for plan in snapshot.plans:
        out.begin_plan(plan.plan)
        if plan.poll_success is not None:
            out.plan(m.PLAN_POLL_SUCCESS, 1.0 if plan.poll_success else 0.0)
        if plan.missing:
            out.plan(m.PLAN_MISSING, 1.0)
        plan_reading = plan.reading
        if plan_reading is not None:
            out.plan(m.PLAN_NOT_READY, 1.0 if plan_reading.has_not_ready else 0.0)
            if plan_reading.latest_data_time is not None:
                out.plan(m.PLAN_DATA_LAG, now - plan_reading.latest_data_time.timestamp())
            if plan_reading.latest_refresh_time is not None:
                out.plan(m.PLAN_REFRESH_AGE, now - plan_reading.latest_refresh_time.timestamp())


def _reading(out: Sink, reading: Reading, now: float) -> None:
    out.group(m.NOT_READY, 1.0 if reading.has_not_ready else 0.0)
    if reading.latest_data_time is not None:
        data_time = reading.latest_data_time.timestamp()
        out.group(m.LATEST_DATA_TIMESTAMP, data_time)
        out.group(m.DATA_LAG, now - data_time)
    if reading.latest_refresh_time is not None:
        refresh_time = reading.latest_refresh_time.timestamp()
        out.group(m.LATEST_REFRESH_TIMESTAMP, refresh_time)
        out.group(m.REFRESH_AGE, now - refresh_time)


def _thresholds(out: Sink, spec: m.MetricSpec, values: ThresholdValues) -> None:
    if values.warning is not None:
        out.labelled(spec, "warning", values.warning)
    if values.critical is not None:
        out.labelled(spec, "critical", values.critical)


def schedule_values(
    group: Group, reading: Reading | None, now: float
) -> Iterator[tuple[m.MetricSpec, float]]:
    """The deadline, how overdue, and periods behind, for a group with a schedule or a
    data_granularity. Without a reading yet only the deadline: unknown is not late."""
    if group.schedule is not None:
        deadline = group.schedule.deadline(now)
        if deadline is not None:
            yield m.REFRESH_DEADLINE_TIMESTAMP, deadline.deadline
            if reading is not None:
                refresh_time = reading.latest_refresh_time
                refresh = refresh_time.timestamp() if refresh_time is not None else None
                yield m.REFRESH_OVERDUE, deadline.overdue(refresh, now)
    if (
        group.data_periods is not None
        and reading is not None
        and reading.latest_data_time is not None
    ):
        behind = group.data_periods.behind(reading.latest_data_time.timestamp(), now)
        if behind is not None:
            yield m.DATA_LAG_PERIODS, float(behind)


def business_values(
    calendar: BusinessCalendar, reading: Reading | None, now: float
) -> Iterator[tuple[m.MetricSpec, float]]:
    """The business lag and age on the group's calendar, and whether today is a business day."""
    if reading is not None and reading.latest_data_time is not None:
        data_time = reading.latest_data_time.timestamp()
        yield m.DATA_LAG_BUSINESS, calendar.business_seconds(data_time, now)
    if reading is not None and reading.latest_refresh_time is not None:
        refresh_time = reading.latest_refresh_time.timestamp()
        yield m.REFRESH_AGE_BUSINESS, calendar.business_seconds(refresh_time, now)
    yield m.BUSINESS_DAY, 1.0 if calendar.today_is_business_day(now) else 0.0
