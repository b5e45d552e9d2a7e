"""Turns the stored snapshots into metric families at scrape time.

Ages (lag, refresh age) are computed against the clock when Prometheus scrapes, so they
keep growing between polls and while CAN is unreachable. A group or plan that leaves the
configuration leaves the store, and its series disappear with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from exporter.clock import Clock
from exporter.config.model import Group
from exporter.metrics.declarations import SCRAPED, MetricSpec, MetricType
from exporter.metrics.samples import GroupLabels, write_group, write_targets
from exporter.state.snapshots import DurationHistogram, SnapshotStore

_FAMILY = {
    MetricType.GAUGE: GaugeMetricFamily,
    MetricType.COUNTER: CounterMetricFamily,
    MetricType.HISTOGRAM: HistogramMetricFamily,
}


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
        snapshots = self._store.snapshots()
        write_targets(families, self._store.targets(), now)
        for snapshot in snapshots:
            write_group(families, snapshot, now)
        return families.all()


class Families:
    """One scrape's metric families, one per scraped declaration, filled group by group: the
    collector's ``Sink``."""

    def __init__(self) -> None:
        self._families: dict[MetricSpec, Metric] = {
            spec: _FAMILY[spec.type](spec.name, spec.help, labels=spec.labels) for spec in SCRAPED
        }
        self._group: list[str] = []
        self._plan: list[str] = []

    def all(self) -> list[Metric]:
        return list(self._families.values())

    def target(self, spec: MetricSpec, target: str, value: float) -> None:
        self._add(spec, [target], value)

    def begin_group(self, group: Group) -> None:
        self._group = [group.target, group.name]

    def info(self, spec: MetricSpec, labels: GroupLabels, value: float) -> None:
        # Each group has its own label names, which add_metric's fixed names cannot express.
        target, group = self._group
        all_labels = {"target": target, "group": group, **dict(labels)}
        self._families[spec].samples.append(Sample(spec.name, all_labels, value))

    def group(self, spec: MetricSpec, value: float) -> None:
        self._add(spec, self._group, value)

    def labelled(self, spec: MetricSpec, label: str, value: float) -> None:
        self._add(spec, [*self._group, label], value)

    def histogram(self, spec: MetricSpec, durations: DurationHistogram) -> None:
        family = self._families[spec]
        assert isinstance(family, HistogramMetricFamily)
        buckets = [(bucket_bound(bound), count) for bound, count in durations.cumulative()]
        family.add_metric(self._group, buckets=buckets, sum_value=durations.total)

    def begin_plan(self, plan: str) -> None:
        self._plan = [*self._group, plan]

    def plan(self, spec: MetricSpec, value: float) -> None:
        self._add(spec, self._plan, value)

    def _add(self, spec: MetricSpec, labels: list[str], value: float) -> None:
        family = self._families[spec]
        assert isinstance(family, GaugeMetricFamily | CounterMetricFamily)
        family.add_metric(labels, value)


def bucket_bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
