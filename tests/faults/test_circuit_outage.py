"""A dead target costs CAN almost nothing: while its circuit is open, one probe at a time,
backing off like a failing group and never retried within the poll.

One real exporter process against the raw-socket CAN, whose every answer is a reset
connection (a retried failure for ordinary polls).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.rawcan import RawCan
from tests.integration.processes import Exporter, http_ok, wait_for

pytestmark = pytest.mark.integration

GROUPS = 5
WATCH_SECONDS = 12.0


def _config(url: str) -> str:
    groups = "\n".join(
        f"  - {{name: g{index}, target: dead, plan_ids: [reset]}}" for index in range(GROUPS)
    )
    return f"""
defaults:
  interval: 1s
  timeout: 500ms
targets:
  - name: dead
    url: {url}
    tenant_id: "10001"
    auth: {{type: APIKEY, value: circuit-test-apikey}}
    timezone: UTC
    max_concurrency: {GROUPS}
groups:
{groups}
"""


def test_an_open_circuit_sends_well_under_one_request_a_second(tmp_path: Path) -> None:
    with RawCan() as can:
        (tmp_path / "exporter.yml").write_text(_config(can.url))
        exporter = Exporter(
            ["--config.file", str(tmp_path / "exporter.yml")], tmp_path, wait_ready=False
        )
        try:
            wait_for(lambda: http_ok(f"{exporter.url}/healthz"), 15, "the exporter's /healthz")
            wait_for(
                lambda: exporter.value("aloudata_can_target_circuit_open", target="dead") == 1,
                15,
                "the dead target's circuit to open",
            )
            before = can.count("reset")
            time.sleep(WATCH_SECONDS)
            sent = can.count("reset") - before
            assert exporter.value("aloudata_can_target_circuit_open", target="dead") == 1
            # Probes 2x, 4x, 8x the interval apart (jittered): about three in 12 s, against
            # five groups' 12 polls a second, each tried up to three times, without a circuit.
            assert sent <= 4, f"{sent} requests in {WATCH_SECONDS:g}s while the circuit was open"
            assert "circuit open" in exporter.log()
        finally:
            exporter.stop()
