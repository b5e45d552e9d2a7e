"""Every metric the exporter publishes, declared once: name, type, help, labels and level.

The names, types and labels are a public contract: users' alert rules and dashboards use them.
The collector and the fast text exposition build their families from these declarations, the
README's metrics reference and the rules and dashboards lint are tested against them. ``ALL``
holds them in the order they are exposed.
"""

from __future__ import annotations

from exporter.metrics.spec import (
    COUNTER,
    EXPORTER,
    GAUGE,
    GROUP,
    HISTOGRAM,
    LEVEL_LABELS,
    PLAN,
    TARGET,
    Level,
    MetricSpec,
    MetricType,
)

# The spec's types, re-exported: the renderers and tests read them as declarations' own.
__all__ = [
    "COUNTER",
    "EXPORTER",
    "GAUGE",
    "GROUP",
    "HISTOGRAM",
    "LEVEL_LABELS",
    "PLAN",
    "TARGET",
    "Level",
    "MetricSpec",
    "MetricType",
]

_FROM_LAST_POLL = "from the last successful poll"

# -- Group level: labels target and group ----------------------------------------------------

GROUP_INFO = MetricSpec(
    "aloudata_can_group_info",
    GAUGE,
    GROUP,
    "Constant 1 for each group the exporter polls, labelled with the group's labels from its configuration (e.g. team, owner; none when it has none), to join onto its other series on target and group.",  # noqa: E501
)
DATA_LAG = MetricSpec(
    "aloudata_can_data_lag_seconds",
    GAUGE,
    GROUP,
    f"Seconds from CAN's latestDateTime (the oldest data time over the group's plans, {_FROM_LAST_POLL}) to now; computed at scrape time.",  # noqa: E501
)
REFRESH_AGE = MetricSpec(
    "aloudata_can_refresh_age_seconds",
    GAUGE,
    GROUP,
    f"Seconds from CAN's latestRefreshTime (the latest refresh task end, {_FROM_LAST_POLL}) to now; computed at scrape time.",  # noqa: E501
)
NOT_READY = MetricSpec(
    "aloudata_can_not_ready",
    GAUGE,
    GROUP,
    f"1 when CAN's hasNotReady is true {_FROM_LAST_POLL}: a materialized table was never refreshed or has empty partitions.",  # noqa: E501
)
LATEST_DATA_TIMESTAMP = MetricSpec(
    "aloudata_can_latest_data_timestamp_seconds",
    GAUGE,
    GROUP,
    f"CAN's latestDateTime {_FROM_LAST_POLL}, as a Unix timestamp.",
)
LATEST_REFRESH_TIMESTAMP = MetricSpec(
    "aloudata_can_latest_refresh_timestamp_seconds",
    GAUGE,
    GROUP,
    f"CAN's latestRefreshTime {_FROM_LAST_POLL}, as a Unix timestamp.",
)
POLL_SUCCESS = MetricSpec(
    "aloudata_can_poll_success",
    GAUGE,
    GROUP,
    "1 when the last poll of the group gave a valid reading, else 0.",
)
LAST_SUCCESS_TIMESTAMP = MetricSpec(
    "aloudata_can_last_success_timestamp_seconds",
    GAUGE,
    GROUP,
    "Unix time of the group's last successful poll.",
)
NEXT_POLL_TIMESTAMP = MetricSpec(
    "aloudata_can_next_poll_timestamp_seconds",
    GAUGE,
    GROUP,
    "Unix time of the group's next scheduled poll; more than an interval away while it backs off.",
)
CONSECUTIVE_FAILURES = MetricSpec(
    "aloudata_can_poll_consecutive_failures",
    GAUGE,
    GROUP,
    "Polls of the group that failed in a row; 0 after a success.",
)
DATA_LAG_THRESHOLD = MetricSpec(
    "aloudata_can_data_lag_threshold_seconds",
    GAUGE,
    GROUP,
    "The group's configured data lag threshold, by severity.",
    ("severity",),
)
REFRESH_AGE_THRESHOLD = MetricSpec(
    "aloudata_can_refresh_age_threshold_seconds",
    GAUGE,
    GROUP,
    "The group's configured refresh age threshold, by severity.",
    ("severity",),
)
REFRESH_DEADLINE_TIMESTAMP = MetricSpec(
    "aloudata_can_refresh_deadline_timestamp_seconds",
    GAUGE,
    GROUP,
    "Unix time of the group's last refresh deadline that has passed: the last fire of its schedule's refresh_cron plus grace; computed at scrape time.",  # noqa: E501
)
REFRESH_OVERDUE = MetricSpec(
    "aloudata_can_refresh_overdue_seconds",
    GAUGE,
    GROUP,
    f"Seconds since the group's last refresh deadline when CAN's latestRefreshTime ({_FROM_LAST_POLL}) is not after the cron fire that deadline belongs to, else 0; computed at scrape time.",  # noqa: E501
)
DATA_LAG_PERIODS = MetricSpec(
    "aloudata_can_data_lag_periods",
    GAUGE,
    GROUP,
    f"Whole days or hours (data_granularity) that CAN's latestDateTime ({_FROM_LAST_POLL}) is behind the expected one (now minus expected_data_delay) in the schedule's time zone, 0 when not behind; computed at scrape time.",  # noqa: E501
)
DATA_LAG_BUSINESS = MetricSpec(
    "aloudata_can_data_lag_business_seconds",
    GAUGE,
    GROUP,
    f"Seconds of business days (the group's calendar) from CAN's latestDateTime ({_FROM_LAST_POLL}) to now; computed at scrape time; only groups with a calendar.",  # noqa: E501
)
REFRESH_AGE_BUSINESS = MetricSpec(
    "aloudata_can_refresh_age_business_seconds",
    GAUGE,
    GROUP,
    f"Seconds of business days (the group's calendar) from CAN's latestRefreshTime ({_FROM_LAST_POLL}) to now; computed at scrape time; only groups with a calendar.",  # noqa: E501
)
BUSINESS_DAY = MetricSpec(
    "aloudata_can_business_day",
    GAUGE,
    GROUP,
    "1 when today, in the calendar's time zone, is a business day of the group's calendar, else 0; only groups with a calendar.",  # noqa: E501
)
REFRESHES_WITHOUT_NEW_DATA = MetricSpec(
    "aloudata_can_refreshes_without_new_data",
    GAUGE,
    GROUP,
    "Successful polls since latestDateTime last changed that saw CAN's latestRefreshTime advance while latestDateTime stayed the same; 0 once latestDateTime changes.",  # noqa: E501
)
REFRESHES_WITHOUT_NEW_DATA_THRESHOLD = MetricSpec(
    "aloudata_can_refreshes_without_new_data_threshold",
    GAUGE,
    GROUP,
    "The group's configured threshold of refreshes without new data, by severity.",
    ("severity",),
)
DATA_TIME_LAST_CHANGE = MetricSpec(
    "aloudata_can_data_time_last_change_timestamp_seconds",
    GAUGE,
    GROUP,
    "Unix time of the poll that first saw the group's current latestDateTime; the first poll after the exporter starts or the group's plans change counts as a change.",  # noqa: E501
)
FRESH = MetricSpec(
    "aloudata_can_fresh",
    GAUGE,
    GROUP,
    f"1 when the group is fresh: none of the shipped freshness alerts of its SLO's severity (fresh_below, critical by default) holds on the reading {_FROM_LAST_POLL}, else 0; absent before the first reading; computed at scrape time.",  # noqa: E501
)
SLO_OBJECTIVE = MetricSpec(
    "aloudata_can_slo_objective_ratio",
    GAUGE,
    GROUP,
    "The group's freshness SLO objective: the share of time it is to be fresh over the 28-day window; only groups with an slo.",  # noqa: E501
)
POLL_DURATION = MetricSpec(
    "aloudata_can_poll_duration_seconds",
    HISTOGRAM,
    GROUP,
    "Duration of the group's requests to CAN, without the wait for a free connection slot.",
)
POLL_ERRORS = MetricSpec(
    "aloudata_can_poll_errors",
    COUNTER,
    GROUP,
    "Failed polls of the group, by reason.",
    ("reason",),
)
DATA_TIME_REGRESSIONS = MetricSpec(
    "aloudata_can_data_time_regressions",
    COUNTER,
    GROUP,
    "Successful polls whose latestDateTime was earlier than the last one seen (a rollback, or a backfill that rewrote older data); starts at 0 when the exporter starts or the group's plans change.",  # noqa: E501
)

# -- Plan level: labels target, group and plan ----------------------------------------------

PLAN_DATA_LAG = MetricSpec(
    "aloudata_can_plan_data_lag_seconds",
    GAUGE,
    PLAN,
    f"Seconds from the plan's latestDateTime ({_FROM_LAST_POLL} of the plan alone) to now; computed at scrape time.",  # noqa: E501
)
PLAN_REFRESH_AGE = MetricSpec(
    "aloudata_can_plan_refresh_age_seconds",
    GAUGE,
    PLAN,
    f"Seconds from the plan's latestRefreshTime ({_FROM_LAST_POLL} of the plan alone) to now; computed at scrape time.",  # noqa: E501
)
PLAN_NOT_READY = MetricSpec(
    "aloudata_can_plan_not_ready",
    GAUGE,
    PLAN,
    f"1 when CAN's hasNotReady is true for the plan alone, {_FROM_LAST_POLL}.",
)
PLAN_POLL_SUCCESS = MetricSpec(
    "aloudata_can_plan_poll_success",
    GAUGE,
    PLAN,
    "1 when the last poll of the plan alone gave a valid reading, else 0.",
)
PLAN_MISSING = MetricSpec(
    "aloudata_can_plan_missing",
    GAUGE,
    PLAN,
    "1 when CAN's last answer about the plan alone was that it does not exist (errorMsg 'Acceleration plan does not exist'); absent otherwise.",  # noqa: E501
)

FRESH_SECONDS = MetricSpec(
    "aloudata_can_fresh_seconds",
    COUNTER,
    GROUP,
    "Seconds the group was fresh (see aloudata_can_fresh) since the exporter started, counted from the instant a threshold was crossed, not from the scrape that saw it.",  # noqa: E501
)
OBSERVED_SECONDS = MetricSpec(
    "aloudata_can_observed_seconds",
    COUNTER,
    GROUP,
    "Seconds the group's freshness was known (it had a reading) since the exporter started: the denominator of its freshness SLI.",  # noqa: E501
)

MAINTENANCE = MetricSpec(
    "aloudata_can_maintenance",
    GAUGE,
    GROUP,
    "1 while one of the group's maintenance windows (its own or defaults', or its target's) is in force, else 0; its freshness alerts are silenced and its SLO counts nothing meanwhile; computed at scrape time.",  # noqa: E501
)
MAINTENANCE_END = MetricSpec(
    "aloudata_can_maintenance_end_timestamp_seconds",
    GAUGE,
    GROUP,
    "Unix time the group's maintenance ends: the latest end among its windows in force; only while one is.",  # noqa: E501
)

# -- Target level: label target --------------------------------------------------------------

TARGET_CIRCUIT_OPEN = MetricSpec(
    "aloudata_can_target_circuit_open",
    GAUGE,
    TARGET,
    "1 while every group of the target fails and polls are held back to one probe at a time.",
)
TARGET_REQUESTS = MetricSpec(
    "aloudata_can_target_requests",
    COUNTER,
    TARGET,
    "HTTP requests sent to the target, retries and per-plan requests included.",
)
TARGET_MAINTENANCE = MetricSpec(
    "aloudata_can_target_maintenance",
    GAUGE,
    TARGET,
    "1 while one of the target's own maintenance windows (its maintenance list, which covers all its groups) is in force, else 0; computed at scrape time.",  # noqa: E501
)

# -- Exporter level: the exporter's own series ------------------------------------------------

BUILD_INFO = MetricSpec(
    "aloudata_can_exporter_build_info",
    GAUGE,
    EXPORTER,
    "A metric with a constant 1 labelled by the exporter's version.",
    ("version",),
)
SHARD_ORDINAL = MetricSpec(
    "aloudata_can_exporter_shard_ordinal",
    GAUGE,
    EXPORTER,
    "This instance's shard (--shard.index): it polls and exports the groups whose CRC-32 of "
    "target/group modulo the total shards is this number.",
)
# Not "_shard_total": a gauge must not end in _total (that suffix is for counters, and promtool
# rejects it); kube-state-metrics names its gauge kube_state_metrics_total_shards alike.
TOTAL_SHARDS = MetricSpec(
    "aloudata_can_exporter_total_shards",
    GAUGE,
    EXPORTER,
    "The number of shards the groups are split into (--shard.total); 1 when not sharded.",
)
CONFIG_RELOAD_SUCCESSFUL = MetricSpec(
    "aloudata_can_exporter_config_last_reload_successful",
    GAUGE,
    EXPORTER,
    "1 when the last configuration load succeeded, else 0.",
)
CONFIG_RELOAD_SUCCESS_TIMESTAMP = MetricSpec(
    "aloudata_can_exporter_config_last_reload_success_timestamp_seconds",
    GAUGE,
    EXPORTER,
    "Unix time of the last successful configuration load.",
)

# Every metric, in the order it is exposed: the group, plan and target levels as the
# collector and the exposition write them, then the exporter's own series.
ALL: tuple[MetricSpec, ...] = (
    GROUP_INFO,
    DATA_LAG,
    REFRESH_AGE,
    NOT_READY,
    LATEST_DATA_TIMESTAMP,
    LATEST_REFRESH_TIMESTAMP,
    POLL_SUCCESS,
    LAST_SUCCESS_TIMESTAMP,
    NEXT_POLL_TIMESTAMP,
    CONSECUTIVE_FAILURES,
    DATA_LAG_THRESHOLD,
    REFRESH_AGE_THRESHOLD,
    REFRESH_DEADLINE_TIMESTAMP,
    REFRESH_OVERDUE,
    DATA_LAG_PERIODS,
    DATA_LAG_BUSINESS,
    REFRESH_AGE_BUSINESS,
    BUSINESS_DAY,
    REFRESHES_WITHOUT_NEW_DATA,
    REFRESHES_WITHOUT_NEW_DATA_THRESHOLD,
    DATA_TIME_LAST_CHANGE,
    FRESH,
    SLO_OBJECTIVE,
    PLAN_DATA_LAG,
    PLAN_REFRESH_AGE,
    PLAN_NOT_READY,
    PLAN_POLL_SUCCESS,
    PLAN_MISSING,
    TARGET_CIRCUIT_OPEN,
    POLL_DURATION,
    POLL_ERRORS,
    DATA_TIME_REGRESSIONS,
    FRESH_SECONDS,
    OBSERVED_SECONDS,
    TARGET_REQUESTS,
    MAINTENANCE,
    MAINTENANCE_END,
    TARGET_MAINTENANCE,
    BUILD_INFO,
    SHARD_ORDINAL,
    TOTAL_SHARDS,
    CONFIG_RELOAD_SUCCESSFUL,
    CONFIG_RELOAD_SUCCESS_TIMESTAMP,
)

# The metrics the collector computes from the store at scrape time, in ALL's order.
SCRAPED: tuple[MetricSpec, ...] = tuple(spec for spec in ALL if spec.level is not EXPORTER)
