"""Every metric the exporter publishes: names, HELP texts and labels, in one place.

The names and labels are a public contract: users' alert rules and dashboards use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from exporter import __version__
from exporter.config.sharding import UNSHARDED, Shard

TARGET_LABELS = ("target",)
GROUP_LABELS = ("target", "group")
PLAN_LABELS = ("target", "group", "plan")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    help: str
    labels: tuple[str, ...]


_FROM_LAST_POLL = "from the last successful poll"

GROUP_INFO = MetricSpec(
    "aloudata_can_group_info",
    "Constant 1 for each group the exporter polls, labelled with the group's labels from its configuration (e.g. team, owner; none when it has none), to join onto its other series on target and group.",  # noqa: E501
    GROUP_LABELS,
)

DATA_LAG = MetricSpec(
    "aloudata_can_data_lag_seconds",
    f"Seconds from CAN's latestDateTime (the oldest data time over the group's plans, {_FROM_LAST_POLL}) to now; computed at scrape time.",  # noqa: E501
    GROUP_LABELS,
)
REFRESH_AGE = MetricSpec(
    "aloudata_can_refresh_age_seconds",
    f"Seconds from CAN's latestRefreshTime (the latest refresh task end, {_FROM_LAST_POLL}) to now; computed at scrape time.",  # noqa: E501
    GROUP_LABELS,
)
NOT_READY = MetricSpec(
    "aloudata_can_not_ready",
    f"1 when CAN's hasNotReady is true {_FROM_LAST_POLL}: a materialized table was never refreshed or has empty partitions.",  # noqa: E501
    GROUP_LABELS,
)
LATEST_DATA_TIMESTAMP = MetricSpec(
    "aloudata_can_latest_data_timestamp_seconds",
    f"CAN's latestDateTime {_FROM_LAST_POLL}, as a Unix timestamp.",
    GROUP_LABELS,
)
LATEST_REFRESH_TIMESTAMP = MetricSpec(
    "aloudata_can_latest_refresh_timestamp_seconds",
    f"CAN's latestRefreshTime {_FROM_LAST_POLL}, as a Unix timestamp.",
    GROUP_LABELS,
)
POLL_SUCCESS = MetricSpec(
    "aloudata_can_poll_success",
    "1 when the last poll of the group gave a valid reading, else 0.",
    GROUP_LABELS,
)
LAST_SUCCESS_TIMESTAMP = MetricSpec(
    "aloudata_can_last_success_timestamp_seconds",
    "Unix time of the group's last successful poll.",
    GROUP_LABELS,
)
POLL_DURATION = MetricSpec(
    "aloudata_can_poll_duration_seconds",
    "Duration of the group's requests to CAN, without the wait for a free connection slot.",
    GROUP_LABELS,
)
POLL_ERRORS = MetricSpec(
    "aloudata_can_poll_errors",  # exposed as aloudata_can_poll_errors_total
    "Failed polls of the group, by reason.",
    (*GROUP_LABELS, "reason"),
)
DATA_LAG_THRESHOLD = MetricSpec(
    "aloudata_can_data_lag_threshold_seconds",
    "The group's configured data lag threshold, by severity.",
    (*GROUP_LABELS, "severity"),
)
REFRESH_AGE_THRESHOLD = MetricSpec(
    "aloudata_can_refresh_age_threshold_seconds",
    "The group's configured refresh age threshold, by severity.",
    (*GROUP_LABELS, "severity"),
)
NEXT_POLL_TIMESTAMP = MetricSpec(
    "aloudata_can_next_poll_timestamp_seconds",
    "Unix time of the group's next scheduled poll; more than an interval away while it backs off.",
    GROUP_LABELS,
)
CONSECUTIVE_FAILURES = MetricSpec(
    "aloudata_can_poll_consecutive_failures",
    "Polls of the group that failed in a row; 0 after a success.",
    GROUP_LABELS,
)
REFRESH_DEADLINE_TIMESTAMP = MetricSpec(
    "aloudata_can_refresh_deadline_timestamp_seconds",
    "Unix time of the group's last refresh deadline that has passed: the last fire of its schedule's refresh_cron plus grace; computed at scrape time.",  # noqa: E501
    GROUP_LABELS,
)
REFRESH_OVERDUE = MetricSpec(
    "aloudata_can_refresh_overdue_seconds",
    f"Seconds since the group's last refresh deadline when CAN's latestRefreshTime ({_FROM_LAST_POLL}) is not after the cron fire that deadline belongs to, else 0; computed at scrape time.",  # noqa: E501
    GROUP_LABELS,
)
DATA_LAG_PERIODS = MetricSpec(
    "aloudata_can_data_lag_periods",
    f"Whole days or hours (data_granularity) that CAN's latestDateTime ({_FROM_LAST_POLL}) is behind the expected one (now minus expected_data_delay) in the schedule's time zone, 0 when not behind; computed at scrape time.",  # noqa: E501
    GROUP_LABELS,
)
DATA_TIME_REGRESSIONS = MetricSpec(
    "aloudata_can_data_time_regressions",  # exposed as aloudata_can_data_time_regressions_total
    "Successful polls whose latestDateTime was earlier than the last one seen (a rollback, or a backfill that rewrote older data); starts at 0 when the exporter starts or the group's plans change.",  # noqa: E501
    GROUP_LABELS,
)
REFRESHES_WITHOUT_NEW_DATA = MetricSpec(
    "aloudata_can_refreshes_without_new_data",
    "Successful polls since latestDateTime last changed that saw CAN's latestRefreshTime advance while latestDateTime stayed the same; 0 once latestDateTime changes.",  # noqa: E501
    GROUP_LABELS,
)
DATA_TIME_LAST_CHANGE = MetricSpec(
    "aloudata_can_data_time_last_change_timestamp_seconds",
    "Unix time of the poll that first saw the group's current latestDateTime; the first poll after the exporter starts or the group's plans change counts as a change.",  # noqa: E501
    GROUP_LABELS,
)
REFRESHES_WITHOUT_NEW_DATA_THRESHOLD = MetricSpec(
    "aloudata_can_refreshes_without_new_data_threshold",
    "The group's configured threshold of refreshes without new data, by severity.",
    (*GROUP_LABELS, "severity"),
)
TARGET_CIRCUIT_OPEN = MetricSpec(
    "aloudata_can_target_circuit_open",
    "1 while every group of the target fails and polls are held back to one probe at a time.",
    TARGET_LABELS,
)
TARGET_REQUESTS = MetricSpec(
    "aloudata_can_target_requests",  # exposed as aloudata_can_target_requests_total
    "HTTP requests sent to the target, retries and per-plan requests included.",
    TARGET_LABELS,
)
PLAN_DATA_LAG = MetricSpec(
    "aloudata_can_plan_data_lag_seconds",
    f"Seconds from the plan's latestDateTime ({_FROM_LAST_POLL} of the plan alone) to now; computed at scrape time.",  # noqa: E501
    PLAN_LABELS,
)
PLAN_REFRESH_AGE = MetricSpec(
    "aloudata_can_plan_refresh_age_seconds",
    f"Seconds from the plan's latestRefreshTime ({_FROM_LAST_POLL} of the plan alone) to now; computed at scrape time.",  # noqa: E501
    PLAN_LABELS,
)
PLAN_NOT_READY = MetricSpec(
    "aloudata_can_plan_not_ready",
    f"1 when CAN's hasNotReady is true for the plan alone, {_FROM_LAST_POLL}.",
    PLAN_LABELS,
)
PLAN_POLL_SUCCESS = MetricSpec(
    "aloudata_can_plan_poll_success",
    "1 when the last poll of the plan alone gave a valid reading, else 0.",
    PLAN_LABELS,
)
PLAN_MISSING = MetricSpec(
    "aloudata_can_plan_missing",
    "1 when CAN's last answer about the plan alone was that it does not exist (errorMsg 'Acceleration plan does not exist'); absent otherwise.",  # noqa: E501
    PLAN_LABELS,
)


SHARD_ORDINAL = MetricSpec(
    "aloudata_can_exporter_shard_ordinal",
    "This instance's shard (--shard.index): it polls and exports the groups whose CRC-32 of "
    "target/group modulo the total shards is this number.",
    (),
)
# Not "_shard_total": a gauge must not end in _total (that suffix is for counters, and promtool
# rejects it); kube-state-metrics names its gauge kube_state_metrics_total_shards alike.
TOTAL_SHARDS = MetricSpec(
    "aloudata_can_exporter_total_shards",
    "The number of shards the groups are split into (--shard.total); 1 when not sharded.",
    (),
)


BUILD_INFO = MetricSpec(
    "aloudata_can_exporter_build_info",
    "A metric with a constant 1 labelled by the exporter's version.",
    ("version",),
)


def _reserved_labels() -> frozenset[str]:
    # Prometheus sets job and instance on every scraped series, and the text format le on
    # histogram buckets (quantile on summaries): none of them may come from a group's labels.
    specs = [value for value in globals().values() if isinstance(value, MetricSpec)]
    return frozenset({"job", "instance", "le", "quantile"}).union(*(spec.labels for spec in specs))


# Label names a group's configured labels may not use: those already on the exporter's series.
RESERVED_LABELS = _reserved_labels()


class ExporterMetrics:
    """The exporter's own gauges: build info, shard and config reload state."""

    def __init__(self, registry: CollectorRegistry, shard: Shard = UNSHARDED) -> None:
        build_info = Gauge(BUILD_INFO.name, BUILD_INFO.help, BUILD_INFO.labels, registry=registry)
        build_info.labels(version=__version__).set(1)
        # Every instance of a job must agree on the total and cover every ordinal once; the
        # AloudataCanShardsMismatch alert compares them.
        Gauge(SHARD_ORDINAL.name, SHARD_ORDINAL.help, registry=registry).set(shard.index)
        Gauge(TOTAL_SHARDS.name, TOTAL_SHARDS.help, registry=registry).set(shard.total)
        self.reload_successful = Gauge(
            "aloudata_can_exporter_config_last_reload_successful",
            "1 when the last configuration load succeeded, else 0.",
            registry=registry,
        )
        self.reload_success_timestamp = Gauge(
            "aloudata_can_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
            registry=registry,
        )

    def config_loaded(self, success: bool, at_timestamp: float) -> None:
        self.reload_successful.set(1 if success else 0)
        if success:
            self.reload_success_timestamp.set(at_timestamp)
