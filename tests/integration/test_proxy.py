"""Proxies end to end: a real tinyproxy on 127.0.0.1 between the exporter and the simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import Simulator
from tests.integration.tinyproxy import Tinyproxy

pytestmark = pytest.mark.integration

PROXY_USER = "exporter"
PROXY_PASSWORD = "tinyPr0xy-pa55"


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    proxy = Tinyproxy(tmp_path / "tinyproxy")
    yield proxy
    proxy.stop()


@pytest.fixture
def tinyproxy_with_auth(tmp_path: Path) -> Iterator[Tinyproxy]:
    proxy = Tinyproxy(tmp_path / "tinyproxy", basic_auth=(PROXY_USER, PROXY_PASSWORD))
    yield proxy
    proxy.stop()


def _raw_request(port: int, request: bytes) -> bytes:
    """Send ``request`` to 127.0.0.1:``port`` and return the first bytes of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(request)
        return sock.recv(1024)


# --- the fixture itself -----------------------------------------------------------------------


def test_tinyproxy_forwards_a_request_and_logs_it(
    tinyproxy: Tinyproxy, simulator: Simulator
) -> None:
    url = f"{simulator.url}/-/healthy"
    answer = httpx.get(url, proxy=tinyproxy.url, trust_env=False, timeout=5.0)
    assert answer.status_code == 200
    assert tinyproxy.requests() == [f"GET {url} HTTP/1.1"]


def test_tinyproxy_tunnels_only_to_the_ports_it_is_given(
    tinyproxy: Tinyproxy, simulator: Simulator
) -> None:
    authority = simulator.url.removeprefix("http://")
    answer = _raw_request(
        tinyproxy.port, f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert tinyproxy.requests() == [f"CONNECT {authority} HTTP/1.1"]


def test_tinyproxy_tunnels_to_a_port_it_is_given(tmp_path: Path, simulator: Simulator) -> None:
    authority = simulator.url.removeprefix("http://")
    proxy = Tinyproxy(tmp_path / "tinyproxy", connect_ports=[simulator.port])
    try:
        answer = _raw_request(
            proxy.port, f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
        )
    finally:
        proxy.stop()
    assert answer.startswith(b"HTTP/1.0 200 ")


def test_tinyproxy_with_basic_auth_wants_the_credentials(
    tinyproxy_with_auth: Tinyproxy, simulator: Simulator
) -> None:
    url = f"{simulator.url}/-/healthy"
    anonymous = httpx.get(url, proxy=tinyproxy_with_auth.url, trust_env=False, timeout=5.0)
    credentials = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{tinyproxy_with_auth.port}"
    known = httpx.get(url, proxy=credentials, trust_env=False, timeout=5.0)
    assert (anonymous.status_code, known.status_code) == (407, 200)
