"""The monitoring bundle end to end: simulator → exporter → Prometheus (the repo's rules) →
Alertmanager (the repo's example routing) → a webhook receiver, all real processes on 127.0.0.1.

The repo's rules are loaded as they are, but for the freshness SLO group's 1m evaluation
interval, cut to the test's 1s so that its recordings appear within seconds. Their `for:`
durations are minutes long, so a second copy of the alerts with `for: 2s` is loaded beside them
(without the recording rules, which the first copy records) to see alerts fire within the test;
the example
Alertmanager config keeps its routes and inhibit rules, with every receiver turned into a webhook
to this test and group_wait cut to a second.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers.programs import require_tool
from tests.integration.processes import Exporter, Simulator, wait_for
from tests.integration.stack import Alertmanager, Prometheus, WebhookReceiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tests" / "fixtures" / "scenarios" / "integration.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTMANAGER_EXAMPLE = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
JOB = "aloudata-can-exporter"
DATA_TIMEOUT = 90.0
# The lagging group's labels: its alerts go to the finance team and name the owner.
OWNER = 'Alice "Ledger" Wang <alice@example.com>'
DASHBOARD_URL = "https://grafana.example.com/d/fin?var-group=lagging&orgId=1"

EXPORTER_CONFIG = """
defaults:
  interval: 2s
  timeout: 1s
  # No critical by default; the dashboards draw it when set.
  thresholds: {{refreshes_without_new_data: {{critical: 10}}}}
targets:
  - name: sim
    url: {url}
    tenant_id: "10001"
    auth: {{type: APIKEY, value: integration-apikey-4f1d}}
    timezone: Asia/Shanghai
# Monday to Friday: the drill group's business lag and age fill the Group dashboard's row.
calendars:
  weekdays: {{}}
groups:
  # Hourly runs from :00 that end at :05, due at :15; today's data: on schedule, and inside
  # its SLO.
  - name: fresh
    target: sim
    plan_ids: [aaaa0000000000000000000000000001]
    schedule: {{refresh_cron: "0 * * * *", grace: 15m}}
    data_granularity: day
    slo: {{objective: 99.5%}}
  # The same schedule, stalled for four days: overdue, four days behind, burning its budget.
  - name: lagging
    target: sim
    plan_ids: [aaaa0000000000000000000000000002]
    labels: {{team: finance, owner: '{owner}', dashboard_url: '{dashboard_url}'}}
    schedule: {{refresh_cron: "0 * * * *", grace: 15m}}
    data_granularity: day
    # Its SLO fills the SLO dashboard: it is never fresh, so it burns its budget.
    slo: {{objective: 0.99}}
  # In a maintenance window around the test: the Group dashboard's maintenance row has data.
  - name: never
    target: sim
    plan_ids: [aaaa0000000000000000000000000003]
    maintenance: [{{start: '{window_start}', end: '{window_end}', reason: integration test}}]
  - {{name: notready, target: sim, plan_names: [not_ready_daily]}}
  - {{name: missing, target: sim, plan_ids: [ffff0000000000000000000000000000]}}
  - {{name: hanging, target: sim, plan_ids: [aaaa0000000000000000000000000005]}}
  - {{name: broken, target: sim, plan_ids: [aaaa0000000000000000000000000006]}}
  - name: drill
    target: sim
    plan_ids: [aaaa0000000000000000000000000001, aaaa0000000000000000000000000002]
    per_plan: true
    calendar: weekdays
  - name: drill_auto
    target: sim
    plan_ids: [aaaa0000000000000000000000000001, ffff0000000000000000000000000000]
    per_plan: auto
"""


SLO_GROUP = "aloudata-can-slo"


@dataclass
class Stack:
    exporter: Exporter
    prometheus: Prometheus
    alertmanager: Alertmanager
    webhook: WebhookReceiver
    # The repo's rules as Prometheus loads them (see _shipped_rules).
    rules: Path


def _shipped_rules(tmp: Path) -> Path:
    """The repo's rules, the SLO group evaluated every second (the test's interval) instead of
    every minute; nothing else changes."""
    document = yaml.safe_load(ALERTS.read_text())
    (slo,) = [group for group in document["groups"] if group["name"] == SLO_GROUP]
    assert slo["interval"] == "1m"
    slo["interval"] = "1s"
    path = tmp / "alerts.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _fast_rules(tmp: Path) -> Path:
    """The repo's alerts with every `for:` cut to 2s, in groups of their own; the recording
    rules stay in the shipped copy only (two groups recording one series would clash)."""
    document = yaml.safe_load(ALERTS.read_text())
    for group in document["groups"]:
        group["name"] += "-fast"
        group.pop("interval", None)
        group["rules"] = [rule for rule in group["rules"] if "alert" in rule]
        for rule in group["rules"]:
            rule["for"] = "2s"
    path = tmp / "alerts-fast.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _test_alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """The example config, its receivers turned into webhooks named by path, timing shortened."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": f"{webhook_url}/{r['name']}"}]}
        for r in config["receivers"]
    ]
    config.pop("templates", None)
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return config


def _prometheus_config(
    exporter: Exporter, alertmanager: Alertmanager, rules: Path, fast_rules: Path
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules), str(fast_rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
            }
        ],
    }


def _alertmanager_binary() -> str:
    # Debian calls it prometheus-alertmanager; upstream's tarball calls it alertmanager.
    return shutil.which("alertmanager") or require_tool("prometheus-alertmanager")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_binary = require_tool("prometheus")
    alertmanager_binary = _alertmanager_binary()
    tmp = tmp_path_factory.mktemp("stack")
    started: list[Any] = []
    try:
        webhook = WebhookReceiver()
        started.append(webhook)
        simulator = Simulator(SCENARIO, tmp)
        started.append(simulator)
        config = tmp / "exporter.yml"
        now = datetime.now(UTC)
        config.write_text(
            EXPORTER_CONFIG.format(
                url=simulator.url,
                owner=OWNER,
                dashboard_url=DASHBOARD_URL,
                window_start=(now - timedelta(hours=1)).isoformat(),
                window_end=(now + timedelta(hours=2)).isoformat(),
            )
        )
        exporter = Exporter(["--config.file", str(config)], tmp)
        started.append(exporter)
        alertmanager = Alertmanager(
            alertmanager_binary, _test_alertmanager_config(webhook.url), tmp
        )
        started.append(alertmanager)
        rules = _shipped_rules(tmp)
        prometheus = Prometheus(
            prometheus_binary,
            _prometheus_config(exporter, alertmanager, rules, _fast_rules(tmp)),
            tmp,
        )
        started.append(prometheus)
        yield Stack(exporter, prometheus, alertmanager, webhook, rules)
    finally:
        for part in reversed(started):
            part.stop()


# Dashboard queries -------------------------------------------------------------------------

# What Grafana would put in place of each variable: "All" for the label filters (the queries
# use =~), and the intervals Grafana computes for a 1s scrape.
SUBSTITUTIONS = {
    "job": JOB,
    "instance": ".*",
    "team": ".*",
    "target": ".*",
    "group": ".*",
    "plan": ".*",
    "__rate_interval": "30s",
    "__interval": "15s",
    "__range": "5m",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in SUBSTITUTIONS:
            raise AssertionError(f"unknown dashboard variable ${name} in {expr}")
        return SUBSTITUTIONS[name]

    return _VARIABLE.sub(replace, expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _panel_queries() -> list[tuple[str, str]]:
    """(where, expr) for every query of every panel of every dashboard."""
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    where = f"{dashboard['uid']} / {panel['title']} / {target.get('refId')}"
                    queries.append((where, target["expr"]))
    return queries


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)$")


def _variable_queries() -> list[tuple[str, str, str]]:
    """(where, label, series selector) for every label_values() variable of every dashboard."""
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            parsed = _LABEL_VALUES.match(text.strip())
            assert parsed, f"{dashboard['uid']} variable {variable['name']}: {text}"
            match = parsed["match"] or "{__name__=~'aloudata_can_.+'}"
            where = f"{dashboard['uid']} / ${variable['name']}"
            queries.append((where, parsed["label"], match))
    return queries


def test_substitute_fills_every_variable_form() -> None:
    expr = 'rate(x{job=~"$job", group=~"${group}", plan=~"${plan:regex}"}[$__rate_interval])'
    assert substitute(expr) == f'rate(x{{job=~"{JOB}", group=~".*", plan=~".*"}}[30s])'
    with pytest.raises(AssertionError, match="unknown dashboard variable"):
        substitute("x{a=~'$nope'}")


def test_dashboards_are_found() -> None:
    # Guards the tests below against passing on an empty glob.
    names = {path.stem for path in DASHBOARDS}
    assert names == {
        "aloudata-can-overview",
        "aloudata-can-group",
        "aloudata-can-exporter",
        "aloudata-can-slo",
    }
    assert len(_panel_queries()) >= 20


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = _panel_queries()
    empty: list[str] = []

    def all_return_data() -> bool:
        empty.clear()
        for where, expr in queries:
            if not stack.prometheus.query(substitute(expr)):
                empty.append(f"{where}: {expr}")
        return not empty

    deadline = time.monotonic() + DATA_TIMEOUT
    while not all_return_data() and time.monotonic() < deadline:
        time.sleep(1.0)
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_every_dashboard_variable_has_values(stack: Stack) -> None:
    for where, label, match in _variable_queries():
        selector = substitute(match)
        wait_for(
            lambda: bool(stack.prometheus.label_values(label, selector)),  # noqa: B023
            DATA_TIMEOUT,
            f"values of {where}",
        )


# Alert rules -------------------------------------------------------------------------------


def _rule_groups(stack: Stack) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = stack.prometheus.get("/api/v1/rules")["data"]["groups"]
    return groups


def test_every_repo_rule_loads_and_evaluates(stack: Stack) -> None:
    expected = yaml.safe_load(ALERTS.read_text())["groups"]

    def evaluated() -> bool:
        loaded = {g["name"]: g for g in _rule_groups(stack) if g["file"] == str(stack.rules)}
        return set(loaded) == {g["name"] for g in expected} and all(
            rule["health"] == "ok" for group in loaded.values() for rule in group["rules"]
        )

    wait_for(evaluated, DATA_TIMEOUT, "every rule of alerts.yml evaluated with health ok")
    loaded = {g["name"]: g for g in _rule_groups(stack) if g["file"] == str(stack.rules)}
    for group in expected:
        names = [rule["name"] for rule in loaded[group["name"]]["rules"]]
        assert names == [rule.get("alert") or rule["record"] for rule in group["rules"]]


def _recorded(stack: Stack, name: str, group: str) -> float | None:
    series = stack.prometheus.query(f'{name}{{job="{JOB}", group="{group}"}}')
    return float(series[0]["value"][1]) if series else None


def test_the_slo_rules_record_the_groups_with_an_slo(stack: Stack) -> None:
    names = ("aloudata_can:freshness_error_ratio:5m", "aloudata_can:freshness_budget_remaining:28d")

    def recorded() -> bool:
        return all(_recorded(stack, n, g) is not None for n in names for g in ("fresh", "lagging"))

    wait_for(recorded, DATA_TIMEOUT, "the SLO recordings of the fresh and the lagging group")
    # The fresh group was fresh all along: no errors, the whole budget left. The lagging group
    # (four days behind, over its critical threshold) was never fresh: its budget is spent.
    assert _recorded(stack, names[0], "fresh") == 0.0
    assert _recorded(stack, names[1], "fresh") == 1.0
    assert _recorded(stack, names[0], "lagging") == 1.0
    budget = _recorded(stack, names[1], "lagging")
    assert budget is not None
    assert budget < 0
    # Groups without an slo record nothing.
    assert not stack.prometheus.query('{__name__=~"aloudata_can:.+", group=~"never|notready"}')


def test_lagging_group_budget_burn_pages_its_team(stack: Stack) -> None:
    def paged() -> bool:
        return any(
            alert["labels"]["severity"] == "critical"
            for _, alert in _delivered(stack, "AloudataCanFreshnessBudgetBurn", "lagging")
        )

    wait_for(paged, DATA_TIMEOUT, "the lagging group's budget burn page")
    receiver, alert = next(
        (receiver, alert)
        for receiver, alert in _delivered(stack, "AloudataCanFreshnessBudgetBurn", "lagging")
        if alert["labels"]["severity"] == "critical"
    )
    assert receiver == "finance-pager"
    assert alert["labels"]["owner"] == OWNER
    # Never fresh: a burn rate of 1 / (1 - 0.99) = 100.
    assert re.fullmatch(
        r"Plan group lagging on CAN target sim burns its freshness error budget 100\.0 times as "
        r"fast as its objective of 99% fresh allows, .* Error budget left over 28 days: -?\d.*%\. "
        + re.escape(f"Owner: {OWNER}."),
        alert["annotations"]["description"],
    ), alert["annotations"]["description"]


def _delivered(stack: Stack, alertname: str, group: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (receiver, alert)
        for receiver, alert in stack.webhook.alerts()
        if alert["labels"].get("alertname") == alertname and alert["labels"].get("group") == group
    ]


def test_lagging_group_critical_lag_alert_reaches_the_pager(stack: Stack) -> None:
    def critical_delivered() -> bool:
        return any(
            alert["labels"]["severity"] == "critical"
            for _, alert in _delivered(stack, "AloudataCanDataLagHigh", "lagging")
        )

    wait_for(critical_delivered, DATA_TIMEOUT, "the lagging group's critical lag alert")
    receiver, alert = next(
        (receiver, alert)
        for receiver, alert in _delivered(stack, "AloudataCanDataLagHigh", "lagging")
        if alert["labels"]["severity"] == "critical"
    )
    # The group's config labels, joined by the rule, route it to the finance team.
    assert receiver == "finance-pager"
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "AloudataCanDataLagHigh",
        "severity": "critical",
        "job": JOB,
        "instance": f"127.0.0.1:{stack.exporter.port}",
        "target": "sim",
        "group": "lagging",
        "team": "finance",
        "owner": OWNER,
    }
    annotations = alert["annotations"]
    assert annotations["runbook_url"].endswith("docs/runbook.md#aloudatacandatalaghigh")
    assert re.fullmatch(
        r"The data of plan group lagging on CAN target sim is \dd .* behind, "
        r"over its critical threshold of 2d 2h 0m 0s\. " + re.escape(f"Owner: {OWNER}."),
        annotations["description"],
    ), annotations["description"]
    # The warning for the same group is inhibited by the critical one.
    time.sleep(2.0)
    severities = {
        a["labels"]["severity"] for _, a in _delivered(stack, "AloudataCanDataLagHigh", "lagging")
    }
    assert severities == {"critical"}


def test_missing_plan_group_poll_failing_alert_names_the_reason(stack: Stack) -> None:
    wait_for(
        lambda: bool(_delivered(stack, "AloudataCanPollFailing", "missing")),
        DATA_TIMEOUT,
        "the missing group's poll failing alert",
    )
    receiver, alert = _delivered(stack, "AloudataCanPollFailing", "missing")[0]
    # No labels in the config: no team, so the data platform team gets it.
    assert receiver == "data-platform-chat"
    assert alert["labels"]["severity"] == "warning"
    assert "team" not in alert["labels"]
    assert "owner" not in alert["labels"]
    assert alert["annotations"]["description"].endswith("Most frequent reason: plan_not_found.")


def test_late_group_schedule_alerts_reach_its_team(stack: Stack) -> None:
    for alertname in ("AloudataCanRefreshOverdue", "AloudataCanDataPeriodsBehind"):
        wait_for(
            lambda: bool(_delivered(stack, alertname, "lagging")),  # noqa: B023
            DATA_TIMEOUT,
            f"the lagging group's {alertname}",
        )
        receiver, alert = _delivered(stack, alertname, "lagging")[0]
        assert receiver == "finance-chat"
        assert alert["labels"]["owner"] == OWNER
        assert alert["annotations"]["description"].endswith(f"Owner: {OWNER}.")
    (_, behind) = _delivered(stack, "AloudataCanDataPeriodsBehind", "lagging")[0]
    assert " is 4 period(s) " in behind["annotations"]["description"]


def test_a_missing_plan_of_an_auto_group_is_named_in_its_alert(stack: Stack) -> None:
    wait_for(
        lambda: bool(_delivered(stack, "AloudataCanPlanMissing", "drill_auto")),
        DATA_TIMEOUT,
        "the auto group's plan missing alert",
    )
    alerts = _delivered(stack, "AloudataCanPlanMissing", "drill_auto")
    # One alert, for the missing plan only: the fresh plan of the group has no series.
    assert {alert["labels"]["plan"] for _, alert in alerts} == {"ffff0000000000000000000000000000"}
    receiver, alert = alerts[0]
    assert receiver == "data-platform-chat"
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["description"].startswith(
        "CAN says plan ffff0000000000000000000000000000 of plan group drill_auto on target sim "
        "does not exist"
    )


def test_fresh_group_raises_nothing(stack: Stack) -> None:
    # By the time the lagging group's alert has come through, a fresh group's would have too.
    wait_for(
        lambda: bool(_delivered(stack, "AloudataCanDataLagHigh", "lagging")),
        DATA_TIMEOUT,
        "the lagging group's lag alert, as a reference point",
    )
    time.sleep(3.0)
    alerts = stack.prometheus.get("/api/v1/alerts")["data"]["alerts"]
    assert [a for a in alerts if a["labels"].get("group") == "fresh"] == []
    assert [a for _, a in stack.webhook.alerts() if a["labels"].get("group") == "fresh"] == []
    # The check can fail: other groups do have alerts in the same Prometheus.
    assert any(a["labels"].get("group") == "lagging" for a in alerts)


def test_group_labels_reach_prometheus_unchanged(stack: Stack) -> None:
    # Quotes, angle brackets and a query string survive the exposition and Prometheus' parser.
    selector = f'aloudata_can_group_info{{job="{JOB}", group="lagging"}}'
    wait_for(lambda: bool(stack.prometheus.query(selector)), DATA_TIMEOUT, selector)
    (series,) = stack.prometheus.query(selector)
    assert series["metric"]["owner"] == OWNER
    assert series["metric"]["dashboard_url"] == DASHBOARD_URL
    assert series["metric"]["team"] == "finance"
    plain = stack.prometheus.query(f'aloudata_can_group_info{{job="{JOB}", group="fresh"}}')
    assert {label for series in plain for label in series["metric"]} == {
        "__name__",
        "job",
        "instance",
        "target",
        "group",
    }


def _alert_state(stack: Stack, **labels: str) -> str | None:
    filters = [f'{name}="{value}"' for name, value in labels.items()]
    response = httpx.get(
        f"{stack.alertmanager.url}/api/v2/alerts", params={"filter": filters}, timeout=5.0
    )
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return str(alerts[0]["status"]["state"]) if alerts else None


def test_failing_polls_mute_only_that_groups_freshness_alerts_on_that_exporter(
    stack: Stack,
) -> None:
    # Alerts posted straight to Alertmanager: the example's inhibit rule decides, as it would
    # for the rules' alerts. Synthetic target and group names keep them apart from the rest.
    def alert(alertname: str, instance: str, group: str) -> dict[str, Any]:
        labels = {"alertname": alertname, "severity": "warning", "job": JOB}
        return {"labels": {**labels, "instance": instance, "target": "inhibit", "group": group}}

    posted = [
        alert("AloudataCanPollFailing", "exp-a:9873", "polling"),
        alert("AloudataCanDataLagHigh", "exp-a:9873", "polling"),
        alert("AloudataCanDataLagHigh", "exp-a:9873", "polled_fine"),
        alert("AloudataCanDataLagHigh", "exp-b:9873", "polling"),
    ]
    response = httpx.post(f"{stack.alertmanager.url}/api/v2/alerts", json=posted, timeout=5.0)
    response.raise_for_status()
    lag = "AloudataCanDataLagHigh"
    # The lag alert of the group whose polls fail is muted; the same group on another
    # exporter, and another group on the same exporter, still alert.
    expected = {
        ("AloudataCanPollFailing", "exp-a:9873", "polling"): "active",
        (lag, "exp-a:9873", "polling"): "suppressed",
        (lag, "exp-a:9873", "polled_fine"): "active",
        (lag, "exp-b:9873", "polling"): "active",
    }
    states: dict[tuple[str, str, str], str | None] = {}

    def settled() -> bool:
        for key in expected:
            name, instance, group = key
            states[key] = _alert_state(
                stack, alertname=name, instance=instance, target="inhibit", group=group
            )
        return states == expected

    wait_for(settled, DATA_TIMEOUT, "the example's inhibit rule to settle")
