"""The exporter's own gauges: build info, shard and config reload state, as declared."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from exporter import __version__
from exporter.config.sharding import UNSHARDED, Shard
from exporter.metrics import declarations as m


def _gauge(spec: m.MetricSpec, registry: CollectorRegistry) -> Gauge:
    assert spec.level is m.EXPORTER, spec
    assert spec.type is m.GAUGE, spec
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


class ExporterMetrics:
    """Registers the exporter-level gauges, in ``ALL``'s order, and keeps those that change."""

    def __init__(self, registry: CollectorRegistry, shard: Shard = UNSHARDED) -> None:
        _gauge(m.BUILD_INFO, registry).labels(version=__version__).set(1)
        # Every instance of a job must agree on the total and cover every ordinal once; the
        # AloudataCanShardsMismatch alert compares them.
        _gauge(m.SHARD_ORDINAL, registry).set(shard.index)
        _gauge(m.TOTAL_SHARDS, registry).set(shard.total)
        self.reload_successful = _gauge(m.CONFIG_RELOAD_SUCCESSFUL, registry)
        self.reload_success_timestamp = _gauge(m.CONFIG_RELOAD_SUCCESS_TIMESTAMP, registry)

    def config_loaded(self, success: bool, at_timestamp: float) -> None:
        self.reload_successful.set(1 if success else 0)
        if success:
            self.reload_success_timestamp.set(at_timestamp)
