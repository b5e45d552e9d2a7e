"""A target's proxy as the daemon's transport gets it (exporter/can/transport.py).

tests/integration/test_proxy.py sends through a real tinyproxy; these check what the transport
is given: a CONNECT proxy with its headers for https:// targets, a proxy URL with credentials
for http:// targets, never httpx.Proxy's ``auth`` (aiohttp's deprecated BasicAuth).
"""

from __future__ import annotations

import base64
import socket

import aiohttp
import httpx
import pytest
from pytest_httpx import HTTPXMock
from yarl import URL

from exporter.can.client import MAX_ATTEMPTS, CanClient
from exporter.can.models import FailureReason
from exporter.can.transport import (
    TransportFailure,
    aiohttp_transport,
    forward_proxy_url,
    transport_failure,
    tunnel_proxy,
)
from exporter.config.load import parse_config
from exporter.config.model import PlanKey, Target

PASSWORD = "p@ss:w/rd%-91 x"
WRITTEN_PASSWORD = "p%40ss%3Aw%2Frd%25-91%20x"
BASIC = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()


def _target(url: str, extra: str = "") -> Target:
    text = f"""
targets:
  - name: prod
    url: {url}
    tenant_id: "1"
    auth: {{type: APIKEY, value: proxy-test-key-1}}
{extra}groups:
  - {{name: g, target: prod, plan_ids: [p1]}}
"""
    return parse_config(text, environ={}).targets["prod"]


WITH_CREDENTIALS = f"    proxy_url: http://alice:{WRITTEN_PASSWORD}@proxy.corp:3128\n"
CONNECT_HEADERS = (
    "    proxy_connect_header:\n"
    "      X-Team: [team-alpha-7, team-beta-8]\n"
    '      Proxy-Authorization: ["Bearer hdr-t0ken-42"]\n'
)


def test_a_target_without_a_proxy_gets_none() -> None:
    for url in ("https://can.example.com", "http://can.example.com"):
        target = _target(url)
        assert (tunnel_proxy(target), forward_proxy_url(target)) == (None, None)


def test_an_https_target_tunnels_with_the_credentials_as_a_connect_header() -> None:
    target = _target("https://can.example.com", WITH_CREDENTIALS + CONNECT_HEADERS)
    proxy = tunnel_proxy(target)
    assert proxy is not None
    assert str(proxy.url) == "http://proxy.corp:3128"
    assert proxy.auth is None  # the deprecated BasicAuth route
    # The URL's credentials win over proxy_connect_header's Proxy-Authorization, as in Go.
    assert proxy.headers.multi_items() == [
        ("x-team", "team-alpha-7"),
        ("x-team", "team-beta-8"),
        ("proxy-authorization", BASIC),
    ]
    assert forward_proxy_url(target) is None


def test_a_connect_header_proxy_authorization_is_sent_when_the_url_has_no_credentials() -> None:
    target = _target(
        "https://can.example.com", "    proxy_url: http://proxy.corp\n" + CONNECT_HEADERS
    )
    proxy = tunnel_proxy(target)
    assert proxy is not None
    assert proxy.headers.get_list("proxy-authorization") == ["Bearer hdr-t0ken-42"]


def test_an_http_target_sends_to_the_proxy_url_with_its_credentials() -> None:
    target = _target("http://can.example.com", WITH_CREDENTIALS)
    forward = forward_proxy_url(target)
    assert forward is not None
    # aiohttp reads the credentials back from the URL exactly, special characters included.
    parsed = URL(forward)
    assert (parsed.user, parsed.password, parsed.host, parsed.port) == (
        "alice",
        PASSWORD,
        "proxy.corp",
        3128,
    )
    assert tunnel_proxy(target) is None


def test_an_http_target_without_credentials_sends_to_the_bare_proxy_url() -> None:
    target = _target("http://can.example.com", "    proxy_url: https://proxy.corp:8443\n")
    assert forward_proxy_url(target) == "https://proxy.corp:8443"


def test_the_daemons_transport_is_given_the_tunnel() -> None:
    target = _target("https://can.example.com", WITH_CREDENTIALS)
    transport = aiohttp_transport(target)
    assert transport.proxy is not None
    assert transport.proxy.headers["proxy-authorization"] == BASIC
    assert aiohttp_transport(_target("http://can.example.com", WITH_CREDENTIALS)).proxy is None


# --- what a proxy's failure reads as --------------------------------------------------------------


async def test_an_unreachable_proxy_is_a_connection_failure_retried_and_named() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy = f"    proxy_url: http://alice:{WRITTEN_PASSWORD}@127.0.0.1:{port}\n"
    client = CanClient(_target("http://can.example.com", proxy))  # the daemon's transport
    try:
        result = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    finally:
        await client.aclose()
    assert result.error is not None
    assert result.error.reason is FailureReason.CONNECTION
    assert result.error.message.startswith(
        f"ClientProxyConnectionError: cannot connect to the proxy 127.0.0.1:{port}: "
    )
    assert "\n" not in result.error.message
    assert client.requests_sent == MAX_ATTEMPTS


def _refused_tunnel(status: int, reason: str) -> httpx.ProxyError:
    """What AiohttpTransport raises when the proxy answers CONNECT with ``status``."""
    refused = aiohttp.ClientHttpProxyError(None, (), status=status, message=reason)
    wrapped = httpx.ProxyError(reason)
    wrapped.__cause__ = refused
    return wrapped


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [
        (407, "Proxy Authentication Required", False),
        (403, "Forbidden", False),
        (502, "Bad Gateway", True),
    ],
)
def test_a_proxy_refusing_the_tunnel_is_named_and_retried_only_for_a_5xx(
    status: int, reason: str, retryable: bool
) -> None:
    failure = transport_failure(_refused_tunnel(status, reason))
    assert failure == TransportFailure(
        FailureReason.CONNECTION,
        f"ClientHttpProxyError: the proxy answered CONNECT with {status} {reason}",
        retryable,
    )


# --- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("echoed", [PASSWORD, WRITTEN_PASSWORD, BASIC.removeprefix("Basic ")])
async def test_proxy_credentials_echoed_into_an_error_are_masked(
    httpx_mock: HTTPXMock, echoed: str
) -> None:
    target = _target("https://can.example.com", WITH_CREDENTIALS)
    httpx_mock.add_response(status_code=502, json={"errorMsg": f"bad upstream {echoed}"})
    client = CanClient(target, transport=httpx.AsyncHTTPTransport())
    try:
        result = await client.poll(PlanKey.IDS, ["p1"], 5.0, retry=False)
    finally:
        await client.aclose()
    assert result.error is not None
    described = result.error.describe()
    assert "bad upstream <secret>" in described
    assert echoed not in described
