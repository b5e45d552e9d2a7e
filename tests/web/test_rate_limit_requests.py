"""rate_limit from --web.config.file, through aiohttp's test server on 127.0.0.1.

Time is a fake monotonic clock shared by the bucket and the web config's change checks, so a
refill and a reload happen exactly when a test moves the clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import bcrypt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.clock import FixedClock
from exporter.metrics.exposition import Exposition
from exporter.state.snapshots import SnapshotStore
from exporter.web import auth as webauth
from exporter.web.app import WebApp, WebOptions
from exporter.web.config import load_web_config
from exporter.web.security import WebSecurity
from tests.helpers.builders import NOW
from tests.helpers.fakes import FakeMonotonic, basic_auth, replace_file

PASSWORD = "limit-Me-7x"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
USERS = f"basic_auth_users: {{prometheus: '{HASH}'}}\n"


RIGHT = basic_auth("prometheus", PASSWORD)


async def _no_reload() -> list[str]:
    return []


class Server:
    """The exporter's web app on a web config file and a fake clock."""

    def __init__(self, path: Path, clock: FakeMonotonic, client: TestClient[object, object]):
        self.path = path
        self.clock = clock
        self.client = client

    async def statuses(
        self, count: int, path: str = "/healthz", headers: dict[str, str] | None = None
    ) -> list[int]:
        return [(await self.client.get(path, headers=headers)).status for _ in range(count)]

    def rewrite(self, text: str) -> None:
        """A new file, seen by the next request's change check."""
        replace_file(self.path, text)
        self.clock.now += 1.0


Serve = Callable[[str], Awaitable[Server]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    clients: list[TestClient[object, object]] = []

    async def start(text: str) -> Server:
        path = tmp_path / "web.yml"
        replace_file(path, text)
        clock = FakeMonotonic(500.0)
        security = WebSecurity(load_web_config(path), check_interval=1.0, monotonic=clock)
        store = SnapshotStore()
        app = WebApp(
            CollectorRegistry(),
            exposition=Exposition(store, FixedClock(NOW)),
            store=store,
            clock=FixedClock(NOW),
            is_ready=lambda: True,
            reload=_no_reload,
            options=WebOptions(),
            security=security,
        )
        client: TestClient[object, object] = TestClient(
            TestServer(app.application(), host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return Server(path, clock, client)

    yield start
    for client in clients:
        await client.close()


async def test_burst_then_429_on_every_path(serve: Serve) -> None:
    server = await serve("rate_limit: {interval: 1h, burst: 3}\n")
    assert await server.statuses(3) == [200, 200, 200]
    refused = await server.client.get("/metrics")
    assert refused.status == 429
    assert await refused.text() == "Too Many Requests\n"
    assert "WWW-Authenticate" not in refused.headers
    assert await server.statuses(1, "/no-such-page") == [429]


async def test_one_more_request_per_interval(serve: Serve) -> None:
    server = await serve("rate_limit: {interval: 10s, burst: 2}\n")
    assert await server.statuses(3) == [200, 200, 429]
    server.clock.now += 9.9
    assert await server.statuses(1) == [429]
    server.clock.now += 0.1
    assert await server.statuses(2) == [200, 429]
    server.clock.now += 3600  # a long quiet spell refills only up to the burst
    assert await server.statuses(3) == [200, 200, 429]


async def test_the_limit_comes_before_basic_auth(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[bytes] = []
    checkpw = webauth._checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return checkpw(password, hashed)

    monkeypatch.setattr(webauth, "_checkpw", counting)
    server = await serve(USERS + "rate_limit: {interval: 1h, burst: 2}\n")
    # Requests without credentials take tokens too, as in exporter-toolkit.
    assert await server.statuses(1) == [401]
    assert await server.statuses(1, headers=basic_auth("prometheus", "wrong")) == [401]
    # The right credentials get 429 once the bucket is empty, and cost no bcrypt check.
    assert await server.statuses(2, headers=RIGHT) == [429, 429]
    assert checks == [b"wrong"]


async def test_without_rate_limit_nothing_is_refused(serve: Serve) -> None:
    server = await serve("rate_limit: {interval: 0, burst: 0}\n")
    assert set(await server.statuses(50)) == {200}


async def test_a_reload_applies_a_changed_limit(serve: Serve) -> None:
    server = await serve("rate_limit: {interval: 1h, burst: 1}\n")
    assert await server.statuses(2) == [200, 429]

    server.rewrite("rate_limit: {interval: 1h, burst: 4}\n")
    # A changed limit starts full.
    assert await server.statuses(5) == [200, 200, 200, 200, 429]

    server.rewrite("http_server_config: {headers: {X-Frame-Options: deny}}\n")
    assert set(await server.statuses(20)) == {200}  # rate_limit removed: no limit

    server.rewrite("rate_limit: {interval: 1h, burst: 2}\n")
    assert await server.statuses(3) == [200, 200, 429]


async def test_a_reload_that_keeps_the_limit_keeps_the_bucket(serve: Serve) -> None:
    server = await serve("rate_limit: {interval: 1h, burst: 2}\n")
    assert await server.statuses(2) == [200, 200]
    server.rewrite(
        "rate_limit: {interval: 60m, burst: 2}\n"  # the same limit, written differently
        "http_server_config: {headers: {X-Frame-Options: deny}}\n"
    )
    response = await server.client.get("/healthz")
    assert response.headers["X-Frame-Options"] == "deny"  # the reload happened
    assert response.status == 429  # and did not refill the bucket


async def test_a_broken_reload_keeps_the_running_limit(serve: Serve) -> None:
    server = await serve("rate_limit: {interval: 1h, burst: 1}\n")
    assert await server.statuses(1) == [200]
    server.rewrite("rate_limit: {interval: -1s, burst: 100}\n")
    assert await server.statuses(2) == [429, 429]
