"""`--check-config --live`: the real CLI process against the real simulator, on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.simulator import DEMO_SCENARIO_PATH, load_scenario
from tests.integration.processes import Process, Simulator, run_exporter, wait_for

pytestmark = pytest.mark.integration

APIKEY = load_scenario(DEMO_SCENARIO_PATH).auth.value.get_secret_value()
SALES = "6665de58846daee543d5db415375d936"
CUSTOMERS = "3f1c9a7be2d84c0f9a5e6b1d7c2e4a80"
NEVER_REFRESHED = "0a4f6c2d8e1b3957a6c0d2e4f8b1a3c5"
DELETED = "deadbeefdeadbeefdeadbeefdeadbeef"
TYPO = SALES[:-1]  # one character short, as a copy and paste can leave it


@pytest.fixture(scope="module")
def demo_can(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    process = Simulator(DEMO_SCENARIO_PATH, tmp_path_factory.mktemp("demo-can"))
    yield process
    process.stop()


def _config(tmp_path: Path, url: str, groups: str, defaults: str = "{timeout: 2s}") -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(
        f"""
defaults: {defaults}
targets:
  - name: demo
    url: {url}
    tenant_id: "10001"
    auth: {{type: APIKEY, value_file: apikey}}
    timezone: Asia/Shanghai
groups:
{groups}
"""
    )
    (tmp_path / "apikey").write_text(APIKEY + "\n")
    return path


FRESH_AND_NOT_READY = f"""
  - {{name: sales_dashboard, target: demo, plan_ids: [{SALES}, {CUSTOMERS}]}}
  - {{name: orders_realtime, target: demo, plan_names: [orders_hourly]}}
  - {{name: inventory_new, target: demo, plan_ids: [{NEVER_REFRESHED}]}}
  - {{name: marketing_campaigns, target: demo, plan_names: [marketing_not_ready]}}
"""
WITH_MISSING = f"""{FRESH_AND_NOT_READY}
  - {{name: retired_dashboard, target: demo, plan_ids: [{DELETED}]}}
  - {{name: sales_mobile, target: demo, plan_ids: [{SALES}, {TYPO}]}}
"""


def _rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by plan, each split on whitespace."""
    return {row.split()[1]: row.split() for row in stdout.splitlines()[2:-1]}


def test_missing_plans_are_listed_and_exit_1(demo_can: Simulator, tmp_path: Path) -> None:
    path = _config(tmp_path, demo_can.url, WITH_MISSING)
    started = time.monotonic()
    result = run_exporter("--check-config", "--live", "--config.file", str(path), timeout=20)
    assert time.monotonic() - started < 10
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "config ok: 1 targets, 6 groups"
    assert lines[1].split() == ["TARGET", "PLAN", "BY", "STATUS", "GROUPS", "DETAIL"]
    assert lines[-1] == "live check: 7 plans, 3 ok, 2 missing, 2 not ready"
    rows = _rows(result.stdout)
    assert list(rows) == [DELETED, TYPO, NEVER_REFRESHED, "marketing_not_ready"]
    assert rows[DELETED][:5] == ["demo", DELETED, "id", "missing", "retired_dashboard"]
    assert rows[DELETED][5] == "errorMsg='Acceleration"
    assert rows[DELETED][-1].startswith("traceId=")
    assert rows[TYPO][:5] == ["demo", TYPO, "id", "missing", "sales_mobile"]
    assert rows[NEVER_REFRESHED][2:8] == [
        "id",
        "not",
        "ready",
        "inventory_new",
        "never",
        "refreshed;",
    ]
    assert rows["marketing_not_ready"][2:6] == ["name", "not", "ready", "marketing_campaigns"]
    # The sales plan is in two groups, both fine: asked once, not listed.
    assert SALES not in result.stdout
    assert APIKEY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_not_ready_alone_exits_0(demo_can: Simulator, tmp_path: Path) -> None:
    path = _config(tmp_path, demo_can.url, FRESH_AND_NOT_READY)
    result = run_exporter("--check-config", "--live", "--config.file", str(path), timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(_rows(result.stdout)) == [NEVER_REFRESHED, "marketing_not_ready"]
    assert result.stdout.splitlines()[-1] == "live check: 5 plans, 3 ok, 2 not ready"


def test_a_wrong_port_is_a_failed_check(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    path = _config(tmp_path, url, FRESH_AND_NOT_READY)
    result = run_exporter("--check-config", "--live", "--config.file", str(path), timeout=20)
    assert result.returncode == 1
    statuses = [row[3:5] for row in _rows(result.stdout).values()]
    assert statuses == [["failed:", "connection"]] * 3 + [["not", "checked"]] * 2
    assert result.stdout.splitlines()[-1] == "live check: 5 plans, 0 ok, 3 failed, 2 not checked"


def test_ctrl_c_stops_a_hanging_check_with_130(tmp_path: Path) -> None:
    # A listener that never accepts: connections open, and no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        groups = f"  - {{name: slow, target: demo, plan_ids: [{SALES}]}}"
        path = _config(tmp_path, url, groups, defaults="{timeout: 60s, interval: 5m}")
        argv = ["--config.file", str(path), "--check-config", "--live"]
        check = Process([sys.executable, "-m", "exporter", *argv], tmp_path / "live.log")
        try:
            wait_for(lambda: "live check: asking CAN" in check.log(), 15, "the live check")
            check.signal(signal.SIGINT)
            returncode = check.popen.wait(5)
        except (AssertionError, subprocess.TimeoutExpired):
            check.stop()
            raise
        check.stop()
    assert returncode == 130
    assert "Traceback" not in check.log()
