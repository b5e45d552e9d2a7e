"""Change detection end to end: a real simulator whose plans' data times freeze and roll back
mid-run, polled every second by a real exporter, on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Exporter, Simulator, wait_for

pytestmark = pytest.mark.integration

SECRET = "change-detection-apikey"
# The rollback comes late enough for the exporter to have read the data time before it.
ROLLBACK_AFTER_SECONDS = 8
SCENARIO = f"""
tenant_id: "10001"
auth: {{type: APIKEY, value: {SECRET}}}
timezone: UTC
plans:
  - id: frozen
    name: frozen
    data_delay: 0s
    data_granularity: second
    refresh_every: 1s
    data_frozen_after: 1s
  - id: rolled
    name: rolled
    data_delay: 0s
    data_granularity: second
    refresh_every: 1s
    data_rollback: {{after: {ROLLBACK_AFTER_SECONDS}s, by: 1h}}
"""


def _config(url: str) -> str:
    return f"""
defaults:
  interval: 1s
  timeout: 900ms
targets:
  - name: sim
    url: {url}
    tenant_id: "10001"
    auth: {{type: APIKEY, value: {SECRET}}}
    timezone: UTC
groups:
  - {{name: frozen, target: sim, plan_ids: [frozen]}}
  - {{name: rolled, target: sim, plan_ids: [rolled]}}
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Simulator, Exporter]]:
    scenario = tmp_path / "scenario.yml"
    scenario.write_text(SCENARIO)
    started = time.monotonic()
    simulator = Simulator(scenario, tmp_path)
    try:
        config = tmp_path / "exporter.yml"
        config.write_text(_config(simulator.url))
        exporter = Exporter(["--config.file", str(config)], tmp_path)
        try:
            if time.monotonic() - started > ROLLBACK_AFTER_SECONDS - 2:
                pytest.fail("the processes took too long to start to see the data before rollback")
            yield simulator, exporter
        finally:
            exporter.stop()
    finally:
        simulator.stop()


def test_a_rollback_counts_one_regression(stack: tuple[Simulator, Exporter]) -> None:
    _, exporter = stack
    rolled = {"target": "sim", "group": "rolled"}
    regressions = "aloudata_can_data_time_regressions_total"
    before = exporter.value("aloudata_can_latest_data_timestamp_seconds", **rolled)
    assert before is not None
    assert exporter.value(regressions, **rolled) == 0

    wait_for(
        lambda: exporter.value(regressions, **rolled) == 1,
        ROLLBACK_AFTER_SECONDS + 10,
        "the rollback to be counted",
    )
    after = exporter.value("aloudata_can_latest_data_timestamp_seconds", **rolled)
    assert after is not None
    assert after < before
    last_change = exporter.value("aloudata_can_data_time_last_change_timestamp_seconds", **rolled)
    assert last_change is not None
    assert abs(last_change - time.time()) < 5

    # The data time advances again from the rolled-back time: no further regressions, and it
    # moves together with the refresh time, so never a refresh without new data.
    time.sleep(2.5)
    assert exporter.value(regressions, **rolled) == 1
    assert exporter.value("aloudata_can_refreshes_without_new_data", **rolled) == 0


def test_frozen_data_counts_refreshes_without_new_data(stack: tuple[Simulator, Exporter]) -> None:
    _, exporter = stack
    frozen = {"target": "sim", "group": "frozen"}
    streak = "aloudata_can_refreshes_without_new_data"
    assert (
        exporter.value(
            "aloudata_can_refreshes_without_new_data_threshold", **frozen, severity="warning"
        )
        == 3
    )

    wait_for(lambda: (exporter.value(streak, **frozen) or 0) >= 3, 15, "three refreshes")
    data_time = exporter.value("aloudata_can_latest_data_timestamp_seconds", **frozen)
    last_change = exporter.value("aloudata_can_data_time_last_change_timestamp_seconds", **frozen)
    count = exporter.value(streak, **frozen)
    assert count is not None

    wait_for(lambda: (exporter.value(streak, **frozen) or 0) >= count + 2, 10, "more refreshes")
    assert exporter.value("aloudata_can_latest_data_timestamp_seconds", **frozen) == data_time
    assert (
        exporter.value("aloudata_can_data_time_last_change_timestamp_seconds", **frozen)
        == last_change
    )
    assert exporter.value("aloudata_can_data_time_regressions_total", **frozen) == 0
