"""Real processes for the integration tests: the simulator and the exporter on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

STARTUP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_ok(url: str, **client_options: Any) -> bool:
    """``client_options`` go to ``httpx.get``: ``verify``, ``auth``."""
    try:
        return httpx.get(url, timeout=1.0, **client_options).status_code == 200
    except httpx.HTTPError:
        return False


def one_quiet_group_config(can_port: int) -> str:
    """An exporter config of one group polled once an hour, on a target at ``can_port`` that
    need not exist: for tests of the web side, where CAN does not matter."""
    return f"""
defaults:
  interval: 1h
  timeout: 2s
targets:
  - name: nowhere
    url: http://127.0.0.1:{can_port}
    tenant_id: "10001"
    auth: {{type: APIKEY, value: not-a-real-key}}
    timezone: UTC
groups:
  - {{name: only, target: nowhere, plan_ids: [p1]}}
"""


class Process:
    """A child process whose stderr goes to a file, stopped with SIGTERM then SIGKILL.

    Its environment is the tests' with ``env`` on top."""

    def __init__(
        self, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: signal.Signals) -> None:
        self.popen.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return self.popen.returncode


class Server(Process):
    """A Python module serving HTTP on a free loopback port."""

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        listen = ["--web.listen-address", f"127.0.0.1:{self.port}"]
        super().__init__([sys.executable, "-m", module, *listen, *args], log_path, env)


class Simulator(Server):
    def __init__(self, scenario: Path, tmp: Path) -> None:
        super().__init__("exporter.simulator", ["--scenario", str(scenario)], tmp / "simulator.log")
        wait_for(lambda: http_ok(f"{self.url}/-/healthy"), STARTUP_TIMEOUT, "the simulator")


class Exporter(Server):
    """The exporter; with ``https`` its URL is https:// and ``client_options`` (httpx's
    ``verify`` and ``auth``) go with the readiness check and the scrapes. ``env`` goes on top
    of the tests' environment (HTTPS_PROXY...)."""

    def __init__(
        self,
        args: Sequence[str],
        tmp: Path,
        *,
        wait_ready: bool = True,
        https: bool = False,
        client_options: dict[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("exporter", args, tmp / "exporter.log", env)
        if https:
            self.url = f"https://127.0.0.1:{self.port}"
        self.client_options = dict(client_options or {})
        if wait_ready:
            wait_for(self._ready, STARTUP_TIMEOUT, "the exporter's /readyz")

    def _ready(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"exporter exited early:\n{self.log()}")
        return http_ok(f"{self.url}/readyz", **self.client_options)

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample on /metrics, keyed by (name, labels)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5.0, **self.client_options).text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.scrape().get((name, frozenset(labels.items())))


def run_exporter(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m exporter ARGS`` to completion (for --check-config, --once, bad flags)."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        env={**os.environ, **(env or {})},
    )
