"""Signals during start-up and reloads under way, on the real process.

A config of BIG_GROUPS groups takes the exporter a second or more to load: long enough to send
signals while it loads, and to scrape while a reload loads it again. Sharded 1 in SHARDS, the
exporter polls only a handful of them.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import STARTUP_TIMEOUT, Exporter, Simulator, http_ok, wait_for

pytestmark = pytest.mark.integration

BIG_GROUPS = 20_000
SHARDS = 1000
SIGNAL_EVERY = 0.05  # seconds between SIGHUPs of a burst
STARTED = '"msg": "exporter started"'
RELOADED = '"msg": "config reloaded"'


def _write_big_config(path: Path, url: str) -> None:
    (path.parent / "apikey").write_text("integration-apikey-4f1d\n")
    lines = [
        "defaults: {interval: 1h, timeout: 2s}",
        "targets:",
        f"  - {{name: sim, url: '{url}', tenant_id: '10001', timezone: Asia/Shanghai,",
        "      auth: {type: APIKEY, value_file: apikey}}",
        "groups:",
    ]
    lines += [
        f"  - {{name: g{n:05d}, target: sim, plan_ids: [aaaa0000000000000000000000000001]}}"
        for n in range(BIG_GROUPS)
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def big_config(simulator: Simulator, tmp_path: Path) -> Path:
    path = tmp_path / "exporter.yml"
    _write_big_config(path, simulator.url)
    return path


def _start(config: Path, tmp_path: Path, *flags: str, wait_ready: bool) -> Exporter:
    args = ["--config.file", str(config), "--log.format", "json"]
    shard = ["--shard.total", str(SHARDS), "--shard.index", "0"]
    return Exporter([*args, *shard, *flags], tmp_path, wait_ready=wait_ready)


@pytest.fixture
def starting(big_config: Path, tmp_path: Path) -> Iterator[Exporter]:
    """The exporter just spawned, still loading its config."""
    process = _start(big_config, tmp_path, wait_ready=False)
    yield process
    process.stop()


def _caught(pid: int) -> set[signal.Signals]:
    """The signals the process has a handler for (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16
    )
    return {signum for signum in signal.Signals if mask >> (signum - 1) & 1}


def _wait_for_handlers_before_start(process: Exporter) -> None:
    """Until the exporter catches SIGHUP and SIGTERM; it must not have started by then."""
    wanted = {signal.SIGHUP, signal.SIGTERM}

    def caught() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"exporter exited early:\n{process.log()}")
        return wanted <= _caught(process.popen.pid)

    wait_for(caught, STARTUP_TIMEOUT, "the exporter's signal handlers")
    assert STARTED not in process.log(), "the handlers came only once the exporter had started"


def test_sighups_during_start_up_are_one_reload_once_started(starting: Exporter) -> None:
    _wait_for_handlers_before_start(starting)
    sent = 0
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not http_ok(f"{starting.url}/readyz"):
        assert starting.popen.poll() is None, f"a SIGHUP ended the exporter:\n{starting.log()}"
        assert time.monotonic() < deadline, "the exporter never became ready"
        starting.signal(signal.SIGHUP)
        sent += 1
        time.sleep(SIGNAL_EVERY)
    wait_for(lambda: RELOADED in starting.log(), 30, "the reload once started")
    assert starting.stop() == 0

    log = starting.log()
    assert sent > 1
    during = log.index('"msg": "SIGHUP during start-up; reloading once started"')
    assert during < log.index(STARTED) < log.index(RELOADED)
    assert '"trigger": "SIGHUP"' in log
    assert "Traceback" not in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_during_start_up_stops_cleanly(
    starting: Exporter, signum: signal.Signals
) -> None:
    _wait_for_handlers_before_start(starting)
    starting.signal(signum)
    assert starting.popen.wait(10) == 0
    log = starting.log()
    assert f'"msg": "stopped during start-up", "signal": "{signum.name}"' in log
    assert STARTED not in log
    assert "Traceback" not in log


def test_metrics_and_healthz_answer_while_a_reload_loads(big_config: Path, tmp_path: Path) -> None:
    process = _start(big_config, tmp_path, "--web.enable-lifecycle", wait_ready=True)
    try:
        with ThreadPoolExecutor(1) as pool:
            reloading = pool.submit(httpx.post, f"{process.url}/-/reload", timeout=60)
            wait_for(
                lambda: '"msg": "reloading config"' in process.log(), 10, "the reload to start"
            )
            metrics = httpx.get(f"{process.url}/metrics", timeout=5)
            healthz = httpx.get(f"{process.url}/healthz", timeout=5)
            # Both answered while the reload was still loading the file.
            assert not reloading.done()
            assert RELOADED not in process.log()
            assert metrics.status_code == 200
            assert "aloudata_can_exporter_config_last_reload_successful 1.0" in metrics.text
            assert healthz.status_code == 200
            assert reloading.result().status_code == 200
        assert RELOADED in process.log()
    finally:
        assert process.stop() == 0
