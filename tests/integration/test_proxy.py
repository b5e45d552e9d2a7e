"""Proxies end to end: a real tinyproxy on 127.0.0.1 between the exporter and CAN.

The exporter runs as a process and polls the simulator (http://) or a TLS fake CAN (https://,
tests/faults/rawcan.py) through tinyproxy. tinyproxy's log names each request it forwarded or
tunnelled; a Wiretap in front of it keeps the bytes it was sent, headers included.

Loopback targets go direct under Prometheus' rules whenever no_proxy or the environment decides,
so those tests name the simulator ``127.1``: the same address to tinyproxy's resolver, not a
loopback address to the rules (Go's net.ParseIP does not read it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from exporter.can.client import CanClient
from exporter.can.models import LATEST_TIME_PATH
from exporter.config.load import parse_config
from exporter.config.model import PlanKey
from tests.faults.rawcan import RawCan
from tests.helpers.pki import Pki
from tests.integration.processes import Exporter, Simulator, free_port
from tests.integration.tinyproxy import Tinyproxy
from tests.integration.wiretap import Wiretap

pytestmark = pytest.mark.integration

PROXY_USER = "exporter"
PROXY_PASSWORD = "tinyPr0xy-pa55"
# What the simulator's integration scenario expects.
AUTH_VALUE = "integration-apikey-4f1d"
FRESH_PLAN = "aaaa0000000000000000000000000001"


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


@pytest.fixture
def tls_can(pki: Pki) -> Iterator[RawCan]:
    """A fake CAN on https://127.0.0.1:PORT; plan ``ok`` gets a fresh answer."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    with RawCan(context) as can:
        yield can


def _raw_request(port: int, request: bytes) -> bytes:
    """Send ``request`` to 127.0.0.1:``port`` and return the first bytes of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(request)
        return sock.recv(1024)


def _target(name: str, url: str, extra: str = "") -> str:
    """A target entry (``extra``: more keys, one per line, without indentation)."""
    lines = "".join(f"    {line}\n" for line in extra.splitlines())
    return (
        f"  - name: {name}\n"
        f"    url: {url}\n"
        '    tenant_id: "10001"\n'
        f"    auth: {{type: APIKEY, value: {AUTH_VALUE}}}\n"
        "    timezone: Asia/Shanghai\n"
        f"{lines}"
    )


def _start_exporter(
    tmp_path: Path,
    targets: str,
    groups: str,
    env: dict[str, str] | None = None,
) -> Exporter:
    config = tmp_path / "exporter.yml"
    config.write_text(
        f"defaults: {{interval: 30s, timeout: 3s}}\ntargets:\n{targets}groups:\n{groups}"
    )
    args = ["--config.file", str(config), "--log.format", "json", "--log.level", "debug"]
    return Exporter(args, tmp_path, env=env)


def _group(target: str, plan: str = FRESH_PLAN) -> str:
    return f"  - {{name: g, target: {target}, plan_ids: [{plan}]}}\n"


def _polled(exporter: Exporter, target: str) -> float | None:
    return exporter.value("aloudata_can_poll_success", target=target, group="g")


def _head(request: bytes) -> tuple[str, dict[str, str]]:
    """The request line of ``request`` and its headers, names in lower case."""
    line, *fields = request.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.lower()] = value.strip()
    return line, headers


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


# --- the exporter through the proxy ------------------------------------------------------------


def test_an_http_target_is_polled_through_the_proxy(
    tmp_path: Path, tinyproxy: Tinyproxy, simulator: Simulator
) -> None:
    with Wiretap(tinyproxy.port) as wiretap:
        exporter = _start_exporter(
            tmp_path, _target("sim", simulator.url, f"proxy_url: {wiretap.url}"), _group("sim")
        )
        try:
            assert _polled(exporter, "sim") == 1
        finally:
            exporter.stop()
    assert set(tinyproxy.requests()) == {f"POST {simulator.url}{LATEST_TIME_PATH} HTTP/1.1"}
    # In clear, as the README says: the proxy reads every header of an http:// target.
    assert AUTH_VALUE.encode() in wiretap.sent()


def test_an_https_target_is_reached_through_a_connect_tunnel_with_the_proxy_credentials(
    tmp_path: Path, tls_can: RawCan, pki: Pki
) -> None:
    proxy = Tinyproxy(
        tmp_path / "tinyproxy",
        connect_ports=[tls_can.port],
        basic_auth=(PROXY_USER, PROXY_PASSWORD),
    )
    try:
        with Wiretap(proxy.port) as wiretap:
            extra = (
                f"proxy_url: http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{wiretap.port}\n"
                "proxy_connect_header: {X-Team: [team-alpha-7]}\n"
                f"tls: {{ca_file: {pki.server_ca_file}}}"
            )
            exporter = _start_exporter(
                tmp_path, _target("can", tls_can.url, extra), _group("can", "ok")
            )
            try:
                assert _polled(exporter, "can") == 1
            finally:
                exporter.stop()
    finally:
        proxy.stop()
    authority = tls_can.url.removeprefix("https://")
    assert set(proxy.requests()) == {f"CONNECT {authority} HTTP/1.1"}
    # The proxy got the CONNECT request, its headers and then TLS: never the auth-value.
    sent = wiretap.sent()
    line, headers = _head(sent)
    assert line == f"CONNECT {authority} HTTP/1.1"
    credentials = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    assert headers["proxy-authorization"] == f"Basic {credentials}"
    assert headers["x-team"] == "team-alpha-7"
    assert AUTH_VALUE.encode() not in sent
    assert AUTH_VALUE not in proxy.proxy_log_text()
    # ...which CAN got, inside the tunnel.
    request = tls_can.last("ok")
    assert request is not None
    assert request.headers["auth-value"] == AUTH_VALUE
    assert PROXY_PASSWORD not in exporter.log()


def test_an_http_target_sends_the_proxy_credentials_with_each_request(
    tmp_path: Path, tinyproxy_with_auth: Tinyproxy, simulator: Simulator
) -> None:
    port = tinyproxy_with_auth.port
    extra = f"proxy_url: http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}"
    exporter = _start_exporter(tmp_path, _target("sim", simulator.url, extra), _group("sim"))
    try:
        assert _polled(exporter, "sim") == 1  # tinyproxy answers 407 without them
    finally:
        exporter.stop()
    assert tinyproxy_with_auth.requests()
    assert PROXY_PASSWORD not in exporter.log()


def test_no_proxy_sends_a_listed_host_direct(
    tmp_path: Path, tinyproxy: Tinyproxy, simulator: Simulator
) -> None:
    # Direct, only 0.0.0.0 will do: aiohttp refuses to connect to "127.1" itself, and Linux
    # takes a connection to 0.0.0.0 to the loopback interface.
    listed = f"http://0.0.0.0:{simulator.port}"
    unlisted = f"http://127.1:{simulator.port}"
    extra = f"proxy_url: {tinyproxy.url}\nno_proxy: example.com,0.0.0.0"
    targets = _target("listed", listed, extra) + _target("unlisted", unlisted, extra)
    exporter = _start_exporter(tmp_path, targets, _group("listed") + _group("unlisted"))
    try:
        assert (_polled(exporter, "listed"), _polled(exporter, "unlisted")) == (1, 1)
    finally:
        exporter.stop()
    assert set(tinyproxy.requests()) == {f"POST {unlisted}{LATEST_TIME_PATH} HTTP/1.1"}


def test_proxy_from_environment_uses_the_exporters_http_proxy(
    tmp_path: Path, tinyproxy: Tinyproxy, simulator: Simulator
) -> None:
    named = f"http://127.1:{simulator.port}"
    extra = "proxy_from_environment: true"
    targets = _target("named", named, extra) + _target("loopback", simulator.url, extra)
    # Only this HTTP_PROXY: whatever proxy variables the tests run with are emptied (unset).
    env = {"HTTP_PROXY": tinyproxy.url, "http_proxy": "", "HTTPS_PROXY": "", "https_proxy": ""}
    env |= {"NO_PROXY": "", "no_proxy": "", "REQUEST_METHOD": ""}
    exporter = _start_exporter(tmp_path, targets, _group("named") + _group("loopback"), env)
    try:
        assert (_polled(exporter, "named"), _polled(exporter, "loopback")) == (1, 1)
    finally:
        exporter.stop()
    # The loopback address went direct, as Prometheus' rules want.
    assert set(tinyproxy.requests()) == {f"POST {named}{LATEST_TIME_PATH} HTTP/1.1"}


def test_a_dead_proxy_fails_polls_as_connection_and_says_so_in_one_line(
    tmp_path: Path, simulator: Simulator
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    extra = f"proxy_url: http://{PROXY_USER}:{PROXY_PASSWORD}@{dead}"
    exporter = _start_exporter(tmp_path, _target("sim", simulator.url, extra), _group("sim"))
    try:
        samples = exporter.scrape()
    finally:
        exporter.stop()
    labels = {"target": "sim", "group": "g"}
    assert samples[("aloudata_can_poll_success", frozenset(labels.items()))] == 0
    errors = (
        "aloudata_can_poll_errors_total",
        frozenset({**labels, "reason": "connection"}.items()),
    )
    assert samples[errors] == 1
    log = exporter.log()
    failed = [json.loads(line) for line in log.splitlines() if '"poll failed"' in line]
    assert len(failed) == 1
    assert failed[0]["reason"] == "connection"
    assert failed[0]["error"].startswith(
        f"ClientProxyConnectionError: cannot connect to the proxy {dead}: Connect call failed"
    )
    assert PROXY_PASSWORD not in log


# --- the client's transport: no deprecated aiohttp API ------------------------------------------


def _client_target(url: str, extra: str) -> str:
    return "targets:\n" + _target("can", url, extra) + "groups:\n" + _group("can", "ok")


async def test_proxy_credentials_reach_aiohttp_without_a_deprecation_warning(
    tmp_path: Path, tls_can: RawCan, pki: Pki
) -> None:
    """httpx.Proxy's auth would go through aiohttp's deprecated BasicAuth and proxy_auth, one
    DeprecationWarning a request; the transport writes the credentials another way."""
    proxy = Tinyproxy(
        tmp_path / "tinyproxy",
        connect_ports=[tls_can.port],
        basic_auth=(PROXY_USER, PROXY_PASSWORD),
    )
    credentials = f"proxy_url: http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    try:
        with RawCan() as plain_can, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for text in (
                _client_target(plain_can.url, credentials),
                _client_target(
                    tls_can.url, f"{credentials}\ntls: {{ca_file: {pki.server_ca_file}}}"
                ),
            ):
                client = CanClient(parse_config(text, environ={}).targets["can"])
                try:
                    result = await asyncio.wait_for(client.poll(PlanKey.IDS, ["ok"], 5.0), 10.0)
                finally:
                    await client.aclose()
                assert result.error is None, result.error  # tinyproxy answers 407 without them
    finally:
        proxy.stop()
    assert set(proxy.requests()) == {
        f"POST {plain_can.url}{LATEST_TIME_PATH} HTTP/1.1",
        f"CONNECT {tls_can.url.removeprefix('https://')} HTTP/1.1",
    }
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


async def test_connect_tunnels_are_kept_alive_as_connections_are(tmp_path: Path, pki: Pki) -> None:
    """Polls reuse their tunnels: no more CONNECT requests than max_concurrency, ever."""
    answer = {"success": True, "code": "200", "data": {"hasNotReady": False}}

    async def latest_time(_: web.Request) -> web.Response:
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post(LATEST_TIME_PATH, latest_time)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    port = runner.addresses[0][1]
    proxy = Tinyproxy(tmp_path / "tinyproxy", connect_ports=[port])
    extra = f"proxy_url: {proxy.url}\nmax_concurrency: 2\ntls: {{ca_file: {pki.server_ca_file}}}"
    client = CanClient(
        parse_config(_client_target(f"https://127.0.0.1:{port}", extra), environ={}).targets["can"]
    )
    try:
        for _ in range(3):
            assert (await client.poll(PlanKey.IDS, ["p1"], 5.0)).error is None
        burst = [client.poll(PlanKey.IDS, [f"p{n}"], 5.0) for n in range(6)]
        results = await asyncio.wait_for(asyncio.gather(*burst), 20.0)
        assert all(result.error is None for result in results)
    finally:
        await client.aclose()
        proxy.stop()
        await runner.cleanup()
    assert proxy.requests() == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"] * 2


async def test_a_proxy_refusing_the_credentials_fails_the_poll_once(
    tmp_path: Path, tls_can: RawCan, pki: Pki
) -> None:
    """Without credentials tinyproxy answers 407: to CONNECT for an https:// target (a
    connection failure, not retried), to the request itself for an http:// one (its status)."""
    proxy = Tinyproxy(
        tmp_path / "tinyproxy",
        connect_ports=[tls_can.port],
        basic_auth=(PROXY_USER, PROXY_PASSWORD),
    )
    without = f"proxy_url: http://127.0.0.1:{proxy.port}"
    results = []
    try:
        with RawCan() as plain_can:
            for text in (
                _client_target(plain_can.url, without),
                _client_target(tls_can.url, f"{without}\ntls: {{ca_file: {pki.server_ca_file}}}"),
            ):
                client = CanClient(parse_config(text, environ={}).targets["can"])
                try:
                    results.append(
                        await asyncio.wait_for(client.poll(PlanKey.IDS, ["ok"], 5.0), 10.0)
                    )
                finally:
                    await client.aclose()
            assert plain_can.count("ok") == 0
        assert tls_can.count("ok") == 0
    finally:
        proxy.stop()
    errors = [(r.error.reason.value, r.error.message) if r.error else None for r in results]
    assert errors == [
        ("http_status", "HTTP 407"),
        (
            "connection",
            "ClientHttpProxyError: the proxy answered CONNECT with 407 "
            "Proxy Authentication Required",
        ),
    ]
    assert len(proxy.requests()) == 2  # one try each
