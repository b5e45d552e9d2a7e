"""The HTTP handlers: /metrics scraped over loopback (it streams), the rest called with mocked
requests."""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client import CollectorRegistry

from exporter.can.models import PollResult
from exporter.clock import FixedClock
from exporter.daemon.settings import ListenAddress
from exporter.metrics.exposition import Exposition
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.state.snapshots import GroupSnapshot, SnapshotStore, TargetSnapshot, next_snapshot
from exporter.web.app import WebApp, WebOptions
from exporter.web.landing import render_landing_page
from tests.helpers.builders import NOW, make_group, make_reading


def _web_app(
    store: SnapshotStore,
    *,
    ready: bool = True,
    lifecycle: bool = False,
    reload_problems: list[str] | None = None,
) -> WebApp:
    registry = CollectorRegistry()
    ExporterMetrics(registry)

    async def reload() -> list[str]:
        return reload_problems or []

    return WebApp(
        registry,
        exposition=Exposition(store, FixedClock(NOW)),
        store=store,
        clock=FixedClock(NOW),
        is_ready=lambda: ready,
        reload=reload,
        options=WebOptions("/metrics", lifecycle),
    )


def _app(
    store: SnapshotStore,
    *,
    ready: bool = True,
    lifecycle: bool = False,
    reload_problems: list[str] | None = None,
) -> web.Application:
    return _web_app(
        store, ready=ready, lifecycle=lifecycle, reload_problems=reload_problems
    ).application()


async def _call(app: web.Application, method: str, path: str, **headers: str) -> web.Response:
    request = make_mocked_request(method, path, headers=headers, app=app)
    match = await app.router.resolve(request)
    request._match_info = match  # make_mocked_request skips routing
    response = await match.handler(request)
    assert isinstance(response, web.Response)
    return response


@dataclass
class Scrape:
    status: int
    headers: Mapping[str, str]
    body: bytes  # as sent: still compressed when gzip

    @property
    def content_type(self) -> str:
        return self.headers["Content-Type"].split(";")[0]


async def _scrape(app: web.Application, method: str = "GET", **headers: str) -> Scrape:
    """/metrics over a real socket on 127.0.0.1, the body as it came (identity unless the
    headers ask for gzip)."""
    asked = {"Accept-Encoding": "identity", **headers}
    async with TestClient(TestServer(app, host="127.0.0.1"), auto_decompress=False) as client:
        response = await client.request(method, "/metrics", headers=asked)
        body = await response.read()
        return Scrape(response.status, dict(response.headers), body)


def _store() -> SnapshotStore:
    store = SnapshotStore()
    polled = next_snapshot(
        GroupSnapshot(make_group("a")), PollResult(make_reading(), None, 0.1), NOW
    )
    store.put(polled)
    store.put(GroupSnapshot(make_group("<b>")))
    return store


async def test_metrics_plain_and_gzip() -> None:
    plain = await _scrape(_app(_store()))
    assert plain.status == 200
    assert plain.content_type == "text/plain"
    assert "Content-Encoding" not in plain.headers
    assert int(plain.headers["Content-Length"]) == len(plain.body)
    assert b'aloudata_can_data_lag_seconds{group="a",target="prod"} 100800.0' in plain.body

    zipped = await _scrape(_app(_store()), **{"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(zipped.headers["Content-Length"]) == len(zipped.body)
    assert gzip.decompress(zipped.body) == plain.body


async def test_metrics_streams_a_body_of_many_chunks_whole() -> None:
    store = SnapshotStore()
    for index in range(700):  # several of the exposition's chunks per family
        group = make_group(f"g{index:03d}")
        store.put(next_snapshot(GroupSnapshot(group), PollResult(make_reading(), None, 0.1), NOW))
    plain = await _scrape(_app(store))
    zipped = await _scrape(_app(store), **{"Accept-Encoding": "gzip"})

    lines = plain.body.decode().splitlines()
    lag = [line for line in lines if line.startswith("aloudata_can_data_lag_seconds{")]
    assert [line.split('"')[1] for line in lag] == [f"g{index:03d}" for index in range(700)]
    build_info = next(
        i for i, line in enumerate(lines) if line.startswith("aloudata_can_exporter_build_info{")
    )
    assert build_info > lines.index(lag[-1])  # the exporter's own metrics after the groups'
    assert int(plain.headers["Content-Length"]) == len(plain.body)
    assert gzip.decompress(zipped.body) == plain.body


async def test_a_head_of_metrics_has_the_length_and_no_body() -> None:
    get = await _scrape(_app(_store()), **{"Accept-Encoding": "gzip"})
    head = await _scrape(_app(_store()), "HEAD", **{"Accept-Encoding": "gzip"})
    assert head.status == 200
    assert head.body == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    assert head.headers["Content-Encoding"] == "gzip"


async def test_readiness() -> None:
    not_ready = await _call(_app(_store(), ready=False), "GET", "/readyz")
    assert not_ready.status == 503
    assert not_ready.text == "not ready: 1 of 2 groups polled\n"
    assert (await _call(_app(_store()), "GET", "/readyz")).status == 200
    assert (await _call(_app(_store()), "GET", "/healthz")).status == 200


async def test_reload_needs_the_lifecycle_flag() -> None:
    assert (await _call(_app(_store()), "POST", "/-/reload")).status == 403
    assert (await _call(_app(_store(), lifecycle=True), "POST", "/-/reload")).status == 200
    failed = await _call(
        _app(_store(), lifecycle=True, reload_problems=["config error: x"]), "POST", "/-/reload"
    )
    assert failed.status == 500
    assert failed.text == "config error: x\n"


async def test_landing_page_escapes_and_shows_states() -> None:
    page = (await _call(_app(_store()), "GET", "/")).text
    assert page is not None
    assert "&lt;b&gt;" in page
    assert "<b>" not in page.replace("<body>", "")
    assert ">ok<" in page
    assert ">pending<" in page
    assert ">1d4h<" in page  # the data lag of group a
    assert '<td class="warn">warning: data lag 1d4h over 1d2h</td></tr>' in page
    assert "<td>-</td></tr>" in page  # nothing to say of the pending group yet


async def test_landing_page_shows_backoff_and_open_circuits() -> None:
    store = _store()
    snapshot = store.get(("prod", "a"))
    assert snapshot is not None
    store.put(replace(snapshot, next_poll_time=NOW + timedelta(minutes=4)))
    store.put_target(TargetSnapshot("prod", circuit_open=True))
    store.put_target(TargetSnapshot("staging", circuit_open=False))
    page = (await _call(_app(store), "GET", "/")).text
    assert page is not None
    assert ">in 4m<" in page
    assert "Target prod: every group is failing" in page
    assert "Target staging" not in page


async def test_metrics_joins_group_and_exporter_metrics_in_both_formats() -> None:
    text = await _scrape(_app(_store()))
    body = text.body
    assert b'aloudata_can_poll_success{group="a",target="prod"} 1.0' in body
    assert b"aloudata_can_exporter_build_info{" in body

    accept = "application/openmetrics-text; version=1.0.0"
    openmetrics = await _scrape(_app(_store()), Accept=accept)
    assert openmetrics.content_type == "application/openmetrics-text"
    om_body = openmetrics.body
    assert b'aloudata_can_poll_success{group="a",target="prod"} 1.0' in om_body
    assert b"aloudata_can_exporter_build_info{" in om_body
    assert om_body.endswith(b"# EOF\n")


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        # Prometheus 2.x's header: OpenMetrics first, the text format second.
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            "text/plain",
        ),
        ("", "text/plain"),
        ("*/*", "text/plain"),
        ("application/openmetrics-text; version=1.0.0", "application/openmetrics-text"),
    ],
)
async def test_the_text_format_is_served_whenever_it_is_accepted(
    accept: str, content_type: str
) -> None:
    response = await _scrape(_app(_store()), Accept=accept)
    assert response.content_type == content_type
    if content_type == "text/plain":
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_landing_page_marks_a_critical_finding() -> None:
    stale = make_reading(datetime(2024, 8, 30, tzinfo=UTC), datetime(2024, 9, 2, 3, tzinfo=UTC))
    snapshot = next_snapshot(GroupSnapshot(make_group()), PollResult(stale, None, 0.1), NOW)
    page = render_landing_page([snapshot], NOW, "/metrics")
    assert '<td class="fail">critical: data lag 3d4h over 2d2h</td></tr>' in page


async def test_a_scraper_that_goes_away_mid_body_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SnapshotStore()
    for index in range(4000):  # about 10 MB of text: more than the socket buffers hold
        group = make_group(f"group-with-a-long-name-{index:05d}", plans=("p1", "p2"))
        store.put(next_snapshot(GroupSnapshot(group), PollResult(make_reading(), None, 0.1), NOW))
    caplog.set_level(logging.DEBUG)
    app = _web_app(store)
    # The daemon's own server (AppRunner), not aiohttp's TestServer, which handles this apart.
    (bound,) = await app.start(ListenAddress("127.0.0.1", 0))
    try:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the body backs up
        client.setblocking(False)
        port = int(bound.rsplit(":", 1)[1])
        await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=client)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # a reset, as a scraper timing out may leave
        for _ in range(250):
            await asyncio.sleep(0.02)
            if any(r.getMessage().startswith("scraper went away") for r in caplog.records):
                break
    finally:
        await app.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any(r.getMessage().startswith("scraper went away") for r in caplog.records)
