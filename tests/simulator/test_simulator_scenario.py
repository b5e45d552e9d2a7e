"""Loading and validating scenario files."""

from datetime import timedelta
from pathlib import Path

import pytest

from exporter.simulator import DEMO_SCENARIO_PATH, ScenarioError, load_scenario
from exporter.simulator.scenario import Granularity

FAULTS_SCENARIO_PATH = DEMO_SCENARIO_PATH.with_name("faults.yml")

HEADER = """\
tenant_id: "10001"
auth: {type: APIKEY, value: s3cret-value}
timezone: Asia/Shanghai
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path) -> tuple[str, ...]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return caught.value.problems


def test_demo_scenario_has_the_documented_plans() -> None:
    scenario = load_scenario(DEMO_SCENARIO_PATH)

    plans = {plan.name: plan for plan in scenario.plans}
    assert scenario.tenant_id == "10001"
    assert scenario.auth.type == "APIKEY"
    assert scenario.auth.value.get_secret_value() == "demo-apikey"
    assert plans["sales_daily"].id == "6665de58846daee543d5db415375d936"
    assert plans["sales_daily"].data_delay == timedelta(0)
    assert plans["sales_daily"].data_granularity is Granularity.DAY
    assert plans["sales_daily"].refresh_every == timedelta(hours=1)
    assert plans["finance_monthly_lagging"].stalled_for >= timedelta(days=3)
    assert plans["inventory_new_never_refreshed"].never_refreshed
    assert plans["marketing_not_ready"].not_ready
    assert all(len(plan.id) == 32 and int(plan.id, 16) >= 0 for plan in scenario.plans)


def test_faults_scenario_has_one_plan_per_fault_kind() -> None:
    faults = {plan.name: plan.faults for plan in load_scenario(FAULTS_SCENARIO_PATH).plans}

    assert faults["slow_latency"].latency == timedelta(seconds=30)
    assert faults["unavailable_503"].http_status == 503
    assert faults["garbled_malformed_json"].malformed_json
    assert faults["broken_api_error"].api_error == "Internal error"
    assert faults["healthy_daily"].latency == timedelta(0)
    assert faults["healthy_daily"].flap is None
    flap = faults["flapping_503"].flap
    assert flap is not None
    assert (flap.period, flap.down, flap.http_status) == (
        timedelta(minutes=1),
        timedelta(seconds=20),
        503,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w2d", timedelta(days=9)),
    ],
)
def test_durations_are_prometheus_style(tmp_path: Path, text: str, expected: timedelta) -> None:
    path = _write(tmp_path, HEADER + f"plans:\n  - {{id: a, name: b, data_delay: {text}}}\n")

    assert load_scenario(path).plans[0].data_delay == expected


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        ("{id: a, name: b, data_delay: x}", "plans[0].data_delay: invalid duration 'x'"),
        ("{id: a, name: b, data_delay: 5}", "plans[0].data_delay: must be a duration string"),
        ("{id: a, name: b, data_delay: 1m1h}", "plans[0].data_delay: invalid duration '1m1h'"),
        ("{id: a, name: b, refresh_every: 0s}", "plans[0].refresh_every: must be longer than 0s"),
        ("{id: a, name: b, refresh_evry: 1h}", "plans[0].refresh_evry: unknown key"),
        ("{id: a, name: b, data_granularity: week}", "plans[0].data_granularity: Input should"),
        ("{id: a, name: b, faults: {http_status: 200}}", "plans[0].faults.http_status: Input"),
        ("{id: a, name: b, faults: {latency: soon}}", "plans[0].faults.latency: invalid duration"),
        ("{name: b}", "plans[0].id: required key is missing"),
        ("{id: a, name: b, data_frozen_after: -1h}", "plans[0].data_frozen_after: invalid"),
        ("{id: a, name: b, data_rollback: 1h}", "plans[0].data_rollback: Input should be"),
        (
            "{id: a, name: b, data_rollback: {after: 1m}}",
            "plans[0].data_rollback.by: required key is missing",
        ),
        (
            "{id: a, name: b, data_rollback: {after: 1m, by: 0s}}",
            "plans[0].data_rollback.by: must be longer than 0s",
        ),
        (
            "{id: a, name: b, data_rollback: {after: 1m, by: 1h, until: 2m}}",
            "plans[0].data_rollback.until: unknown key",
        ),
        (
            "{id: a, name: b, never_refreshed: true, data_frozen_after: 1m}",
            "plans[0]: data_frozen_after has no effect on a never_refreshed plan",
        ),
    ],
)
def test_invalid_plan_names_the_key_path_and_file(tmp_path: Path, plan: str, problem: str) -> None:
    path = _write(tmp_path, HEADER + f"plans:\n  - {plan}\n")

    problems = _problems(path)

    assert len(problems) == 1
    assert problems[0].startswith(problem)
    assert problems[0].endswith(f"(file={path})")


def test_each_problem_is_its_own_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEADER
        + "plans:\n  - {id: a, name: b, data_delay: x}\n  - {id: c, name: d, not_ready: 7}\n",
    )

    problems = _problems(path)

    assert [problem.split(":")[0] for problem in problems] == [
        "plans[0].data_delay",
        "plans[1].not_ready",
    ]
    assert all("\n" not in problem for problem in problems)


def test_duplicate_plan_id_points_at_both_entries(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEADER
        + "plans:\n  - {id: a, name: one}\n  - {id: b, name: two}\n  - {id: a, name: three}\n",
    )

    assert _problems(path) == (
        f"plans[2].id: duplicate plan id 'a' (first at plans[0]) (file={path})",
    )


def test_duplicate_plan_name_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "plans:\n  - {id: a, name: same}\n  - {id: b, name: same}\n")

    assert _problems(path) == (
        f"plans[1].name: duplicate plan name 'same' (first at plans[0]) (file={path})",
    )


def test_duplicate_yaml_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "plans:\n  - id: a\n    name: b\n    id: c\n")

    assert _problems(path) == (
        f"invalid YAML: duplicate key 'id' at line 7, column 5 (file={path})",
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plans: [", "invalid YAML: "),
        ("- just\n- a list\n", "top level: must be a mapping of keys"),
        ("", "top level: must be a mapping of keys"),
        (
            HEADER.replace("Asia/Shanghai", "Mars/Olympus") + "plans: [{id: a, name: b}]\n",
            "timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            # A directory of the zone database: zoneinfo raises OSError, not its own error.
            HEADER.replace("Asia/Shanghai", "Asia") + "plans: [{id: a, name: b}]\n",
            "timezone: unknown time zone 'Asia'",
        ),
        (HEADER + "plans: []\n", "plans: must list at least one plan"),
        (HEADER.replace("APIKEY", "PASSWORD") + "plans: [{id: a, name: b}]\n", "auth.type: Input"),
    ],
)
def test_invalid_file_gives_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)

    problems = _problems(path)

    assert len(problems) == 1
    assert problems[0].startswith(problem)
    assert problems[0].endswith(f"(file={path})")


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"

    assert _problems(path) == (f"cannot read file: No such file or directory (file={path})",)


def test_errors_never_echo_the_auth_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'tenant_id: "10001"\nauth: {type: s3cret-value, value: s3cret-value, extra: s3cret-value}\n'
        "timezone: UTC\nplans: [{id: a, name: b}]\n",
    )

    problems = _problems(path)

    assert len(problems) == 2
    assert not any("s3cret" in problem for problem in problems)


def test_data_change_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEADER
        + "plans:\n"
        + "  - {id: a, name: frozen, data_frozen_after: 10m}\n"
        + "  - {id: b, name: rolled, data_rollback: {after: 30s, by: 1d}}\n"
        + "  - {id: c, name: plain}\n",
    )
    frozen, rolled, plain = load_scenario(path).plans
    assert frozen.data_frozen_after == timedelta(minutes=10)
    assert rolled.data_rollback is not None
    assert (rolled.data_rollback.after, rolled.data_rollback.by) == (
        timedelta(seconds=30),
        timedelta(days=1),
    )
    assert plain.data_frozen_after is None
    assert plain.data_rollback is None
