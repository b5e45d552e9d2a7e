"""The declarations are complete and follow STYLE.md section 6, and what is exposed is them."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from exporter.clock import FixedClock
from exporter.config.labels import RESERVED_LABELS
from exporter.metrics import declarations as m
from exporter.metrics.collector import CanCollector
from exporter.metrics.selfmetrics import ExporterMetrics
from tests.helpers.builders import NOW
from tests.helpers.golden import GOLDEN, golden_store

# Prometheus sets job and instance on every scraped series, the text format le on histogram
# buckets (quantile on summaries).
PROMETHEUS_LABELS = frozenset({"job", "instance", "le", "quantile"})


def test_all_holds_every_declaration_once() -> None:
    declared = [value for value in vars(m).values() if isinstance(value, m.MetricSpec)]
    assert sorted(spec.name for spec in m.ALL) == sorted(spec.name for spec in declared)
    assert len({spec.exposed_name for spec in m.ALL}) == len(m.ALL)
    assert tuple(spec for spec in m.ALL if spec.level is not m.EXPORTER) == m.SCRAPED


def test_names_and_labels_follow_the_conventions() -> None:
    for spec in m.ALL:
        prefix = "aloudata_can_exporter_" if spec.level is m.EXPORTER else "aloudata_can_"
        assert re.fullmatch(rf"{prefix}[a-z_]+", spec.name), spec.name
        # Declared without _total: prometheus_client appends it to counters, and a gauge with
        # it is rejected by promtool.
        assert not spec.name.endswith("_total"), spec.name
        assert spec.exposed_name.endswith("_total") == (spec.type is m.COUNTER)
        assert spec.labels[: len(m.LEVEL_LABELS[spec.level])] == m.LEVEL_LABELS[spec.level]
        assert len(set(spec.labels)) == len(spec.labels), spec.name
        assert spec.help.strip() == spec.help, spec.name
        assert spec.unit in ("seconds", "timestamp_seconds", ""), spec.name
        if spec.type is m.HISTOGRAM:
            assert spec.unit == "seconds", spec.name


def test_the_golden_file_has_the_scraped_declarations_in_order() -> None:
    headers = re.findall(r"^# HELP (\S+) (.*)\n# TYPE \1 (\w+)$", GOLDEN.read_text(), re.M)
    assert headers == [(spec.exposed_name, spec.help, spec.type.value) for spec in m.SCRAPED]


def test_every_exposed_sample_is_declared_with_its_labels() -> None:
    registry = CollectorRegistry()
    registry.register(CanCollector(golden_store(), FixedClock(NOW)))
    ExporterMetrics(registry)
    by_name = {spec.name: spec for spec in m.ALL}
    families = list(registry.collect())
    assert [family.name for family in families] == [spec.name for spec in m.ALL]
    for family in families:
        spec = by_name[family.name]
        assert family.type == spec.type.value
        assert family.documentation == spec.help
        for sample in family.samples:
            if spec is m.GROUP_INFO:  # plus the group's own labels
                assert set(spec.labels) <= set(sample.labels)
            else:
                assert set(sample.labels) - {"le"} == set(spec.labels), sample


def test_reserved_labels_are_every_declared_label_and_prometheus_own() -> None:
    # A group's configured labels may not use them; config must not import metrics, so this
    # test keeps the list in config/labels.py up with the declarations.
    declared = {label for spec in m.ALL for label in spec.labels}
    assert declared | PROMETHEUS_LABELS == RESERVED_LABELS
