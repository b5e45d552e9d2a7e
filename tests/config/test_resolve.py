"""Resolution (resolve.py): cross-key checks, inheritance from defaults and targets, warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from exporter.can.models import LATEST_TIME_PATH
from exporter.config.load import parse_config
from exporter.config.model import (
    DEFAULT_REFRESHES_WITHOUT_NEW_DATA,
    AuthType,
    Config,
    PlanKey,
    Target,
    ThresholdValues,
)
from exporter.config.schedule import DataPeriods, Granularity
from tests.helpers.configs import (
    ENV,
    SECRET,
    assert_exact_problems,
    bad_config_params,
    doc,
    group,
    target,
)

HOUR = 3600.0
BUILT_IN_DATA_LAG = ThresholdValues(26 * HOUR, 50 * HOUR)
BUILT_IN_REFRESH_AGE = ThresholdValues(25 * HOUR, 49 * HOUR)


# --- the table: text in, exact problems out ---------------------------------------------------

BAD_CONFIGS: list[tuple[str, str, list[str]]] = [
    # plan lists
    (
        "empty plan_ids",
        doc(groups=group(plans="    plan_ids: []\n")),
        ["groups[0].plan_ids: must not be empty"],
    ),
    (
        "empty plan_names in the second group",
        doc(groups=group() + group(name="ops", plans="    plan_names: []\n")),
        ["groups[1].plan_names: must not be empty"],
    ),
    (
        "duplicate plan in a group",
        doc(groups=group(plans="    plan_ids: [p1, p2, p1]\n")),
        ["groups[0].plan_ids[2]: duplicate plan 'p1'"],
    ),
    (
        "duplicate plan name in a group",
        doc(groups=group(plans="    plan_names: [daily, daily]\n")),
        ["groups[0].plan_names[1]: duplicate plan 'daily'"],
    ),
    # targets and groups referring to each other
    (
        "unknown target",
        doc(groups=group(on="staging")),
        ["groups[0].target: unknown target 'staging'"],
    ),
    (
        "duplicate target",
        doc(targets=target() + target()),
        ["targets[1].name: duplicate target name 'prod'"],
    ),
    (
        "duplicate group on one target",
        doc(groups=group() + group(plans="    plan_ids: [p3]\n")),
        ["groups[1].name: duplicate group 'sales' for target 'prod'"],
    ),
    (
        "a group on a broken target reports only the target",
        doc(targets=target("    tls: {ca_file: /nonexistent/ca.pem}\n")),
        ["targets[0].tls.ca_file: no such file /nonexistent/ca.pem"],
    ),
    # durations
    (
        "interval shorter than the group's timeout",
        doc(groups=group("    interval: 5s\n    timeout: 10s\n")),
        ["groups[0].interval: 5s is shorter than the timeout 10s"],
    ),
    (
        "default interval shorter than the target's timeout",
        doc(targets=target("    timeout: 2m\n")),
        ["groups[0].interval: 1m is shorter than the timeout 2m"],
    ),
    (
        "group interval shorter than the default timeout",
        doc(head="defaults: {timeout: 30s}\n", groups=group("    interval: 20s\n")),
        ["groups[0].interval: 20s is shorter than the timeout 30s"],
    ),
    # target settings
    (
        "value_file with a NUL byte",
        doc(targets=target(auth='{type: APIKEY, value_file: "a\\0b"}')),
        ["targets[0].auth.value_file: not a valid path"],
    ),
    (
        "tls.ca_file that does not exist",
        doc(targets=target("    tls: {ca_file: /nonexistent/ca.pem}\n"), groups=None),
        ["targets[0].tls.ca_file: no such file /nonexistent/ca.pem"],
    ),
    # schedules and data periods
    (
        "expected data delay without a granularity",
        doc(groups=group(name="a") + group("    expected_data_delay: 1d\n")),
        ["groups[1].expected_data_delay: needs data_granularity (day or hour)"],
    ),
    (
        "several cross-field problems",
        doc(
            groups=group(plans="    plan_ids: [p1, p1]\n")
            + group(name="ops", on="staging")
            + group(plans="    plan_ids: [p9]\n"),
        ),
        [
            "groups[0].plan_ids[1]: duplicate plan 'p1'",
            "groups[1].target: unknown target 'staging'",
            "groups[2].name: duplicate group 'sales' for target 'prod'",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    bad_config_params(BAD_CONFIGS),
)
def test_bad_config_gives_exact_problems(text: str, expected: list[str]) -> None:
    assert_exact_problems(text, expected)


# --- a valid configuration, resolved ---------------------------------------------------------


def test_valid_config_resolves_targets(full_config: Config) -> None:
    assert list(full_config.targets) == ["prod", "staging"]
    prod = full_config.targets["prod"]
    assert prod == Target(
        name="prod",
        url="https://can.example.com/gateway",
        tenant_id="10001",
        auth_type=AuthType.APIKEY,
        auth_value=prod.auth_value,
        timezone=ZoneInfo("Asia/Shanghai"),
        max_concurrency=4,
        timeout=20.0,
        ca_file=None,
        insecure_skip_verify=False,
    )
    assert prod.auth_value.get_secret_value() == SECRET
    assert LATEST_TIME_PATH == "/anymetrics/api/v1/accelerate/latestTime"

    staging = full_config.targets["staging"]
    assert staging.tenant_id == "20002"
    assert staging.auth_type is AuthType.TOKEN
    assert staging.auth_value.get_secret_value() == "tok-$-literal"
    assert staging.timezone is None
    assert staging.max_concurrency == 8
    assert staging.timeout == 15.0  # from defaults
    assert staging.insecure_skip_verify is True
    assert full_config.secrets() == [SECRET, "tok-$-literal"]


def test_valid_config_resolves_groups(full_config: Config) -> None:
    sales, finance, staging_sales = full_config.groups
    assert [g.key for g in full_config.groups] == [
        ("prod", "sales"),
        ("prod", "finance"),
        ("staging", "sales"),
    ]

    assert sales.plan_key is PlanKey.IDS
    assert sales.plans == ("p1", "p2")
    assert sales.interval == 120.0  # from defaults
    assert sales.timeout == 20.0  # from the target
    assert sales.per_plan is False
    # defaults override data_lag.critical only; the rest is built in
    assert sales.data_lag == ThresholdValues(26 * HOUR, 72 * HOUR)
    assert sales.refresh_age == BUILT_IN_REFRESH_AGE

    assert finance.plan_key is PlanKey.NAMES
    assert finance.plans == ("daily_revenue", "月度汇总")
    assert finance.interval == 1800.0
    assert finance.timeout == 60.0
    assert finance.per_plan is True
    # the group sets one severity each; the other comes from defaults, then the built-in
    assert finance.data_lag == ThresholdValues(30 * HOUR, 72 * HOUR)
    assert finance.refresh_age == ThresholdValues(25 * HOUR, 72 * HOUR)

    assert staging_sales.target == "staging"
    assert staging_sales.timeout == 15.0  # target without timeout: defaults


def test_minimal_config_uses_built_in_defaults() -> None:
    config = parse_config(doc(), environ=ENV)
    (only,) = config.groups
    assert only.interval == 60.0
    assert only.timeout == 10.0
    assert only.data_lag == BUILT_IN_DATA_LAG
    assert only.refresh_age == BUILT_IN_REFRESH_AGE
    assert config.targets["prod"].max_concurrency == 8
    assert config.targets["prod"].rate_limit is None
    assert only.max_backoff == 600.0
    assert config.source is None


SCHEDULES = """\
defaults:
  schedule: {refresh_cron: "30 2 * * *", grace: 2h}
  expected_data_delay: 1d
targets:
  - name: prod
    url: https://can.example.com
    tenant_id: "10001"
    auth: {type: APIKEY, value: "${CAN_APIKEY}"}
    timezone: Asia/Shanghai
  - name: local
    url: https://can.example.com
    tenant_id: "10001"
    auth: {type: APIKEY, value: "${CAN_APIKEY}"}
groups:
  - {name: inherits, target: prod, plan_ids: [p1], data_granularity: day}
  - name: own
    target: prod
    plan_ids: [p2]
    schedule: {refresh_cron: "0 * * * *", timezone: Europe/Berlin}
    data_granularity: hour
    expected_data_delay: 0s
  - {name: opts_out, target: prod, plan_ids: [p3], schedule: {refresh_cron: ""}}
  - {name: local_zone, target: local, plan_ids: [p4], schedule: {grace: 0s}}
"""


def test_schedules_merge_over_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    inherits, own, opts_out, local = parse_config(SCHEDULES, environ=ENV).groups

    assert inherits.schedule is not None
    assert (inherits.schedule.refresh_cron, inherits.schedule.grace) == ("30 2 * * *", 2 * HOUR)
    # No schedule.timezone anywhere: the target's zone.
    assert inherits.schedule.zone == ZoneInfo("Asia/Shanghai")
    assert inherits.data_periods == DataPeriods(
        Granularity.DAY, 24 * HOUR, ZoneInfo("Asia/Shanghai")
    )

    assert own.schedule is not None
    assert (own.schedule.refresh_cron, own.schedule.grace) == ("0 * * * *", 2 * HOUR)
    assert own.schedule.zone == ZoneInfo("Europe/Berlin")
    # The periods are counted in the schedule's zone, with the group's own delay of 0s.
    assert own.data_periods == DataPeriods(Granularity.HOUR, 0.0, ZoneInfo("Europe/Berlin"))

    assert opts_out.schedule is None
    assert opts_out.data_periods is None  # a delay in defaults alone sets no granularity

    # A target without a timezone: the exporter's local zone, as for CAN's times.
    assert local.schedule is not None
    assert local.schedule.grace == 0
    winter = datetime(2025, 1, 1, tzinfo=UTC)
    assert winter.astimezone(local.schedule.zone).utcoffset() == timedelta(hours=-5)


def test_no_schedule_by_default_and_grace_defaults_to_an_hour() -> None:
    (plain,) = parse_config(doc(), environ=ENV).groups
    assert plain.schedule is None
    assert plain.data_periods is None
    text = doc(
        groups=group('    schedule: {refresh_cron: "30 2 * * *"}\n    data_granularity: day\n')
    )
    (scheduled,) = parse_config(text, environ=ENV).groups
    assert scheduled.schedule is not None
    assert scheduled.schedule.grace == HOUR
    assert scheduled.data_periods is not None
    assert scheduled.data_periods.expected_delay == 0


def test_a_changed_schedule_changes_the_group_and_the_same_one_does_not() -> None:
    first = parse_config(SCHEDULES, environ=ENV).groups
    assert parse_config(SCHEDULES, environ=ENV).groups == first
    changed = parse_config(SCHEDULES.replace("grace: 2h", "grace: 3h"), environ=ENV).groups
    assert changed[0] != first[0]


def test_rate_limit_and_max_backoff() -> None:
    text = doc(
        targets=target("    rate_limit: 2.5\n"),
        groups=group("    max_backoff: 30m\n") + group(name="other"),
        head="defaults:\n  max_backoff: 20m\n",
    )
    config = parse_config(text, environ=ENV)
    assert config.targets["prod"].rate_limit == 2.5
    assert [g.max_backoff for g in config.groups] == [1800.0, 1200.0]


def test_refreshes_without_new_data_thresholds_merge_and_zero_turns_a_severity_off() -> None:
    text = doc(
        head="defaults:\n  thresholds: {refreshes_without_new_data: {critical: 8}}\n",
        groups=group(name="plain")
        + group("    thresholds: {refreshes_without_new_data: {warning: 5}}\n", name="five")
        + group(
            "    thresholds: {refreshes_without_new_data: {warning: 0, critical: 0}}\n",
            name="disabled",
        ),
    )
    plain, five, disabled = parse_config(text, environ=ENV).groups
    assert plain.refreshes_without_new_data == ThresholdValues(3.0, 8.0)
    assert five.refreshes_without_new_data == ThresholdValues(5.0, 8.0)
    assert disabled.refreshes_without_new_data == ThresholdValues(None, None)


def test_the_built_in_refreshes_threshold_is_the_groups_default() -> None:
    (only,) = parse_config(doc(), environ=ENV).groups
    assert only.refreshes_without_new_data == ThresholdValues(3.0, None)
    assert only.refreshes_without_new_data == DEFAULT_REFRESHES_WITHOUT_NEW_DATA


@pytest.mark.parametrize(
    ("written", "per_plan", "drilldown"),
    [
        ("", False, False),
        ("    per_plan: false\n", False, False),
        ("    per_plan: no\n", False, False),
        ("    per_plan: true\n", True, False),
        ("    per_plan: 1\n", True, False),
        ("    per_plan: auto\n", False, True),
        ('    per_plan: "auto"\n', False, True),
    ],
)
def test_per_plan_is_true_false_or_auto(written: str, per_plan: bool, drilldown: bool) -> None:
    (only,) = parse_config(doc(groups=group(written)), environ=ENV).groups
    assert (only.per_plan, only.drilldown) == (per_plan, drilldown)


def test_drilldown_max_plans_defaults_to_50_and_the_group_wins() -> None:
    groups = group("    per_plan: auto\n") + group(
        "    per_plan: auto\n    drilldown_max_plans: 3\n",
        name="small",
        plans="    plan_ids: [p3]\n",
    )
    config = parse_config(doc(groups=groups), environ=ENV)
    assert [g.drilldown_max_plans for g in config.groups] == [50, 3]
    config = parse_config(
        doc(groups=groups, head="defaults:\n  drilldown_max_plans: 7\n"), environ=ENV
    )
    assert [g.drilldown_max_plans for g in config.groups] == [7, 3]
    assert config.warnings == ()


def test_drilldown_max_plans_without_auto_is_a_warning() -> None:
    config = parse_config(doc(groups=group("    drilldown_max_plans: 5\n")), environ=ENV)
    assert config.warnings == (
        "groups[0].drilldown_max_plans: has no effect unless per_plan is auto",
    )


def test_interval_equal_to_timeout_is_allowed() -> None:
    config = parse_config(doc(groups=group("    interval: 10s\n    timeout: 10s\n")), environ=ENV)
    assert config.groups[0].interval == config.groups[0].timeout == 10.0


def test_same_group_name_on_two_targets_is_fine(full_config: Config) -> None:
    names = [(g.target, g.name) for g in full_config.groups if g.name == "sales"]
    assert names == [("prod", "sales"), ("staging", "sales")]
