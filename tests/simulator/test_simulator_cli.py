"""The `aloudata-can-simulator` command line."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exporter.simulator import HEALTH_PATH, LATEST_TIME_PATH
from exporter.simulator.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "simulator exited before becoming healthy"
        try:
            if httpx.get(base_url + HEALTH_PATH, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"simulator not healthy within {STARTUP_TIMEOUT_SECONDS}s")


@pytest.mark.integration
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serves_the_demo_scenario_and_exits_0_on_signal(
    stop_signal: signal.Signals, auth_headers: dict[str, str]
) -> None:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", f"--web.listen-address=127.0.0.1:{port}"],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_healthy(base_url, process)
        response = httpx.post(
            base_url + LATEST_TIME_PATH,
            json={"planNameList": ["sales_daily", "inventory_new_never_refreshed"]},
            headers=auth_headers,
            timeout=5.0,
        )
        process.send_signal(stop_signal)
        _, stderr = process.communicate(timeout=STARTUP_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["hasNotReady"] is True
    assert data["latestDateTime"] is not None
    assert process.returncode == 0
    assert f"simulator listening on {base_url}\n" in stderr
    assert "demo-apikey" not in stderr


def test_bad_scenario_prints_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        'tenant_id: "1"\nauth: {type: APIKEY, value: k}\ntimezone: UTC\n'
        "plans: [{id: a, name: b, data_delay: x}]\n",
        encoding="utf-8",
    )

    exit_code = main(["--scenario", str(path), "--web.listen-address", "127.0.0.1:0"])

    assert exit_code == 1
    assert capsys.readouterr().err == (
        f"scenario error: plans[0].data_delay: invalid duration 'x' (file={path})\n"
    )


@pytest.mark.parametrize("address", ["8080", "127.0.0.1:http", "127.0.0.1:70000", ":8080"])
def test_bad_listen_address_is_flag_misuse(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([f"--web.listen-address={address}"])

    assert caught.value.code == 2
    assert "--web.listen-address: expected HOST:PORT" in capsys.readouterr().err
