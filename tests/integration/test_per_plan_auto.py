"""per_plan: auto against the real simulator: a 20-plan group with one plan CAN does not know."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Exporter, Simulator, wait_for

pytestmark = pytest.mark.integration

SECRET = "drilldown-apikey-93c1"
KNOWN = [f"bbbb{index:028x}" for index in range(1, 20)]
GONE = "ffff" + "0" * 27 + "d"
PLANS = [*KNOWN[:12], GONE, *KNOWN[12:]]


def _scenario() -> str:
    plans = "\n".join(
        f"  - {{id: {plan}, name: plan_{index}, data_delay: 0s, refresh_every: 1h}}"
        for index, plan in enumerate(KNOWN, start=1)
    )
    return f"""
tenant_id: "10001"
auth: {{type: APIKEY, value: {SECRET}}}
timezone: Asia/Shanghai
plans:
{plans}
"""


def _config(url: str) -> str:
    return f"""
targets:
  - name: sim
    url: {url}
    tenant_id: "10001"
    auth: {{type: APIKEY, value: {SECRET}}}
    timezone: Asia/Shanghai
    max_concurrency: 4
groups:
  - name: wide
    target: sim
    plan_ids: {json.dumps(PLANS)}
    per_plan: auto
    interval: 1s
    timeout: 1s
"""


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    tmp: Path = tmp_path_factory.mktemp("drilldown")
    (tmp / "scenario.yml").write_text(_scenario())
    simulator = Simulator(tmp / "scenario.yml", tmp)
    (tmp / "exporter.yml").write_text(_config(simulator.url))
    process = Exporter(["--config.file", str(tmp / "exporter.yml")], tmp)
    yield process
    process.stop()
    simulator.stop()


def test_metrics_name_exactly_the_missing_plan(exporter: Exporter) -> None:
    group = {"target": "sim", "group": "wide"}

    def polls() -> float:
        return (
            exporter.value("aloudata_can_poll_errors_total", **group, reason="plan_not_found") or 0
        )

    wait_for(lambda: polls() >= 3, 15, "three polls of the group")
    samples = exporter.scrape()
    missing = {
        dict(labels)["plan"]: value
        for (name, labels), value in samples.items()
        if name == "aloudata_can_plan_missing"
    }
    assert missing == {GONE: 1.0}
    # The 19 known plans are fresh: only the missing one has plan-level series.
    plans = {dict(labels)["plan"] for (_, labels) in samples if "plan" in dict(labels)}
    assert plans == {GONE}
    assert samples[("aloudata_can_poll_success", frozenset(group.items()))] == 0
    # The group and each of its 20 plans, on every poll while it is unhealthy.
    requests = samples[("aloudata_can_target_requests_total", frozenset({("target", "sim")}))]
    assert requests >= 3 * 21

    exporter.stop()
    warnings = [line for line in exporter.log().splitlines() if "plan poll failed" in line]
    assert len(warnings) == 1, warnings
    assert f"plan={GONE}" in warnings[0]
    assert "reason=plan_not_found" in warnings[0]
    assert "Acceleration plan does not exist" in warnings[0]
    assert "trace_id=" in warnings[0]
