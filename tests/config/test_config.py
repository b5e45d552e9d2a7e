"""The YAML configuration: bad YAML in, the exact one-line problems out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import trustme
from pydantic import SecretStr

from exporter.can.models import LATEST_TIME_PATH
from exporter.config.errors import ConfigError
from exporter.config.labels import RESERVED_LABELS
from exporter.config.load import load_config, parse_config
from exporter.config.model import (
    DEFAULT_REFRESHES_WITHOUT_NEW_DATA,
    AuthType,
    Config,
    PlanKey,
    Target,
    ThresholdValues,
)
from exporter.config.schedule import DataPeriods, Granularity

SECRET = "s3cr3t-Ap1Key-7f1e9c2b"
ENV = {"CAN_APIKEY": SECRET}

HOUR = 3600.0
BUILT_IN_DATA_LAG = ThresholdValues(26 * HOUR, 50 * HOUR)
BUILT_IN_REFRESH_AGE = ThresholdValues(25 * HOUR, 49 * HOUR)

TARGET = """\
  - name: prod
    url: https://can.example.com
    tenant_id: "10001"
    auth: {type: APIKEY, value: "${CAN_APIKEY}"}
"""
GROUP = """\
  - name: sales
    target: prod
    plan_ids: [p1, p2]
"""


def doc(targets: str = TARGET, groups: str | None = GROUP, head: str = "") -> str:
    """A config file: ``head`` (e.g. defaults) first, then the targets and groups lists."""
    text = f"{head}targets:\n{targets}"
    if groups is not None:
        text += f"groups:\n{groups}"
    return text


def target(extra: str = "", *, name: str = "prod", auth: str | None = None) -> str:
    """One entry of ``targets``; ``extra`` is more keys, indented four spaces."""
    auth_line = auth if auth is not None else '{type: APIKEY, value: "${CAN_APIKEY}"}'
    return (
        f"  - name: {name}\n"
        "    url: https://can.example.com\n"
        '    tenant_id: "10001"\n'
        f"    auth: {auth_line}\n"
        f"{extra}"
    )


def group(extra: str = "", *, name: str = "sales", on: str = "prod", plans: str = "") -> str:
    """One entry of ``groups``; ``plans`` replaces the default ``plan_ids: [p1, p2]``."""
    plan_lines = plans if plans else "    plan_ids: [p1, p2]\n"
    return f"  - name: {name}\n    target: {on}\n{plan_lines}{extra}"


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ=ENV if environ is None else environ)
    return caught.value.problems


# --- the table: text in, exact problems out ---------------------------------------------------

BAD_CONFIGS: list[tuple[str, str, list[str]]] = [
    # unknown and missing keys
    (
        "unknown group key",
        doc(groups=group("    intervl: 5m\n")),
        ["groups[0].intervl: unknown key"],
    ),
    (
        "unknown top-level key",
        doc(head="defualts: {interval: 5m}\n"),
        ["defualts: unknown key"],
    ),
    (
        "unknown defaults key",
        doc(head="defaults: {interval: 5m, retries: 3}\n"),
        ["defaults.retries: unknown key"],
    ),
    (
        "unknown auth key",
        doc(targets=target(auth='{type: APIKEY, value: "${CAN_APIKEY}", header: x}')),
        ["targets[0].auth.header: unknown key"],
    ),
    (
        "unknown threshold severity",
        doc(groups=group("    thresholds: {data_lag: {warn: 1h}}\n")),
        ["groups[0].thresholds.data_lag.warn: unknown key"],
    ),
    (
        "missing targets",
        "groups: []\n",
        ["targets: required key is missing"],
    ),
    (
        "missing group target",
        doc(groups="  - name: sales\n    plan_ids: [p1]\n"),
        ["groups[0].target: required key is missing"],
    ),
    (
        "missing tenant_id",
        doc(
            targets=(
                "  - name: prod\n"
                "    url: https://can.example.com\n"
                '    auth: {type: APIKEY, value: "${CAN_APIKEY}"}\n'
            )
        ),
        ["targets[0].tenant_id: required key is missing"],
    ),
    (
        "missing auth type",
        doc(targets=target(auth='{value: "${CAN_APIKEY}"}')),
        ["targets[0].auth.type: required key is missing"],
    ),
    (
        "targets is not a list",
        "targets: prod\n",
        ["targets: Input should be a valid list"],
    ),
    # plan lists
    (
        "both plan_ids and plan_names",
        doc(groups=group(plans="    plan_ids: [p1]\n    plan_names: [daily]\n")),
        ["groups[0]: set exactly one of plan_ids or plan_names"],
    ),
    (
        "neither plan_ids nor plan_names",
        doc(groups="  - name: sales\n    target: prod\n"),
        ["groups[0]: set exactly one of plan_ids or plan_names"],
    ),
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
        "empty plan id",
        doc(groups=group(plans="    plan_ids: [p1, '']\n")),
        ["groups[0].plan_ids[1]: String should have at least 1 character"],
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
        "duration without a unit",
        doc(groups=group("    interval: 5\n")),
        ["groups[0].interval: invalid duration 5: write it with a unit, like 30s or 5m"],
    ),
    (
        "duration with an unknown unit",
        doc(groups=group("    interval: 5x\n")),
        ["groups[0].interval: invalid duration '5x': expected a form like 30s, 5m, 1h30m or 2d"],
    ),
    (
        "duration units out of order",
        doc(head="defaults: {timeout: 1m1h}\n"),
        ["defaults.timeout: invalid duration '1m1h': units must go from largest to smallest"],
    ),
    (
        "negative duration",
        doc(targets=target("    timeout: -5s\n")),
        ["targets[0].timeout: invalid duration '-5s': expected a form like 30s, 5m, 1h30m or 2d"],
    ),
    (
        "zero interval",
        doc(groups=group("    interval: 0s\n")),
        ["groups[0].interval: duration '0s' must be greater than zero"],
    ),
    (
        "zero quoted as the bare string 0",
        doc(head="defaults: {interval: '0'}\n"),
        ["defaults.interval: duration '0' must be greater than zero"],
    ),
    (
        "zero threshold",
        doc(groups=group("    thresholds: {refresh_age: {critical: 0s}}\n")),
        ["groups[0].thresholds.refresh_age.critical: duration '0s' must be greater than zero"],
    ),
    (
        "negative count threshold",
        doc(groups=group("    thresholds: {refreshes_without_new_data: {warning: -1}}\n")),
        [
            "groups[0].thresholds.refreshes_without_new_data.warning: "
            "Input should be greater than or equal to 0"
        ],
    ),
    (
        "count threshold written as a duration",
        doc(head="defaults: {thresholds: {refreshes_without_new_data: {critical: 1h}}}\n"),
        [
            "defaults.thresholds.refreshes_without_new_data.critical: "
            "Input should be a valid integer"
        ],
    ),
    (
        "count threshold quoted",
        doc(groups=group("    thresholds: {refreshes_without_new_data: {warning: '3'}}\n")),
        [
            "groups[0].thresholds.refreshes_without_new_data.warning: "
            "Input should be a valid integer"
        ],
    ),
    (
        "count threshold without a severity",
        doc(groups=group("    thresholds: {refreshes_without_new_data: 3}\n")),
        [
            "groups[0].thresholds.refreshes_without_new_data: "
            "Input should be a valid dictionary or instance of CountThresholdPair"
        ],
    ),
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
        "URL without a scheme",
        doc(targets=target().replace("https://can.example.com", "can.example.com")),
        ["targets[0].url: must be an http:// or https:// URL with a host"],
    ),
    (
        "ftp URL",
        doc(targets=target().replace("https://can.example.com", "ftp://can.example.com")),
        ["targets[0].url: must be an http:// or https:// URL with a host"],
    ),
    (
        "URL without a host",
        doc(targets=target().replace("https://can.example.com", "https://")),
        ["targets[0].url: must be an http:// or https:// URL with a host"],
    ),
    (
        "URL with credentials",
        doc(
            targets=target().replace(
                "https://can.example.com", "https://admin:${CAN_APIKEY}@can.example.com"
            )
        ),
        ["targets[0].url: must not carry credentials; use auth"],
    ),
    (
        "URL with a query",
        doc(
            targets=target().replace(
                "https://can.example.com", "https://can.example.com/?apikey=${CAN_APIKEY}"
            )
        ),
        ["targets[0].url: must not have a query or fragment"],
    ),
    (
        "URL with a fragment",
        doc(targets=target().replace("https://can.example.com", "https://can.example.com/#x")),
        ["targets[0].url: must not have a query or fragment"],
    ),
    (
        "unknown time zone",
        doc(targets=target("    timezone: Asia/Beijing\n")),
        ["targets[0].timezone: unknown time zone 'Asia/Beijing'; use an IANA name such as UTC"],
    ),
    (
        "auth with value and value_file",
        doc(
            targets=target(
                auth='{type: APIKEY, value: "${CAN_APIKEY}", value_file: /run/secrets/key}'
            )
        ),
        ["targets[0].auth: set exactly one of value or value_file"],
    ),
    (
        "auth with neither value nor value_file",
        doc(targets=target(auth="{type: APIKEY}")),
        ["targets[0].auth: set exactly one of value or value_file"],
    ),
    (
        "auth with an empty value",
        doc(targets=target(auth='{type: APIKEY, value: ""}')),
        ["targets[0].auth: value must not be empty"],
    ),
    (
        "auth value that is not a string",
        doc(targets=target(auth="{type: APIKEY, value: 12345678}")),
        ["targets[0].auth.value: Input should be a valid string"],
    ),
    (
        "unknown auth type",
        doc(targets=target(auth='{type: PASSWORD, value: "${CAN_APIKEY}"}')),
        ["targets[0].auth.type: Input should be 'UID', 'TOKEN', 'ACCOUNT' or 'APIKEY'"],
    ),
    (
        "auth type and value swapped",
        doc(targets=target(auth='{type: "${CAN_APIKEY}", value: APIKEY}')),
        # The value written, "APIKEY", is too short to mask: refused, and not masked elsewhere.
        [
            "targets[0].auth.type: Input should be 'UID', 'TOKEN', 'ACCOUNT' or 'APIKEY'",
            "targets[0].auth.value: too short to be masked safely in logs; "
            "use at least 8 characters",
        ],
    ),
    (
        "max_concurrency 0",
        doc(targets=target("    max_concurrency: 0\n")),
        ["targets[0].max_concurrency: Input should be greater than or equal to 1"],
    ),
    (
        "max_concurrency too large",
        doc(targets=target("    max_concurrency: 1001\n")),
        ["targets[0].max_concurrency: Input should be less than or equal to 1000"],
    ),
    (
        "value_file with a NUL byte",
        doc(targets=target(auth='{type: APIKEY, value_file: "a\\0b"}')),
        ["targets[0].auth.value_file: not a valid path"],
    ),
    (
        "rate_limit 0",
        doc(targets=target("    rate_limit: 0\n")),
        ["targets[0].rate_limit: Input should be greater than 0"],
    ),
    (
        "rate_limit not a number",
        doc(targets=target("    rate_limit: fast\n")),
        [
            "targets[0].rate_limit: Input should be a valid number,"
            " unable to parse string as a number"
        ],
    ),
    (
        "max_backoff zero in a group",
        doc(groups=group("    max_backoff: 0s\n")),
        ["groups[0].max_backoff: duration '0s' must be greater than zero"],
    ),
    (
        "max_backoff not a duration in defaults",
        doc(head="defaults:\n  max_backoff: forever\n"),
        [
            "defaults.max_backoff: invalid duration 'forever':"
            " expected a form like 30s, 5m, 1h30m or 2d"
        ],
    ),
    (
        "tls.ca_file that does not exist",
        doc(targets=target("    tls: {ca_file: /nonexistent/ca.pem}\n"), groups=None),
        ["targets[0].tls.ca_file: no such file /nonexistent/ca.pem"],
    ),
    (
        "target name with a space",
        doc(targets=target(name="'prod eu'"), groups=None),
        ["targets[0].name: String should match pattern '^[^\\s\\x00-\\x1f]+$'"],
    ),
    # labels
    (
        "label name with a dash",
        doc(groups=group("    labels: {Team-Name: finance}\n")),
        [
            "groups[0].labels: 'Team-Name' is not a valid label name (letters, digits and _,"
            " not starting with a digit)"
        ],
    ),
    (
        "label name starting with a digit, and one that is a number",
        doc(groups=group("    labels: {1st_line: ops, 2: two}\n")),
        [
            "groups[0].labels: '1st_line' is not a valid label name (letters, digits and _,"
            " not starting with a digit)",
            "groups[0].labels: 2 is not a valid label name (letters, digits and _,"
            " not starting with a digit)",
        ],
    ),
    (
        "label name starting with __",
        doc(groups=group("    labels: {__team: finance}\n")),
        [
            "groups[0].labels: '__team' is reserved: names starting with __ are for"
            " Prometheus' internal use"
        ],
    ),
    (
        "label names the exporter and Prometheus set, in defaults",
        doc(head="defaults:\n  labels: {job: x, severity: page, le: '1'}\n"),
        [
            f"defaults.labels: {name!r} is reserved: the exporter or Prometheus sets it on the"
            " group's series"
            for name in ("job", "severity", "le")
        ],
    ),
    (
        "label values that YAML reads as a number, a boolean, a date and null",
        doc(groups=group("    labels: {team: 1, oncall: yes, since: 2024-01-01, owner: null}\n")),
        [
            f"groups[0].labels.{name}: must be a string; put numbers, booleans and dates in quotes"
            for name in ("team", "oncall", "since", "owner")
        ],
    ),
    (
        "label value over 256 characters",
        doc(groups=group(f"    labels: {{owner: {'x' * 257}}}\n")),
        ["groups[0].labels.owner: 257 characters; at most 256"],
    ),
    (
        "labels that are not a mapping",
        doc(groups=group("    labels: [team, finance]\n")),
        ["groups[0].labels: Input should be a valid dictionary"],
    ),
    (
        "more than 16 labels in a group",
        doc(groups=group(f"    labels: {{{', '.join(f'l{i}: v' for i in range(17))}}}\n")),
        ["groups[0].labels: 17 labels; at most 16"],
    ),
    (
        "more than 16 labels with the defaults'",
        doc(
            head=f"defaults:\n  labels: {{{', '.join(f'd{i}: v' for i in range(10))}}}\n",
            groups=group("    labels: {team: a, owner: b, d0: c}\n")
            + group(f"    labels: {{{', '.join(f'g{i}: v' for i in range(7))}}}\n", name="ops"),
        ),
        ["groups[1].labels: 17 labels with those from defaults.labels; at most 16"],
    ),
    # ${VAR} expansion
    (
        "unset variable in the auth value",
        doc(targets=target(auth='{type: APIKEY, value: "${CAN_APIKEY_PROD}"}')),
        ["targets[0].auth.value: environment variable CAN_APIKEY_PROD is not set"],
    ),
    (
        "unset variables in a list and a URL",
        doc(
            targets=target().replace("https://can.example.com", "https://${CAN_HOST}"),
            groups=group(plans="    plan_ids: [p1, '${PLAN_B}']\n"),
        ),
        [
            "targets[0].url: environment variable CAN_HOST is not set",
            "groups[0].plan_ids[1]: environment variable PLAN_B is not set",
        ],
    ),
    # YAML itself
    (
        "duplicate YAML key",
        doc(groups="  - name: sales\n    target: prod\n    target: prod\n    plan_ids: [p1]\n"),
        ["invalid YAML: duplicate key 'target' at line 9, column 5"],
    ),
    (
        "YAML syntax error",
        "targets:\n  - name: prod\n   url: https://can.example.com\n",
        ["invalid YAML: did not find expected '-' indicator at line 3, column 4"],
    ),
    (
        "unquoted ${VAR} in a flow mapping",
        doc(targets=target(auth="{type: APIKEY, value: ${CAN_APIKEY}}")),
        ["invalid YAML: did not find expected ',' or '}' at line 5, column 34"],
    ),
    ("empty file", "", ["the file is empty; it needs at least a targets list"]),
    ("only comments", "# nothing yet\n", ["the file is empty; it needs at least a targets list"]),
    (
        "top level is a list",
        "- targets\n- groups\n",
        ["the top level must be a mapping with targets and groups"],
    ),
    (
        "top level is a scalar",
        "targets\n",
        ["the top level must be a mapping with targets and groups"],
    ),
    # schedules and data periods
    (
        "bad cron expression",
        doc(groups=group(name="a") + group('    schedule: {refresh_cron: "61 2 * * *"}\n')),
        [
            "groups[1].schedule.refresh_cron: invalid cron expression '61 2 * * *': "
            "Error validating expression '61': the last value (61) is higher than the maximum "
            "value (59)"
        ],
    ),
    (
        "cron with too few fields",
        doc(head='defaults:\n  schedule: {refresh_cron: "30 2 * *"}\n'),
        [
            "defaults.schedule.refresh_cron: invalid cron expression '30 2 * *': "
            "Wrong number of fields; got 4, expected 5"
        ],
    ),
    (
        "cron with a numbered weekday",
        doc(groups=group('    schedule: {refresh_cron: "0 6 * * 1-5"}\n')),
        [
            "groups[0].schedule.refresh_cron: invalid cron expression '0 6 * * 1-5': write the "
            "day of week as names (mon-fri, sun), not numbers: APScheduler counts 0 as Monday, "
            "cron as Sunday"
        ],
    ),
    (
        "cron that never fires",
        doc(groups=group('    schedule: {refresh_cron: "0 0 30 2 *"}\n')),
        ["groups[0].schedule.refresh_cron: invalid cron expression '0 0 30 2 *': it never fires"],
    ),
    (
        "bad schedule timezone, negative grace, unknown schedule key",
        doc(
            groups=group(
                '    schedule: {refresh_cron: "30 2 * * *", timezone: Europe/Nowhere, '
                "grace: -5m, cron: x}\n"
            )
        ),
        [
            "groups[0].schedule.timezone: unknown time zone 'Europe/Nowhere'; "
            "use an IANA name such as UTC",
            "groups[0].schedule.grace: invalid duration '-5m': "
            "expected a form like 30s, 5m, 1h30m or 2d",
            "groups[0].schedule.cron: unknown key",
        ],
    ),
    (
        "bad data granularity and delay",
        doc(groups=group("    data_granularity: week\n    expected_data_delay: yesterday\n")),
        [
            "groups[0].data_granularity: Input should be 'day' or 'hour'",
            "groups[0].expected_data_delay: invalid duration 'yesterday': "
            "expected a form like 30s, 5m, 1h30m or 2d",
        ],
    ),
    (
        "expected data delay without a granularity",
        doc(groups=group(name="a") + group("    expected_data_delay: 1d\n")),
        ["groups[1].expected_data_delay: needs data_granularity (day or hour)"],
    ),
    # several problems at once, one line each
    (
        "several problems",
        doc(
            targets=target("    timezone: Nowhere/City\n    max_concurrency: 0\n"),
            groups=group("    interval: soon\n    per_plan: maybe\n"),
        ),
        [
            "targets[0].timezone: unknown time zone 'Nowhere/City'; use an IANA name such as UTC",
            "targets[0].max_concurrency: Input should be greater than or equal to 1",
            "groups[0].interval: invalid duration 'soon': "
            "expected a form like 30s, 5m, 1h30m or 2d",
            "groups[0].per_plan: must be true, false or auto",
        ],
    ),
    # per_plan: auto and its bound
    (
        "per_plan in capitals",
        doc(groups=group("    per_plan: AUTO\n")),
        ["groups[0].per_plan: must be true, false or auto"],
    ),
    (
        "per_plan empty",
        doc(groups=group("    per_plan:\n")),
        ["groups[0].per_plan: must be true, false or auto"],
    ),
    (
        "drilldown_max_plans zero",
        doc(groups=group("    per_plan: auto\n    drilldown_max_plans: 0\n")),
        ["groups[0].drilldown_max_plans: Input should be greater than or equal to 1"],
    ),
    (
        "drilldown_max_plans a fraction",
        doc(head="defaults:\n  drilldown_max_plans: 2.5\n"),
        [
            "defaults.drilldown_max_plans: Input should be a valid integer, "
            "got a number with a fractional part"
        ],
    ),
    (
        "drilldown_max_plans a word",
        doc(groups=group("    per_plan: auto\n    drilldown_max_plans: all\n")),
        [
            "groups[0].drilldown_max_plans: Input should be a valid integer, "
            "unable to parse string as an integer"
        ],
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
    [pytest.param(text, expected, id=case) for case, text, expected in BAD_CONFIGS],
)
def test_bad_config_gives_exact_problems(text: str, expected: list[str]) -> None:
    problems = problems_of(text)
    assert problems == expected
    for problem in problems:
        assert "\n" not in problem
        assert SECRET not in problem


# --- a valid configuration, resolved ---------------------------------------------------------

FULL = """\
defaults:
  interval: 2m
  timeout: 15s
  thresholds:
    data_lag: {critical: 72h}
targets:
  - name: prod
    url: https://can.example.com/gateway/
    tenant_id: "10001"
    auth: {type: APIKEY, value: "${CAN_APIKEY}"}
    timezone: Asia/Shanghai
    max_concurrency: 4
    timeout: 20s
  - name: staging
    url: http://can-staging.internal:8080
    tenant_id: "${STAGING_TENANT}"
    auth: {type: TOKEN, value: "tok-$$-literal"}
    tls: {insecure_skip_verify: true}
groups:
  - name: sales
    target: prod
    plan_ids: [p1, p2]
  - name: finance
    target: prod
    plan_names: [daily_revenue, 月度汇总]
    interval: 30m
    timeout: 1m
    per_plan: true
    thresholds:
      data_lag: {warning: 30h}
      refresh_age: {critical: 3d}
  - name: sales
    target: staging
    plan_ids: [p1]
"""
FULL_ENV = {"CAN_APIKEY": SECRET, "STAGING_TENANT": "20002"}


@pytest.fixture
def full_config() -> Config:
    return parse_config(FULL, environ=FULL_ENV)


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


# --- labels -----------------------------------------------------------------------------------


def test_labels_merge_over_the_defaults_and_sort_by_name() -> None:
    text = doc(
        head="defaults:\n  labels: {team: platform, owner: ops}\n",
        groups=group("    labels: {team: finance, dashboard_url: 'https://g/d/x?a=1&b=2'}\n")
        + group(name="plain")
        + group("    labels: {owner: ''}\n", name="unowned"),
    )
    finance, plain, unowned = parse_config(text, environ=ENV).groups
    assert finance.labels == (
        ("dashboard_url", "https://g/d/x?a=1&b=2"),
        ("owner", "ops"),
        ("team", "finance"),
    )
    assert plain.labels == (("owner", "ops"), ("team", "platform"))
    # An empty value removes the label, one inherited from defaults too.
    assert unowned.labels == (("team", "platform"),)


def test_no_labels_anywhere_is_an_empty_tuple() -> None:
    (only,) = parse_config(doc(), environ=ENV).groups
    assert only.labels == ()


def test_label_order_in_the_file_does_not_change_the_group() -> None:
    # The poller compares groups on reload: reordering labels must not count as a change.
    first = parse_config(doc(groups=group("    labels: {team: a, owner: b}\n")), environ=ENV)
    second = parse_config(doc(groups=group("    labels: {owner: b, team: a}\n")), environ=ENV)
    assert first.groups == second.groups


def test_label_limits_are_inclusive() -> None:
    pairs = ", ".join(f"l{i}: v" for i in range(15))
    text = doc(groups=group(f"    labels: {{{pairs}, owner: '{'x' * 256}'}}\n"))
    (only,) = parse_config(text, environ=ENV).groups
    assert len(only.labels) == 16
    assert dict(only.labels)["owner"] == "x" * 256


def test_label_values_keep_any_text_and_expand_variables() -> None:
    text = doc(
        groups=group(
            "    labels:\n"
            "      owner: 'Finance \"ledger\" team \\ ${OWNER}'\n"
            '      note: "two\\nlines"\n'
            "      Team_2: 销售\n"
        )
    )
    (only,) = parse_config(text, environ={**ENV, "OWNER": "alice"}).groups
    assert dict(only.labels) == {
        "owner": 'Finance "ledger" team \\ alice',
        "note": "two\nlines",
        "Team_2": "销售",
    }


@pytest.mark.parametrize("name", sorted(RESERVED_LABELS))
def test_every_reserved_label_is_rejected(name: str) -> None:
    assert problems_of(doc(groups=group(f"    labels: {{{name}: x}}\n"))) == [
        f"groups[0].labels: {name!r} is reserved: the exporter or Prometheus sets it on the"
        " group's series"
    ]


def test_reserved_labels_cover_what_prometheus_and_the_exporter_set() -> None:
    assert {"job", "instance", "target", "group", "plan", "severity", "reason", "le"} <= (
        RESERVED_LABELS
    )


# --- ${VAR} expansion ------------------------------------------------------------------------


def test_variables_expand_in_every_string() -> None:
    text = """\
defaults: {interval: "${INTERVAL}"}
targets:
  - name: "${TARGET}"
    url: "https://${CAN_HOST}:${CAN_PORT}"
    tenant_id: "${TENANT}"
    auth: {type: "${AUTH_TYPE}", value: "pre-${CAN_APIKEY}-post"}
    timezone: "${ZONE}"
    max_concurrency: "${CONCURRENCY}"
groups:
  - name: "${GROUP}"
    target: "${TARGET}"
    plan_names: ["${PLAN}", "fixed"]
"""
    environ = {
        "INTERVAL": "90s",
        "TARGET": "prod",
        "CAN_HOST": "can.example.com",
        "CAN_PORT": "8443",
        "TENANT": "10001",
        "AUTH_TYPE": "UID",
        "CAN_APIKEY": SECRET,
        "ZONE": "Europe/Berlin",
        "CONCURRENCY": "3",
        "GROUP": "sales",
        "PLAN": "daily",
    }
    config = parse_config(text, environ=environ)
    prod = config.targets["prod"]
    assert prod.url == "https://can.example.com:8443"
    assert prod.tenant_id == "10001"
    assert prod.auth_type is AuthType.UID
    assert prod.auth_value.get_secret_value() == f"pre-{SECRET}-post"
    assert prod.timezone == ZoneInfo("Europe/Berlin")
    assert prod.max_concurrency == 3
    (sales,) = config.groups
    assert sales.key == ("prod", "sales")
    assert sales.plans == ("daily", "fixed")
    assert sales.interval == 90.0


@pytest.mark.parametrize(
    ("written", "environ", "value"),
    [
        ("a$$b", {}, "a$b"),
        ("$${CAN_APIKEY}", {"CAN_APIKEY": "x"}, "${CAN_APIKEY}"),
        ("$$$${X}", {}, "$${X}"),
        ("$$${X}", {"X": "v"}, "$v"),
        ("$HOME-and-$", {}, "$HOME-and-$"),
        ("${X}", {"X": "${Y}"}, "${Y}"),  # expanded once, not recursively
        ("${X}${X}", {"X": "ab"}, "abab"),
    ],
)
def test_dollar_handling(written: str, environ: dict[str, str], value: str) -> None:
    # After a prefix: an auth value must be long enough to be masked safely.
    text = doc(targets=target(auth=f'{{type: APIKEY, value: "apikey: {written}"}}'), groups=None)
    config = parse_config(text, environ=environ)
    assert config.targets["prod"].auth_value.get_secret_value() == f"apikey: {value}"


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAN_APIKEY", "from-process-env")
    config = parse_config(doc())
    assert config.targets["prod"].auth_value.get_secret_value() == "from-process-env"
    # An explicit mapping replaces the process environment.
    assert problems_of(doc(), environ={}) == [
        "targets[0].auth.value: environment variable CAN_APIKEY is not set"
    ]


def test_variables_in_comments_and_keys_are_not_expanded() -> None:
    text = "# ${UNSET_IN_COMMENT}\n" + doc()
    assert parse_config(text, environ=ENV).targets["prod"].tenant_id == "10001"


# --- files: load_config, value_file, ca_file --------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_records_the_source(tmp_path: Path) -> None:
    path = write(tmp_path / "exporter.yml", doc())
    config = load_config(path, environ=ENV)
    assert config.source == str(path)
    assert config.groups[0].plans == ("p1", "p2")


def test_load_config_problem_lines_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "exporter.yml", doc(groups=group(plans="    plan_ids: []\n")))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.source == str(path)
    assert caught.value.problems == ["groups[0].plan_ids: must not be empty"]
    assert caught.value.lines() == [
        f"config error: groups[0].plan_ids: must not be empty (file={path})"
    ]


def test_load_config_yaml_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "exporter.yml", "targets: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.lines() == [
        "config error: invalid YAML: did not find expected node content at line 2, column 1 "
        f"(file={path})"
    ]


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.lines() == [
        f"config error: cannot read config file: No such file or directory (file={path})"
    ]


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"targets: []\n# caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.problems == ["cannot read config file: UnicodeDecodeError"]


def test_lines_without_a_source_have_no_file_suffix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("", environ=ENV)
    assert caught.value.lines() == [
        "config error: the file is empty; it needs at least a targets list"
    ]
    assert str(caught.value) == "the file is empty; it needs at least a targets list"


def value_file_config(path: str) -> str:
    return doc(targets=target(auth=f'{{type: APIKEY, value_file: "{path}"}}'), groups=None)


def test_value_file_is_read_and_stripped(tmp_path: Path) -> None:
    key = write(tmp_path / "key", f"{SECRET}\n")
    config = parse_config(value_file_config(str(key)), environ={})
    assert config.targets["prod"].auth_value.get_secret_value() == SECRET


def test_value_file_path_may_use_variables(tmp_path: Path) -> None:
    write(tmp_path / "key", f"{SECRET}\r\n")
    config = parse_config(value_file_config("${SECRETS}/key"), environ={"SECRETS": str(tmp_path)})
    assert config.targets["prod"].auth_value.get_secret_value() == SECRET


def test_relative_value_file_resolves_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc" / "exporter"
    write(config_dir / "secrets" / "apikey", f"{SECRET}\n")
    path = write(config_dir / "exporter.yml", value_file_config("secrets/apikey"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path, environ={})
    assert config.targets["prod"].auth_value.get_secret_value() == SECRET


def test_relative_ca_file_resolves_against_the_config_directory(tmp_path: Path) -> None:
    ca = tmp_path / "certs" / "ca.pem"
    ca.parent.mkdir()
    trustme.CA().cert_pem.write_to_path(str(ca))
    path = write(
        tmp_path / "exporter.yml",
        doc(targets=target("    tls: {ca_file: certs/ca.pem}\n"), groups=None),
    )
    config = load_config(path, environ=ENV)
    assert config.targets["prod"].ca_file == ca


@pytest.mark.parametrize(
    ("content", "detail"),
    [(b"not a certificate\n", "NO_CERTIFICATE_OR_CRL_FOUND"), (b"\xff\xfe\x00", "")],
)
def test_a_ca_file_that_is_not_a_pem_bundle_is_a_config_error(
    tmp_path: Path, content: bytes, detail: str
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(content)
    path = write(
        tmp_path / "exporter.yml",
        doc(targets=target("    tls: {ca_file: ca.pem}\n"), groups=None),
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    [line] = caught.value.lines()
    assert line.startswith(f"config error: targets[0].tls.ca_file: {ca} is not a PEM CA bundle: ")
    assert detail in line
    assert line.endswith(f"(file={path})")


def test_missing_value_file(tmp_path: Path) -> None:
    path = write(tmp_path / "exporter.yml", value_file_config("absent-key"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.lines() == [
        f"config error: targets[0].auth.value_file: cannot read {tmp_path / 'absent-key'}: "
        f"No such file or directory (file={path})"
    ]


@pytest.mark.parametrize("content", ["", "\n", "  \n\t\n"])
def test_empty_value_file(tmp_path: Path, content: str) -> None:
    key = write(tmp_path / "key", content)
    assert problems_of(value_file_config(str(key)), environ={}) == [
        f"targets[0].auth.value_file: {key} is empty"
    ]


def test_value_file_that_is_a_directory(tmp_path: Path) -> None:
    assert problems_of(value_file_config(str(tmp_path)), environ={}) == [
        f"targets[0].auth.value_file: {tmp_path} is a directory, not a regular file"
    ]


def test_ca_file_relative_to_base_dir_in_parse_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            doc(targets=target("    tls: {ca_file: ca.pem}\n"), groups=None),
            environ=ENV,
            base_dir=tmp_path,
        )
    assert caught.value.problems == [f"targets[0].tls.ca_file: no such file {tmp_path / 'ca.pem'}"]


# --- secret safety ---------------------------------------------------------------------------

SECRET_SAFETY_CASES = [
    pytest.param(doc(targets=target("    timeout: 0s\n")), id="bad duration beside the secret"),
    pytest.param(
        doc(targets=target().replace("https://can.example.com", "https://u:${CAN_APIKEY}@h")),
        id="secret as URL password",
    ),
    pytest.param(
        doc(targets=target().replace("https://can.example.com", "${CAN_APIKEY}")),
        id="secret as the URL",
    ),
    pytest.param(
        doc(targets=target().replace("https://can.example.com", "https://h/?k=${CAN_APIKEY}")),
        id="secret in the URL query",
    ),
    pytest.param(
        doc(targets=target(auth='{type: APIKEY, value: "${CAN_APIKEY}", value_file: k}')),
        id="secret with value_file too",
    ),
    pytest.param(
        doc(targets=target(auth='{type: APIKEY, value: ["${CAN_APIKEY}"]}')),
        id="secret inside a list",
    ),
    pytest.param(
        doc(targets=target(auth='{type: APIKEY, value: {"${CAN_APIKEY}": 1}}')),
        id="secret inside a mapping",
    ),
    pytest.param(
        doc(targets=target(auth="${CAN_APIKEY}")),
        id="secret as the whole auth",
    ),
    pytest.param(
        doc(targets=target(auth='{type: "${CAN_APIKEY}", value: APIKEY}')),
        id="secret as the auth type",
    ),
    pytest.param(
        doc(targets=target(name='"${CAN_APIKEY} "')),
        id="secret in a malformed target name",
    ),
    pytest.param(
        doc(targets=target("    tenant_id2: ${CAN_APIKEY}\n")),
        id="secret under an unknown key",
    ),
    pytest.param(
        doc(targets=target("    max_concurrency: ${CAN_APIKEY}\n")),
        id="secret as max_concurrency",
    ),
    pytest.param(
        doc(groups=group("    per_plan: ${CAN_APIKEY}\n")),
        id="secret as a boolean",
    ),
    pytest.param(
        doc(targets=target('    tls: {insecure_skip_verify: "${CAN_APIKEY}"}\n')),
        id="secret as tls flag",
    ),
    pytest.param(
        doc(targets=target(auth=f"\n      type: APIKEY\n      value: {SECRET}: oops")),
        id="YAML error on the secret's line",
    ),
    pytest.param(
        doc(targets=target(auth=f"\n      type: APIKEY\n      value: {SECRET}\n      value: x")),
        id="secret's key written twice",
    ),
    pytest.param(
        doc(targets=target("    timezone: ${CAN_APIKEY}\n")),
        id="secret as the time zone",
    ),
    pytest.param(
        doc(targets=target("    timeout: ${CAN_APIKEY}\n")),
        id="secret as a duration",
    ),
    pytest.param(
        doc(groups=group(on="${CAN_APIKEY}")),
        id="secret as a group's target",
    ),
    pytest.param(
        doc(groups=group(plans='    plan_ids: ["${CAN_APIKEY}", "${CAN_APIKEY}"]\n')),
        id="secret as a duplicated plan",
    ),
]


@pytest.mark.parametrize("text", SECRET_SAFETY_CASES)
def test_secret_never_appears_in_problems(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ=ENV)
    error = caught.value
    assert error.problems, "expected at least one problem"
    for line in [*error.problems, *error.lines(), str(error), repr(error)]:
        assert SECRET not in line


def test_secret_from_value_file_never_appears_in_problems(tmp_path: Path) -> None:
    key = write(tmp_path / "key", f"{SECRET}\n")
    text = doc(
        targets=target(auth=f'{{type: APIKEY, value_file: "{key}"}}', extra="    timeout: 0s\n")
    )
    problems = problems_of(text, environ={})
    assert problems == ["targets[0].timeout: duration '0s' must be greater than zero"]


def test_secret_never_appears_in_repr(full_config: Config) -> None:
    prod = full_config.targets["prod"]
    for text in (repr(full_config), str(full_config), repr(prod), str(prod)):
        assert SECRET not in text
        assert "tok-$-literal" not in text
    assert "auth_value=" not in repr(prod)
    assert "name='prod'" in repr(prod)
    assert isinstance(prod.auth_value, SecretStr)
    assert SECRET not in repr(prod.auth_value)


# --- warnings for suspicious but allowed configs ----------------------------------------------


def test_plan_in_two_groups_is_a_warning() -> None:
    text = doc(groups=group() + group(name="ops", plans="    plan_ids: [p2, p3]\n"))
    config = parse_config(text, environ=ENV)
    assert len(config.groups) == 2
    assert config.warnings == ("groups: plan 'p2' of target 'prod' is in both 'sales' and 'ops'",)


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param(
            group() + group(name="ops", plans="    plan_names: [p1, p2]\n"),
            id="same text as id and as name",
        ),
        pytest.param(group() + group(on="staging"), id="same plan on two targets"),
    ],
)
def test_plan_in_two_groups_differently_is_not_a_warning(groups: str) -> None:
    text = doc(targets=TARGET + target(name="staging"), groups=groups)
    config = parse_config(text, environ=ENV)
    assert len(config.groups) == 2
    assert config.warnings == ()


@pytest.mark.parametrize(
    "text", [doc(groups=None), doc(groups="  []\n")], ids=["no groups key", "empty list"]
)
def test_no_groups_is_a_warning(text: str) -> None:
    config = parse_config(text, environ=ENV)
    assert config.groups == ()
    assert list(config.targets) == ["prod"]
    assert config.warnings == (
        "groups: none configured; the exporter will only export its own metrics",
    )


def test_valid_config_has_no_warnings() -> None:
    assert parse_config(doc(), environ=ENV).warnings == ()


def test_a_plan_in_many_groups_is_one_warning() -> None:
    groups = "".join(group(name=f"g{index}") for index in range(50))
    config = parse_config(doc(groups=groups), environ=ENV)
    assert len(config.groups) == 50
    assert len(config.warnings) == len(config.groups[0].plans)
    assert config.warnings[0].endswith("is in 50 groups: 'g0', 'g1', 'g2', ...")
