"""The shipped alert rules and Alertmanager example: real promtool/amtool, plus the conventions.

Conventions checked here: every alert has `for:`, a severity, summary/description/runbook_url,
a runbook section that exists, the one job selector, and promtool tests that show it firing and
not firing. Every series a rule reads is one the exporter declares, or one a recording rule of
the same file records (``aloudata_can:...``, per group).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.metrics import declarations
from tests.helpers.programs import require_tool

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# The promtool test files: the alerts', and the freshness SLO rules'.
ALERTS_TEST = Path(__file__).parent / "alerts-test.yml"
SLO_TEST = Path(__file__).parent / "slo-test.yml"
MAINTENANCE_TEST = Path(__file__).parent / "maintenance-test.yml"
RULE_TESTS = [ALERTS_TEST, SLO_TEST, MAINTENANCE_TEST]
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_BASE = "https://github.com/aloudata/aloudata-can-exporter/blob/main/docs/runbook.md#"
JOB_SELECTOR = 'job="aloudata-can-exporter"'
GROUPS = {"aloudata-can-freshness", "aloudata-can-exporter", "aloudata-can-slo"}
GROUP_INFO_JOIN = (
    "* on(job, instance, target, group) group_left(team, owner) "
    f"aloudata_can_group_info{{{JOB_SELECTOR}}}"
)
# How an alert is silenced during a maintenance window: a group's (freshness, SLO, a missing
# plan), or its target's own (poll health), never a group's window for the target's alerts.
GROUP_MAINTENANCE_UNLESS = (
    f"unless on(job, instance, target, group) aloudata_can_maintenance{{{JOB_SELECTOR}}} == 1"
)
TARGET_MAINTENANCE_UNLESS = (
    f"unless on(job, instance, target) aloudata_can_target_maintenance{{{JOB_SELECTOR}}} == 1"
)
SILENCED_BY_TARGET_MAINTENANCE = frozenset({"AloudataCanPollFailing", "AloudataCanTargetFailing"})
# Compared with the group's schedule (applied by the exporter), not with exported thresholds.
SCHEDULE_ALERTS = frozenset({"AloudataCanRefreshOverdue", "AloudataCanDataPeriodsBehind"})
OWNER_SENTENCE = "{{ with $labels.owner }} Owner: {{ . }}.{{ end }}"
# Freshness alerts with nothing to configure: a flag, and an event (data going backwards).
UNTHRESHOLDED = {"AloudataCanPlanNotReady", "AloudataCanDataTimeRegressed"}

# Labels every series gets from the scrape, whatever the metric.
SCRAPE_LABELS = frozenset({"job", "instance"})
# The exporter's names (aloudata_can_...) and the recording rules' (aloudata_can:...).
_METRIC = re.compile(r"\baloudata_can(?:_\w+|:[\w:]+)")
_SELECTOR = re.compile(r"\b(aloudata_can(?:_\w+|:[\w:]+))\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
# Every series name the exporter exposes (a histogram's three), with its labels.
EXPOSED = {
    spec.exposed_name + suffix: spec.labels
    for spec in declarations.ALL
    for suffix in (("_bucket", "_sum", "_count") if spec.type is declarations.HISTOGRAM else ("",))
}
# The freshness SLO recording rules, as the README names them (a public contract): per group.
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "28d")
SLO_RECORDINGS = {
    *(f"aloudata_can:freshness_error_ratio:{window}" for window in SLO_WINDOWS),
    "aloudata_can:freshness_budget_remaining:28d",
}
GROUP_LABELS = ("target", "group")


def _all_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _rules() -> list[dict[str, Any]]:
    """The alerting rules."""
    return [rule for rule in _all_rules() if "alert" in rule]


def _recordings() -> list[dict[str, Any]]:
    return [rule for rule in _all_rules() if "record" in rule]


def _name(rule: dict[str, Any]) -> str:
    return str(rule.get("alert") or rule["record"])


# Every series the rules may read: the exporter's, and what the file's recording rules record
# (each one keeps the labels of a group's series: job, instance, target, group).
DECLARED = {**EXPOSED, **{rule["record"]: GROUP_LABELS for rule in _recordings()}}


def _alert_names() -> list[str]:
    return sorted({rule["alert"] for rule in _rules()})


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_check_rules() -> None:
    result = _run([require_tool("promtool"), "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_all_rules())} rules found" in result.stdout


def test_the_promtool_test_files_are_found() -> None:
    # Guards the tests below against passing on an empty glob.
    assert sorted(Path(__file__).parent.glob("*-test.y*ml")) == sorted(RULE_TESTS)


@pytest.mark.parametrize("tests", RULE_TESTS, ids=lambda path: path.name)
def test_promtool_test_rules(tests: Path) -> None:
    result = _run([require_tool("promtool"), "test", "rules", str(tests)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("original", "mutant", "failure"),
    [
        # Compare with >= instead of >: the edge cases bite.
        (
            "> ignoring(severity)",
            ">= ignoring(severity)",
            "data lag exactly at its thresholds does not fire",
        ),
        # Join without the owner: the alerts lose it, and their descriptions with it.
        (
            "group_left(team, owner)",
            "group_left(team)",
            "a group's config labels give its alerts team and owner",
        ),
        # Join on target and group only: two exporters with the same group fail the rule.
        (
            "on(job, instance, target, group)",
            "on(target, group)",
            "many-to-many matching not allowed",
        ),
        # An overdue of 0 (refreshed after the fire) is on time.
        (
            'aloudata_can_refresh_overdue_seconds{job="aloudata-can-exporter"} > 0',
            'aloudata_can_refresh_overdue_seconds{job="aloudata-can-exporter"} >= 0',
            "a refresh overdue past its deadline fires after 5 minutes, one on time never does",
        ),
        # Exactly one period behind is behind.
        (
            'aloudata_can_data_lag_periods{job="aloudata-can-exporter"} >= 1',
            'aloudata_can_data_lag_periods{job="aloudata-can-exporter"} > 1',
            "data one period behind fires after 10 minutes",
        ),
        # The count alert fires at its threshold, not only over it.
        (
            ">= ignoring(severity)",
            "> ignoring(severity)",
            "refreshes without new data exactly at the warning threshold fire",
        ),
        # Any regression fires, and for an hour.
        ("[1h]) > 0", "[1h]) >= 0", "a data time going backwards fires after for elapses"),
        ("[1h]) > 0", "[10m]) > 0", "a data time going backwards fires after for elapses"),
        # The page's threshold: 14.4 times the budget over 1h and 5m.
        ("> 14.4", "> 16.8", "a five-minute blip pages at 99.5% and not at 99%"),
        # A window without observed seconds has no ratio, not 0 / 0.
        (
            '/ (rate(aloudata_can_observed_seconds_total{job="aloudata-can-exporter"}[5m]) > 0)',
            '/ rate(aloudata_can_observed_seconds_total{job="aloudata-can-exporter"}[5m])',
            "unknown|no_slo",
        ),
        # The 28-day ratio is the mean of the 5m series.
        ("avg_over_time(", "max_over_time(", "aloudata_can:freshness_error_ratio:28d"),
        # Without the maintenance clause, the freshness alerts fire in a window.
        (
            GROUP_MAINTENANCE_UNLESS,
            "",
            "data lag over both thresholds fires neither severity in a window",
        ),
        # A group's window must not silence the target's poll health.
        (
            TARGET_MAINTENANCE_UNLESS,
            GROUP_MAINTENANCE_UNLESS,
            "a window of one group does not silence its failing polls",
        ),
        # A calendar group's business lag comes first: the wall-clock one only where it is absent.
        (
            'aloudata_can_data_lag_business_seconds{job="aloudata-can-exporter"}\n'
            "                or\n"
            '              aloudata_can_data_lag_seconds{job="aloudata-can-exporter"}',
            'aloudata_can_data_lag_seconds{job="aloudata-can-exporter"}\n'
            "                or\n"
            '              aloudata_can_data_lag_business_seconds{job="aloudata-can-exporter"}',
            "over a weekend a calendar group does not alert and a wall-clock group does",
        ),
    ],
    ids=[
        "threshold-edge",
        "join-without-owner",
        "join-without-instance",
        "overdue-zero",
        "periods-edge",
        "count-threshold-edge",
        "regression-zero",
        "regression-window",
        "page-threshold",
        "ratio-without-observed-seconds",
        "28d-mean",
        "maintenance-ignored",
        "target-silenced-by-a-group-window",
        "business-lag-first",
    ],
)
def test_promtool_test_rules_can_fail(
    tmp_path: Path, original: str, mutant: str, failure: str
) -> None:
    rules = ALERTS.read_text()
    assert original in rules
    (tmp_path / "alerts.yml").write_text(rules.replace(original, mutant))
    # The test file that names the failure (an engine error: the alerts'), against the mutant.
    source = next(
        (path for path in (SLO_TEST, MAINTENANCE_TEST) if failure in path.read_text()),
        ALERTS_TEST,
    )
    tests = source.read_text().replace("../../deploy/prometheus/alerts.yml", "alerts.yml")
    (tmp_path / source.name).write_text(tests)
    result = _run([require_tool("promtool"), "test", "rules", str(tmp_path / source.name)])
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Unit Testing" in output
    assert failure in output


def test_rule_groups_are_freshness_exporter_health_and_slo() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert {group["name"] for group in document["groups"]} == GROUPS


def test_the_slo_recording_rules_are_the_public_names() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    slo = next(g for g in document["groups"] if g["name"] == "aloudata-can-slo")
    assert {rule["record"] for rule in slo["rules"] if "record" in rule} == SLO_RECORDINGS
    assert {rule["record"] for rule in _recordings()} == SLO_RECORDINGS


@pytest.mark.parametrize("rule", _recordings(), ids=_name)
def test_recording_rule_follows_conventions(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    selectors = re.findall(r"\{([^{}]*)\}", expr)
    assert selectors, f"{rule['record']} selects no series"
    assert all(JOB_SELECTOR in selector for selector in selectors), expr
    # Only groups with an SLO: every rule reads the group's objective, joined per group.
    assert f"aloudata_can_slo_objective_ratio{{{JOB_SELECTOR}}}" in expr
    assert "on(job, instance, target, group)" in expr
    assert not re.search(r"\b(by|without)\s*\(", expr), "a group's series keep their labels"


def test_recording_rules_read_only_what_is_recorded_before_them() -> None:
    # Rules of a group run in order at one timestamp: a rule reading a recording made after it
    # would see the previous evaluation's value.
    recorded: set[str] = set()
    for rule in _recordings():
        used = {name for name in _METRIC.findall(rule["expr"]) if ":" in name}
        assert used <= recorded, f"{rule['record']} reads {sorted(used - recorded)} first"
        recorded.add(rule["record"])


def test_the_long_window_reads_the_5m_series_not_the_counters() -> None:
    (rule,) = [r for r in _recordings() if r["record"] == "aloudata_can:freshness_error_ratio:28d"]
    assert "[28d]" in rule["expr"]
    assert "aloudata_can:freshness_error_ratio:5m{" in rule["expr"]
    assert "_seconds_total" not in rule["expr"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: f"{rule['alert']}")
def test_alert_follows_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"AloudataCan[A-Z][A-Za-z]+", name)
    assert rule.get("for"), f"{name} has no for:"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert "{{" not in annotations["summary"], "summary is static"
    assert "$labels" in annotations["description"]
    assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower()
    selectors = re.findall(r"\{([^{}]*)\}", rule["expr"])
    assert selectors, f"{name} selects no series"
    assert all(JOB_SELECTOR in selector for selector in selectors), rule["expr"]


def test_freshness_alerts_compare_against_exported_thresholds() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    freshness = next(g for g in document["groups"] if g["name"] == "aloudata-can-freshness")
    for rule in freshness["rules"]:
        if rule["alert"] in SCHEDULE_ALERTS | UNTHRESHOLDED:
            continue
        severity = rule["labels"]["severity"]
        assert re.search(r"aloudata_can_\w+_threshold(_seconds)?\{", rule["expr"])
        assert f'severity="{severity}"' in rule["expr"]


def test_schedule_alerts_are_freshness_alerts_on_the_schedule_series() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    freshness = next(g for g in document["groups"] if g["name"] == "aloudata-can-freshness")
    exprs = {rule["alert"]: rule["expr"] for rule in freshness["rules"]}
    assert "aloudata_can_refresh_overdue_seconds" in exprs["AloudataCanRefreshOverdue"]
    assert "aloudata_can_data_lag_periods" in exprs["AloudataCanDataPeriodsBehind"]


def test_every_metric_a_rule_uses_is_declared_with_its_labels() -> None:
    problems = []
    for rule in _all_rules():
        # The annotations' query templates count too: they query the same series.
        for text in (rule["expr"], *map(str, rule.get("annotations", {}).values())):
            unknown = [name for name in _METRIC.findall(text) if name not in DECLARED]
            problems += [f"{_name(rule)}: {name} is not declared" for name in unknown]
            for name, matchers in _SELECTOR.findall(text):
                labels = set(_MATCHER_LABEL.findall(matchers))
                if extra := labels - set(DECLARED.get(name, ())) - SCRAPE_LABELS:
                    problems.append(f"{_name(rule)}: {name} has no labels {sorted(extra)}")
    assert problems == []


def _condition(rule: dict[str, Any]) -> str:
    """The expression on one line, without its trailing maintenance clause."""
    expr = " ".join(rule["expr"].split())
    for clause in (GROUP_MAINTENANCE_UNLESS, TARGET_MAINTENANCE_UNLESS):
        expr = expr.removesuffix(" " + clause)
    return expr


def _is_group_level(rule: dict[str, Any]) -> bool:
    """Its series carry target and group and it keeps them: no aggregation."""
    condition = _condition(rule)
    names = set(_METRIC.findall(condition))
    return (
        bool(names)
        and not re.search(r"\bby\s*\(", condition)
        and all("group" in DECLARED.get(name, ()) for name in names)
    )


def test_the_group_level_alerts() -> None:
    assert {rule["alert"] for rule in _rules() if _is_group_level(rule)} == {
        "AloudataCanDataLagHigh",
        "AloudataCanRefreshStale",
        "AloudataCanPlanNotReady",
        "AloudataCanPlanMissing",
        "AloudataCanPollFailing",
        *SCHEDULE_ALERTS,
        "AloudataCanDataTimeRegressed",
        "AloudataCanRefreshesWithoutNewData",
        "AloudataCanFreshnessBudgetBurn",
        "AloudataCanFreshnessBudgetExhausted",
    }


@pytest.mark.parametrize(
    "rule",
    [rule for rule in _rules() if _is_group_level(rule)],
    ids=lambda rule: f"{rule['alert']}-{rule['labels']['severity']}",
)
def test_group_level_alert_joins_the_groups_labels(rule: dict[str, Any]) -> None:
    expr = _condition(rule)
    # The whole condition, in parentheses, is joined: the alert gets team and owner.
    assert expr.startswith("(")
    assert expr.endswith(") " + GROUP_INFO_JOIN), expr
    assert rule["annotations"]["description"].endswith(OWNER_SENTENCE)


@pytest.mark.parametrize(
    "rule", _rules(), ids=lambda rule: f"{rule['alert']}-{rule['labels']['severity']}"
)
def test_maintenance_silences_the_groups_and_the_targets_alerts(rule: dict[str, Any]) -> None:
    expr = " ".join(rule["expr"].split())
    if rule["alert"] in SILENCED_BY_TARGET_MAINTENANCE:
        assert expr.endswith(" " + TARGET_MAINTENANCE_UNLESS), expr
    elif _is_group_level(rule):
        assert expr.endswith(" " + GROUP_MAINTENANCE_UNLESS), expr
    else:
        # The exporter's own health: no window hides that it is down or misconfigured.
        assert "maintenance" not in expr, expr


def _runbook_anchors() -> set[str]:
    headings = re.findall(r"^## (\S+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {heading.lower() for heading in headings}


def test_every_alert_has_a_runbook_section() -> None:
    assert {name.lower() for name in _alert_names()} <= _runbook_anchors()


def test_every_runbook_section_is_an_alert() -> None:
    assert _runbook_anchors() <= {name.lower() for name in _alert_names()}


def _promtool_cases() -> dict[str, tuple[int, int]]:
    """For each alert name: how many promtool cases expect it firing, and expect none."""
    cases: dict[str, tuple[int, int]] = {}
    tests = [test for path in RULE_TESTS for test in yaml.safe_load(path.read_text())["tests"]]
    for test in tests:
        assert test.get("name"), "every promtool test group has a name"
        for case in test.get("alert_rule_test", []):
            firing, silent = cases.get(case["alertname"], (0, 0))
            if case.get("exp_alerts"):
                firing += 1
            else:
                silent += 1
            cases[case["alertname"]] = (firing, silent)
    return cases


@pytest.mark.parametrize("name", _alert_names())
def test_every_alert_is_tested_firing_and_not_firing(name: str) -> None:
    firing, silent = _promtool_cases().get(name, (0, 0))
    assert firing >= 1, f"no promtool case shows {name} firing"
    assert silent >= 1, f"no promtool case shows {name} not firing"


def test_amtool_check_config() -> None:
    result = _run([require_tool("amtool"), "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            ["alertname=AloudataCanDataLagHigh", "severity=critical", "group=sales"],
            "data-platform-pager",
        ),
        (
            ["alertname=AloudataCanDataLagHigh", "severity=warning", "group=sales"],
            "data-platform-chat",
        ),
        (
            ["alertname=AloudataCanRefreshStale", "severity=critical", "team=finance"],
            "finance-pager",
        ),
        (["alertname=AloudataCanPollFailing", "severity=warning", "team=finance"], "finance-chat"),
        (
            ["alertname=AloudataCanRefreshOverdue", "severity=warning", "team=finance"],
            "finance-chat",
        ),
        (
            ["alertname=AloudataCanDataPeriodsBehind", "severity=warning", "group=sales"],
            "data-platform-chat",
        ),
        (
            ["alertname=AloudataCanPlanMissing", "severity=warning", "team=finance", "plan=p13"],
            "finance-chat",
        ),
        (["alertname=AloudataCanPlanMissing", "severity=warning"], "data-platform-chat"),
        (
            ["alertname=AloudataCanPlanNotReady", "severity=warning", "team=marketing"],
            "marketing-chat",
        ),
        (
            ["alertname=AloudataCanTargetFailing", "severity=critical", "team=marketing"],
            "marketing-pager",
        ),
        # team and owner as the rules join them from aloudata_can_group_info.
        (
            [
                "alertname=AloudataCanDataLagHigh",
                "severity=critical",
                "group=ledger",
                "team=finance",
                "owner=alice",
            ],
            "finance-pager",
        ),
        (
            ["alertname=AloudataCanPollFailing", "severity=warning", "team=marketing", "owner=bob"],
            "marketing-chat",
        ),
        # A team without a route of its own: the data platform team's receivers.
        (
            ["alertname=AloudataCanRefreshStale", "severity=warning", "team=logistics"],
            "data-platform-chat",
        ),
        (
            ["alertname=AloudataCanRefreshStale", "severity=critical", "team=logistics"],
            "data-platform-pager",
        ),
        (["alertname=AloudataCanTargetFailing", "severity=critical"], "data-platform-pager"),
        (
            ["alertname=AloudataCanDataTimeRegressed", "severity=warning", "team=finance"],
            "finance-chat",
        ),
        (
            ["alertname=AloudataCanRefreshesWithoutNewData", "severity=critical", "group=x"],
            "data-platform-pager",
        ),
        # The SLO alerts go to the group's team like its other freshness alerts.
        (
            ["alertname=AloudataCanFreshnessBudgetBurn", "severity=critical", "team=finance"],
            "finance-pager",
        ),
        (
            ["alertname=AloudataCanFreshnessBudgetExhausted", "severity=warning", "group=x"],
            "data-platform-chat",
        ),
        (["alertname=AloudataCanExporterDown", "severity=critical"], "observability-pager"),
        (["alertname=AloudataCanExporterAbsent", "severity=critical"], "observability-pager"),
        (["alertname=AloudataCanConfigReloadFailed", "severity=warning"], "observability-chat"),
        (["alertname=AloudataCanShardsMismatch", "severity=warning"], "observability-chat"),
    ],
)
def test_alertmanager_example_routes(labels: list[str], receiver: str) -> None:
    result = _run(
        [
            require_tool("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER}",
            "--verify.receivers=" + receiver,
            *labels,
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_example_uses_current_matcher_syntax() -> None:
    text = ALERTMANAGER.read_text()
    document = yaml.safe_load(text)
    assert not re.search(r"^\s*(match|match_re|source_match|target_match)(_re)?:", text, re.M)
    assert document["route"]["group_by"] == ["alertname", "group"]
    inhibits = document["inhibit_rules"]
    assert any(
        rule["source_matchers"] == ['severity="critical"']
        and rule["target_matchers"] == ['severity="warning"']
        and {"alertname", "group"} <= set(rule["equal"])
        for rule in inhibits
    )
    polling = [
        r for r in inhibits if r["source_matchers"] == ['alertname="AloudataCanPollFailing"']
    ]
    assert polling, "polls failing must mute the group's freshness alerts"
    assert "AloudataCanDataLagHigh" in polling[0]["target_matchers"][0]
    assert all(name in polling[0]["target_matchers"][0] for name in SCHEDULE_ALERTS)
    # Per exporter: another exporter that polls the group fine still raises its alerts.
    assert set(polling[0]["equal"]) == {"instance", "target", "group"}


def test_alert_names_in_alertmanager_example_exist() -> None:
    names = set(re.findall(r"AloudataCan[A-Za-z]+", ALERTMANAGER.read_text()))
    assert names <= set(_alert_names())
