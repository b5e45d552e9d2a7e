"""The schema (schema.py): unknown, missing and malformed keys in, the exact problems out."""

from __future__ import annotations

import pytest

from tests.helpers.configs import (
    assert_exact_problems,
    bad_config_params,
    doc,
    group,
    target,
)

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
        "empty plan id",
        doc(groups=group(plans="    plan_ids: [p1, '']\n")),
        ["groups[0].plan_ids[1]: String should have at least 1 character"],
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
        "target name with a space",
        doc(targets=target(name="'prod eu'"), groups=None),
        ["targets[0].name: String should match pattern '^[^\\s\\x00-\\x1f]+$'"],
    ),
    # schedules and data periods
    (
        "bad cron expression",
        doc(groups=group(name="a") + group('    schedule: {refresh_cron: "61 2 * * *"}\n')),
        [
            "groups[1].schedule.refresh_cron: invalid cron expression '61 2 * * *': "
            "the minute 61 is outside 0-59"
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
        "cron with a day of week out of range",
        doc(groups=group('    schedule: {refresh_cron: "0 6 * * 1-8"}\n')),
        [
            "groups[0].schedule.refresh_cron: invalid cron expression '0 6 * * 1-8': "
            "the day of week 8 is outside 0-7"
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
]


@pytest.mark.parametrize(
    ("text", "expected"),
    bad_config_params(BAD_CONFIGS),
)
def test_bad_config_gives_exact_problems(text: str, expected: list[str]) -> None:
    assert_exact_problems(text, expected)
