"""The real daemon process against the real simulator process, on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import Exporter, Simulator, run_exporter, wait_for

pytestmark = pytest.mark.integration

SECRET = "integration-apikey-4f1d"
DAY = 86400.0


def _config(url: str, groups: str) -> str:
    return f"""
defaults:
  interval: 30s
  timeout: 2s
targets:
  - name: sim
    url: {url}
    tenant_id: "10001"
    auth: {{type: APIKEY, value_file: apikey}}
    timezone: Asia/Shanghai
groups:
{groups}
"""


GROUPS = """
  - {name: fresh, target: sim, plan_ids: [aaaa0000000000000000000000000001]}
  - {name: lagging, target: sim, plan_ids: [aaaa0000000000000000000000000002]}
  - {name: never, target: sim, plan_ids: [aaaa0000000000000000000000000003]}
  - {name: notready, target: sim, plan_names: [not_ready_daily]}
  - {name: missing, target: sim, plan_ids: [ffff0000000000000000000000000000]}
  - {name: hanging, target: sim, plan_ids: [aaaa0000000000000000000000000005], timeout: 1s}
  - {name: broken, target: sim, plan_ids: [aaaa0000000000000000000000000006]}
  - name: drill
    target: sim
    plan_ids: [aaaa0000000000000000000000000001, aaaa0000000000000000000000000002]
    per_plan: true
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "apikey").write_text(SECRET + "\n")
    return tmp_path


@pytest.fixture
def exporter(simulator: Simulator, config_dir: Path) -> Iterator[Exporter]:
    config = config_dir / "exporter.yml"
    config.write_text(_config(simulator.url, GROUPS))
    process = Exporter(
        ["--config.file", str(config), "--web.enable-lifecycle", "--log.format", "json"],
        config_dir,
    )
    yield process
    process.stop()


def test_metrics_tell_each_state_apart(exporter: Exporter) -> None:
    samples = exporter.scrape()

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset({"target": "sim", **labels}.items())))

    assert value("aloudata_can_poll_success", group="fresh") == 1
    fresh_lag = value("aloudata_can_data_lag_seconds", group="fresh")
    assert fresh_lag is not None
    assert 0 <= fresh_lag < DAY
    lagging_lag = value("aloudata_can_data_lag_seconds", group="lagging")
    assert lagging_lag is not None
    assert lagging_lag > 4 * DAY
    critical = value(
        "aloudata_can_data_lag_threshold_seconds", group="lagging", severity="critical"
    )
    assert critical == 50 * 3600
    refresh_age = value("aloudata_can_refresh_age_seconds", group="lagging")
    assert refresh_age is not None
    assert refresh_age > 4 * DAY

    assert value("aloudata_can_not_ready", group="never") == 1
    assert value("aloudata_can_data_lag_seconds", group="never") is None
    assert value("aloudata_can_not_ready", group="notready") == 1
    assert value("aloudata_can_not_ready", group="fresh") == 0

    assert value("aloudata_can_poll_success", group="missing") == 0
    assert value("aloudata_can_poll_errors_total", group="missing", reason="plan_not_found") == 1
    assert value("aloudata_can_poll_errors_total", group="broken", reason="http_status") == 1

    assert (
        value(
            "aloudata_can_plan_poll_success", group="drill", plan="aaaa0000000000000000000000000002"
        )
        == 1
    )
    plan_lag = value(
        "aloudata_can_plan_data_lag_seconds", group="drill", plan="aaaa0000000000000000000000000002"
    )
    assert plan_lag is not None
    assert plan_lag > 4 * DAY
    assert samples[("aloudata_can_exporter_config_last_reload_successful", frozenset())] == 1


def test_a_hanging_can_times_out_while_metrics_still_answer(exporter: Exporter) -> None:
    # /readyz waited for every first poll, so the 1 s timeout of "hanging" has fired.
    started = time.monotonic()
    value = exporter.value(
        "aloudata_can_poll_errors_total", target="sim", group="hanging", reason="timeout"
    )
    assert value == 1
    assert time.monotonic() - started < 5


def test_secrets_never_leak(exporter: Exporter) -> None:
    for path in ("/metrics", "/", "/readyz", "/healthz"):
        assert SECRET not in httpx.get(exporter.url + path, timeout=5).text, path
    exporter.stop()
    assert SECRET not in exporter.log()
    assert '"msg": "poll failed"' in exporter.log()


def test_failed_poll_logs_reason_error_msg_and_trace_id(exporter: Exporter) -> None:
    line = next(line for line in exporter.log().splitlines() if '"group": "missing"' in line)
    assert '"reason": "plan_not_found"' in line
    assert "Acceleration plan does not exist" in line
    assert '"trace_id": "' in line


def test_sighup_reload_adds_and_removes_groups(
    exporter: Exporter, simulator: Simulator, config_dir: Path
) -> None:
    new_groups = """
  - {name: fresh, target: sim, plan_ids: [aaaa0000000000000000000000000001]}
  - {name: added, target: sim, plan_names: [fresh_daily]}
"""
    (config_dir / "exporter.yml").write_text(_config(simulator.url, new_groups))
    exporter.signal(signal.SIGHUP)

    def reloaded() -> bool:
        samples = exporter.scrape()
        groups = {dict(labels).get("group") for (name, labels) in samples}
        return "added" in groups and "lagging" not in groups

    wait_for(reloaded, 10, "the reload to add 'added' and drop 'lagging'")
    wait_for(
        lambda: exporter.value("aloudata_can_poll_success", target="sim", group="added") == 1,
        10,
        "the added group's first poll",
    )


def test_invalid_reload_keeps_the_running_config(exporter: Exporter, config_dir: Path) -> None:
    (config_dir / "exporter.yml").write_text("targets: [{name: sim}]\n")
    exporter.signal(signal.SIGHUP)
    wait_for(
        lambda: exporter.value("aloudata_can_exporter_config_last_reload_successful") == 0,
        10,
        "the failed reload",
    )
    assert exporter.value("aloudata_can_poll_success", target="sim", group="fresh") == 1
    assert "config reload failed" in exporter.log()


def test_http_reload(exporter: Exporter, config_dir: Path, simulator: Simulator) -> None:
    (config_dir / "exporter.yml").write_text(
        _config(
            simulator.url,
            "  - {name: only, target: sim, plan_ids: [aaaa0000000000000000000000000001]}\n",
        )
    )
    response = httpx.post(exporter.url + "/-/reload", timeout=10)
    assert response.status_code == 200
    assert (
        exporter.value(
            "aloudata_can_data_lag_threshold_seconds",
            target="sim",
            group="fresh",
            severity="warning",
        )
        is None
    )

    (config_dir / "exporter.yml").write_text("targets: []\ngroups: [{}]\n")
    response = httpx.post(exporter.url + "/-/reload", timeout=10)
    assert response.status_code == 500
    assert "config error: groups[0].name: required key is missing" in response.text


def test_reload_endpoint_is_off_without_the_lifecycle_flag(
    simulator: Simulator, config_dir: Path
) -> None:
    config = config_dir / "exporter.yml"
    config.write_text(_config(simulator.url, GROUPS))
    process = Exporter(["--config.file", str(config)], config_dir)
    try:
        assert httpx.post(process.url + "/-/reload", timeout=5).status_code == 403
    finally:
        process.stop()


def test_sigterm_stops_cleanly(exporter: Exporter) -> None:
    started = time.monotonic()
    assert exporter.stop() == 0
    assert time.monotonic() - started < 8
    assert '"msg": "stopped"' in exporter.log()


def test_check_config(simulator: Simulator, config_dir: Path) -> None:
    good = config_dir / "exporter.yml"
    good.write_text(_config(simulator.url, GROUPS))
    result = run_exporter("--check-config", "--config.file", str(good))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "config ok: 1 targets, 8 groups\n"

    bad = config_dir / "bad.yml"
    bad.write_text(
        _config(
            simulator.url,
            "  - {name: a, target: sim, plan_ids: []}\n"
            "  - {name: b, target: nope, plan_ids: [x]}\n",
        )
    )
    result = run_exporter("--check-config", "--config.file", str(bad))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"config error: groups[0].plan_ids: must not be empty (file={bad})",
        f"config error: groups[1].target: unknown target 'nope' (file={bad})",
    ]
    assert "Traceback" not in result.stderr


def test_flag_misuse_exits_2() -> None:
    assert run_exporter("--no-such-flag").returncode == 2
    assert run_exporter("--web.listen-address", "nonsense").returncode == 2
    assert run_exporter("--log.level", "verbose").returncode == 2


def test_bad_environment_setting_exits_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "ALOUDATA_CAN_EXPORTER_LOG_LEVEL": "verbose"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("settings error: ALOUDATA_CAN_EXPORTER_LOG_LEVEL: ")


def test_once_prints_a_table_and_fails_when_a_group_fails(
    simulator: Simulator, config_dir: Path
) -> None:
    config = config_dir / "exporter.yml"
    config.write_text(_config(simulator.url, GROUPS))
    result = run_exporter("--once", "--config.file", str(config))
    assert result.returncode == 1
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["TARGET", "GROUP", "STATUS"]
    statuses = {row.split()[1]: row.split()[2] for row in rows if row.startswith("sim ")}
    assert statuses["fresh"] == "ok"
    assert statuses["missing"] == "failed:"
    assert "sim/missing: CAN says a plan does not exist" in result.stdout

    only_fresh = "  - {name: fresh, target: sim, plan_ids: [aaaa0000000000000000000000000001]}\n"
    config.write_text(_config(simulator.url, only_fresh))
    result = run_exporter("--once", "--config.file", str(config))
    assert result.returncode == 0, result.stdout


def test_version_from_the_console_script() -> None:
    script = Path(sys.executable).parent / "aloudata-can-exporter"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("aloudata-can-exporter, version ")


def test_port_in_use_is_a_clear_startup_error(simulator: Simulator, config_dir: Path) -> None:
    config = config_dir / "exporter.yml"
    config.write_text(_config(simulator.url, GROUPS))
    port = simulator.port  # already taken by the simulator
    result = run_exporter("--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"startup error: cannot listen on 127.0.0.1:{port}"
    )


def test_a_rotated_value_file_is_used_without_a_restart(
    simulator: Simulator, tmp_path: Path
) -> None:
    # Start with a credential CAN rejects, then rotate the file in place, as kubelet does.
    apikey = tmp_path / "apikey"
    apikey.write_text("expired-apikey-0000\n")
    config = tmp_path / "exporter.yml"
    groups = "  - {name: fresh, target: sim, plan_ids: [aaaa0000000000000000000000000001]}\n"
    config.write_text(
        _config(simulator.url, groups).replace("interval: 30s", "interval: 2s\n  max_backoff: 4s")
    )
    process = Exporter(["--config.file", str(config), "--log.format", "json"], tmp_path)
    try:
        auth = {"target": "sim", "group": "fresh", "reason": "auth"}
        assert (process.value("aloudata_can_poll_errors_total", **auth) or 0) >= 1
        assert process.value("aloudata_can_poll_success", target="sim", group="fresh") == 0
        apikey.write_text(SECRET + "\n")
        wait_for(
            lambda: process.value("aloudata_can_poll_success", target="sim", group="fresh") == 1,
            20.0,
            "the rotated credential to be used",
        )
    finally:
        process.stop()
    log = process.log()
    assert "secret file changed; reloading" in log
    assert SECRET not in log
    assert "expired-apikey-0000" not in log
