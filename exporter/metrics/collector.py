"""Turns the stored snapshots into metric families at scrape time.

Ages (lag, refresh age) are computed against the clock when Prometheus scrapes, so they
keep growing between polls and while CAN is unreachable. A group or plan that leaves the
configuration leaves the store, and its series disappear with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from exporter.can.models import Reading
from exporter.clock import Clock
from exporter.config.model import Group, ThresholdValues
from exporter.metrics import declarations as m
from exporter.state import REASONS, GroupSnapshot, SnapshotStore, TargetSnapshot

_GAUGES = (
    m.GROUP_INFO,
    m.DATA_LAG,
    m.REFRESH_AGE,
    m.NOT_READY,
    m.LATEST_DATA_TIMESTAMP,
    m.LATEST_REFRESH_TIMESTAMP,
    m.POLL_SUCCESS,
    m.LAST_SUCCESS_TIMESTAMP,
    m.NEXT_POLL_TIMESTAMP,
    m.CONSECUTIVE_FAILURES,
    m.DATA_LAG_THRESHOLD,
    m.REFRESH_AGE_THRESHOLD,
    m.REFRESH_DEADLINE_TIMESTAMP,
    m.REFRESH_OVERDUE,
    m.DATA_LAG_PERIODS,
    m.REFRESHES_WITHOUT_NEW_DATA,
    m.REFRESHES_WITHOUT_NEW_DATA_THRESHOLD,
    m.DATA_TIME_LAST_CHANGE,
    m.PLAN_DATA_LAG,
    m.PLAN_REFRESH_AGE,
    m.PLAN_NOT_READY,
    m.PLAN_POLL_SUCCESS,
    m.PLAN_MISSING,
    m.TARGET_CIRCUIT_OPEN,
)


class CanCollector(Collector):
    def __init__(self, store: SnapshotStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        # Registering without describe() would run a whole collect().
        return Families().all()

    def collect(self) -> Iterable[Metric]:
        now = self._clock.now().timestamp()
        families = Families()
        for target in self._store.targets():
            families.add_target(target)
        for snapshot in self._store.snapshots():
            families.add_group(snapshot, now)
        return families.all()


class Families:
    """One scrape's metric families, filled group by group."""

    def __init__(self) -> None:
        self.gauges = {
            spec.name: GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
            for spec in _GAUGES
        }
        self.durations = HistogramMetricFamily(
            m.POLL_DURATION.name, m.POLL_DURATION.help, labels=m.POLL_DURATION.labels
        )
        self.errors = CounterMetricFamily(
            m.POLL_ERRORS.name, m.POLL_ERRORS.help, labels=m.POLL_ERRORS.labels
        )
        self.regressions = CounterMetricFamily(
            m.DATA_TIME_REGRESSIONS.name,
            m.DATA_TIME_REGRESSIONS.help,
            labels=m.DATA_TIME_REGRESSIONS.labels,
        )
        self.requests = CounterMetricFamily(
            m.TARGET_REQUESTS.name, m.TARGET_REQUESTS.help, labels=m.TARGET_REQUESTS.labels
        )

    def all(self) -> list[Metric]:
        return [
            *self.gauges.values(),
            self.durations,
            self.errors,
            self.regressions,
            self.requests,
        ]

    def add_target(self, target: TargetSnapshot) -> None:
        self._gauge(m.TARGET_CIRCUIT_OPEN, [target.name], 1.0 if target.circuit_open else 0.0)
        self.requests.add_metric([target.name], target.requests_sent)

    def add_group(self, snapshot: GroupSnapshot, now: float) -> None:
        group = snapshot.group
        labels = [group.target, group.name]
        self._add_info(group)
        self._add_thresholds(labels, m.DATA_LAG_THRESHOLD, group.data_lag)
        self._add_thresholds(labels, m.REFRESH_AGE_THRESHOLD, group.refresh_age)
        self._add_thresholds(
            labels, m.REFRESHES_WITHOUT_NEW_DATA_THRESHOLD, group.refreshes_without_new_data
        )
        for spec, value in _group_values(snapshot, now):
            self._gauge(spec, labels, value)
        if snapshot.poll_success is not None:
            self._gauge(m.POLL_SUCCESS, labels, 1.0 if snapshot.poll_success else 0.0)
        if snapshot.last_success_time is not None:
            self._gauge(m.LAST_SUCCESS_TIMESTAMP, labels, snapshot.last_success_time.timestamp())
        if snapshot.next_poll_time is not None:
            self._gauge(m.NEXT_POLL_TIMESTAMP, labels, snapshot.next_poll_time.timestamp())
        if snapshot.polled:
            self._gauge(m.CONSECUTIVE_FAILURES, labels, snapshot.consecutive_failures)
        self._add_changes(labels, snapshot)
        buckets = [(bucket_bound(bound), count) for bound, count in snapshot.durations.cumulative()]
        self.durations.add_metric(labels, buckets=buckets, sum_value=snapshot.durations.total)
        for reason, count in zip(REASONS, snapshot.errors, strict=True):
            # Reasons that never happened stay absent, which keeps a healthy group to few series.
            if count:
                self.errors.add_metric([*labels, reason.value], count)
        self._add_plans(snapshot, labels, now)

    def _add_plans(self, snapshot: GroupSnapshot, labels: list[str], now: float) -> None:
        for plan in snapshot.plans:
            plan_labels = [*labels, plan.plan]
            if plan.poll_success is not None:
                self._gauge(m.PLAN_POLL_SUCCESS, plan_labels, 1.0 if plan.poll_success else 0.0)
            if plan.missing:
                self._gauge(m.PLAN_MISSING, plan_labels, 1.0)
            if plan.reading is not None:
                for spec, value in _plan_values(plan.reading, now):
                    self._gauge(spec, plan_labels, value)

    def _add_info(self, group: Group) -> None:
        # Each group has its own label names, which add_metric's fixed names cannot express.
        labels = {"target": group.target, "group": group.name, **dict(group.labels)}
        self.gauges[m.GROUP_INFO.name].samples.append(Sample(m.GROUP_INFO.name, labels, 1.0))

    def _add_changes(self, labels: list[str], snapshot: GroupSnapshot) -> None:
        changes = snapshot.changes
        if snapshot.polled:
            # The counter starts at 0 with the first poll, so increase() sees the first regression.
            self.regressions.add_metric(labels, changes.regressions)
            self._gauge(m.REFRESHES_WITHOUT_NEW_DATA, labels, changes.refreshes_without_new_data)
        if changes.last_change_time is not None:
            self._gauge(m.DATA_TIME_LAST_CHANGE, labels, changes.last_change_time.timestamp())

    def _gauge(self, spec: m.MetricSpec, labels: list[str], value: float) -> None:
        self.gauges[spec.name].add_metric(labels, value)

    def _add_thresholds(
        self, labels: list[str], spec: m.MetricSpec, values: ThresholdValues
    ) -> None:
        if values.warning is not None:
            self._gauge(spec, [*labels, "warning"], values.warning)
        if values.critical is not None:
            self._gauge(spec, [*labels, "critical"], values.critical)


def bucket_bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _group_values(snapshot: GroupSnapshot, now: float) -> Iterator[tuple[m.MetricSpec, float]]:
    if snapshot.reading is not None:
        yield from _reading_values(snapshot.reading, now)
    yield from schedule_values(snapshot.group, snapshot.reading, now)


def _reading_values(reading: Reading, now: float) -> Iterator[tuple[m.MetricSpec, float]]:
    yield m.NOT_READY, 1.0 if reading.has_not_ready else 0.0
    if reading.latest_data_time is not None:
        data_time = reading.latest_data_time.timestamp()
        yield m.LATEST_DATA_TIMESTAMP, data_time
        yield m.DATA_LAG, now - data_time
    if reading.latest_refresh_time is not None:
        refresh_time = reading.latest_refresh_time.timestamp()
        yield m.LATEST_REFRESH_TIMESTAMP, refresh_time
        yield m.REFRESH_AGE, now - refresh_time


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


def _plan_values(reading: Reading, now: float) -> Iterator[tuple[m.MetricSpec, float]]:
    yield m.PLAN_NOT_READY, 1.0 if reading.has_not_ready else 0.0
    if reading.latest_data_time is not None:
        yield m.PLAN_DATA_LAG, now - reading.latest_data_time.timestamp()
    if reading.latest_refresh_time is not None:
        yield m.PLAN_REFRESH_AGE, now - reading.latest_refresh_time.timestamp()
