"""Answers in a content coding, on the daemon's transport against raw sockets (tests/faults).

The client asks for identity and refuses any other coding before a byte of the body is read
or decoded: a 5 KiB ``Content-Encoding: gzip, gzip`` answer that would inflate to 3 GiB costs
no memory.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.can.client import CanClient
from exporter.can.models import FailureReason
from exporter.config.load import parse_config
from exporter.config.model import PlanKey, Target
from tests.faults.rawcan import GZIP_BOMB, RawCan

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
# The bound on what any answer may add to the peak RSS.
PEAK_RSS_GROWTH_LIMIT = 10 * MIB


def _config(url: str) -> str:
    return f"""
targets:
  - name: raw
    url: "{url}"
    tenant_id: "1"
    auth: {{type: APIKEY, value: encoding-test-key}}
    timezone: UTC
groups:
  - {{name: g, target: raw, plan_ids: [ok]}}
"""


def _target(url: str) -> Target:
    return parse_config(_config(url), environ={}).targets["raw"]


@pytest.fixture(scope="module")
def can() -> Iterator[RawCan]:
    with RawCan() as server:
        yield server


def test_the_bomb_inflates_to_3_gib() -> None:
    inner = gzip.decompress(GZIP_BOMB)  # the outer layer only: 3 MiB
    assert len(GZIP_BOMB) < 6 * 1024
    assert inner[:2] == b"\x1f\x8b"  # gzip again
    (inflated,) = struct.unpack("<I", inner[-4:])  # ISIZE: the size modulo 2**32
    assert inflated == 3 * 1024**3


@pytest.mark.parametrize(
    ("fault", "coding"),
    [("gzip_bomb", "gzip, gzip"), ("gzip", "gzip"), ("deflate", "deflate"), ("br", "br")],
)
async def test_an_answer_in_a_content_coding_is_refused(
    can: RawCan, fault: str, coding: str
) -> None:
    client = CanClient(_target(can.url))
    try:
        result = await client.poll(PlanKey.IDS, [fault], 5.0)
    finally:
        await client.aclose()
    assert result.error is not None
    assert result.error.reason is FailureReason.INVALID_RESPONSE
    assert result.error.message == (
        f"CAN answered with Content-Encoding {coding!r}; the exporter asks for identity"
    )
    assert client.requests_sent == 1
    last = can.last(fault)
    assert last is not None
    assert last.headers["accept-encoding"] == "identity"


# Run in a child process of its own, so that its peak RSS is this poll's. Its address space
# is capped so that a client that did inflate the bomb fails with MemoryError rather than
# taking the machine's memory.
_CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    from exporter.can.client import CanClient
    from exporter.config.load import parse_config
    from exporter.config.model import PlanKey

    def status_kib(key):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])

    async def main(config_text):
        client = CanClient(parse_config(config_text, environ={}).targets["raw"])
        # Imports, the session and a connection: everything a poll needs is in place.
        warm = await client.poll(PlanKey.IDS, ["ok"], 5.0)
        assert warm.error is None, warm.error
        limit = status_kib("VmSize") * 1024 + 512 * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        before = status_kib("VmHWM")
        result = await client.poll(PlanKey.IDS, ["gzip_bomb"], 5.0)
        after = status_kib("VmHWM")
        await client.aclose()
        error = result.error
        print(json.dumps({
            "reason": error and str(error.reason),
            "message": error and error.message,
            "growth_kib": after - before,
        }))

    asyncio.run(main(sys.stdin.read()))
    """
)


def test_a_gzip_bomb_leaves_the_peak_rss_where_it_was(can: RawCan) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=_config(can.url),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    figures = json.loads(finished.stdout.splitlines()[-1])
    assert figures["reason"] == "invalid_response", figures
    assert "'gzip, gzip'" in figures["message"]
    assert figures["growth_kib"] * 1024 < PEAK_RSS_GROWTH_LIMIT, figures
