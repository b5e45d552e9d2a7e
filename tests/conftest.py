"""Fixtures every test directory shares.

Builders live in tests/helpers/ (imported, never fixtures): groups, readings, configs, CAN's
answers, the test PKI and the external programs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exporter.clock import FixedClock
from exporter.config.model import Target
from exporter.state.snapshots import SnapshotStore
from tests.helpers.builders import NOW
from tests.helpers.pki import Pki, make_pki

# Unit tests of these packages open no sockets: every CanClient they build (through the poller
# or the live check) sends through httpx's own transport, which pytest-httpx fakes. The daemon
# sends through aiohttp (exporter/can/transport.py), which tests/can/test_network.py, the
# fault matrix and the integration tests exercise on real sockets.
_TESTS = Path(__file__).parent
_CAN_FAKED_IN = frozenset({"config", "state", "metrics", "polling", "web", "daemon"})


def _httpx_transport(target: Target) -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(trust_env=False)


@pytest.fixture(autouse=True)
def _can_on_httpx_transport(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.path.relative_to(_TESTS).parts[0] in _CAN_FAKED_IN:
        monkeypatch.setattr("exporter.can.client.default_transport", _httpx_transport)


@pytest.fixture
def clock() -> FixedClock:
    """A clock stopped at NOW (2024-09-02 04:00 UTC); tests move it by hand."""
    return FixedClock(NOW)


@pytest.fixture
def store() -> SnapshotStore:
    return SnapshotStore()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA with a server and a client certificate for 127.0.0.1, in files under tmp_path."""
    return make_pki(tmp_path / "tls")


@pytest.fixture
def restored_root_logger() -> Iterator[None]:
    """The root logger's handlers and level as they were: for tests that call setup_logging
    (or main(), which does), so the test run's own handlers come back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
