"""Real Prometheus and Alertmanager processes, and a webhook receiver, for the end-to-end test.

Everything listens on 127.0.0.1 and writes into the test's temporary directory.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.integration.processes import STARTUP_TIMEOUT, Process, free_port, http_ok, wait_for


class BinaryServer(Process):
    """A server binary (Prometheus, Alertmanager) on a free loopback port."""

    name = "server"
    ready_path = "/-/ready"

    def __init__(self, binary: str, args: list[str], tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        listen = f"--web.listen-address=127.0.0.1:{self.port}"
        super().__init__([binary, listen, *args], tmp / f"{self.name}.log")
        wait_for(self._ready, STARTUP_TIMEOUT, f"{self.name}'s {self.ready_path}")

    def _ready(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited early:\n{self.log()}")
        return http_ok(self.url + self.ready_path)

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=5.0)
        response.raise_for_status()
        return response.json()


class Alertmanager(BinaryServer):
    name = "alertmanager"

    def __init__(self, binary: str, config: dict[str, Any], tmp: Path) -> None:
        config_file = tmp / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config))
        args = [
            f"--config.file={config_file}",
            f"--storage.path={tmp / 'alertmanager-data'}",
            "--cluster.listen-address=",  # no gossip port: a single, private instance
        ]
        super().__init__(binary, args, tmp)


class Prometheus(BinaryServer):
    name = "prometheus"

    def __init__(self, binary: str, config: dict[str, Any], tmp: Path) -> None:
        config_file = tmp / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        args = [
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp / 'prometheus-data'}",
        ]
        super().__init__(binary, args, tmp)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; a PromQL error fails with Prometheus' message."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5.0)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"query failed: {body.get('error')}: {expr}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        body = self.get(f"/api/v1/label/{label}/values", **{"match[]": match})
        values: list[str] = body["data"]
        return values


class WebhookReceiver:
    """Collects Alertmanager's webhook notifications; the URL path names the receiver."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length))
                with receiver._lock:
                    receiver.notifications.append((self.path.strip("/"), payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """Every alert delivered so far, with the receiver it went to."""
        with self._lock:
            return [
                (receiver, alert)
                for receiver, payload in self.notifications
                for alert in payload["alerts"]
            ]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
