"""Unit tests open no sockets: every CanClient built here sends through httpx's own transport.

The daemon's clients send through aiohttp (exporter.can.transport), which pytest-httpx cannot
fake; tests/client/test_network.py and tests/faults exercise that one on real sockets.
"""

from __future__ import annotations

import httpx
import pytest

from exporter.config import Target


def httpx_transport(target: Target) -> httpx.AsyncBaseTransport:
    """httpx's own transport, which pytest-httpx fakes."""
    return httpx.AsyncHTTPTransport(trust_env=False)


@pytest.fixture(autouse=True)
def _can_clients_on_httpx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("exporter.can.client.default_transport", httpx_transport)
