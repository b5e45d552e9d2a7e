"""Basic auth and response headers from --web.config.file, through aiohttp's test server.

The server listens on 127.0.0.1 only: the middleware and the response-prepare signal run in
aiohttp's real request pipeline, which mocked requests skip.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import bcrypt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from exporter.can.models import PollResult
from exporter.clock import FixedClock
from exporter.metrics.exposition import Exposition
from exporter.state.snapshots import GroupSnapshot, SnapshotStore, next_snapshot
from exporter.web import auth as webauth
from exporter.web.app import CHECKS_BUSY, WWW_AUTHENTICATE, WebApp, WebOptions
from exporter.web.auth import BasicAuth, parse_basic_authorization
from exporter.web.config import WebConfig
from exporter.web.passwordchecks import MAX_PENDING_CHECKS_PER_CLIENT, CheckQueue, ChecksBusyError
from exporter.web.security import WebSecurity
from tests.helpers.builders import NOW, make_group, make_reading
from tests.helpers.fakes import basic_auth

PASSWORD = "pr0metheus-Scrape-9a"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
HEADERS = {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=63072000"}
METRIC = "aloudata_can_data_lag_seconds"


RIGHT = basic_auth("prometheus", PASSWORD)


class Reloads:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> list[str]:
        self.calls += 1
        return []


def _web_app(config: WebConfig, reloads: Reloads) -> tuple[WebApp, WebSecurity]:
    store = SnapshotStore()
    store.put(
        next_snapshot(GroupSnapshot(make_group("a")), PollResult(make_reading(), None, 0.1), NOW)
    )
    registry = CollectorRegistry()
    security = WebSecurity(config)
    app = WebApp(
        registry,
        exposition=Exposition(store, FixedClock(NOW)),
        store=store,
        clock=FixedClock(NOW),
        is_ready=lambda: True,
        reload=reloads,
        options=WebOptions("/metrics", enable_lifecycle=True),
        security=security,
    )
    return app, security


@pytest.fixture
def reloads() -> Reloads:
    return Reloads()


@pytest.fixture
async def client(reloads: Reloads) -> AsyncIterator[TestClient[object, object]]:
    config = WebConfig(users={"prometheus": SecretStr(HASH)}, headers=HEADERS)
    app, _ = _web_app(config, reloads)
    async with TestClient(TestServer(app.application(), host="127.0.0.1")) as test_client:
        yield test_client


PATHS = [("GET", "/metrics"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/")]
EVERY_PATH = [*PATHS, ("POST", "/-/reload"), ("GET", "/no-such-page"), ("HEAD", "/metrics")]


@pytest.mark.parametrize(("method", "path"), EVERY_PATH)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no header"),
        pytest.param(basic_auth("prometheus", "wrong"), id="wrong password"),
        pytest.param(basic_auth("prometheus", ""), id="empty password"),
        pytest.param(basic_auth("mallory", PASSWORD), id="unknown user"),
        pytest.param(basic_auth("Prometheus", PASSWORD), id="user name case"),
        pytest.param(basic_auth("prometheus", PASSWORD + " "), id="password plus a space"),
        pytest.param({"Authorization": "Bearer x"}, id="other scheme"),
        pytest.param({"Authorization": "Basic !!!"}, id="bad base64"),
    ],
)
async def test_without_the_right_credentials_every_path_is_401(
    client: TestClient[object, object],
    reloads: Reloads,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    response = await client.request(method, path, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="aloudata-can-exporter"'
    assert response.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
    body = await response.text()
    assert METRIC not in body
    assert "aloudata_can" not in body
    if method != "HEAD":
        assert body == "Unauthorized\n"
    for name, value in HEADERS.items():
        assert response.headers[name] == value
    assert reloads.calls == 0  # no handler ran


@pytest.mark.parametrize(("method", "path"), PATHS)
async def test_the_right_credentials_reach_the_handler(
    client: TestClient[object, object], method: str, path: str
) -> None:
    response = await client.request(method, path, headers=RIGHT)
    assert response.status == 200
    assert "WWW-Authenticate" not in response.headers
    for name, value in HEADERS.items():
        assert response.headers[name] == value


async def test_metrics_with_the_right_credentials(client: TestClient[object, object]) -> None:
    response = await client.get("/metrics", headers=RIGHT)
    assert response.status == 200
    assert f'{METRIC}{{group="a",target="prod"}} 100800.0' in await response.text()


async def test_reload_runs_with_the_right_credentials(
    client: TestClient[object, object], reloads: Reloads
) -> None:
    response = await client.post("/-/reload", headers=RIGHT)
    assert response.status == 200
    assert reloads.calls == 1


async def test_unknown_path_with_the_right_credentials_is_404_with_headers(
    client: TestClient[object, object],
) -> None:
    response = await client.get("/no-such-page", headers=RIGHT)
    assert response.status == 404
    assert response.headers["X-Frame-Options"] == "deny"


async def test_headers_without_basic_auth(reloads: Reloads) -> None:
    app, _ = _web_app(WebConfig(headers={"X-Content-Type-Options": "nosniff"}), reloads)
    async with TestClient(TestServer(app.application(), host="127.0.0.1")) as test_client:
        response = await test_client.get("/metrics")
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert METRIC in await response.text()


async def test_checks_run_on_the_dedicated_thread(
    reloads: Reloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    checkpw = webauth._checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        threads.append(threading.current_thread().name)
        return checkpw(password, hashed)

    monkeypatch.setattr(webauth, "_checkpw", recording)
    app, _ = _web_app(WebConfig(users={"prometheus": SecretStr(HASH)}), reloads)
    async with TestClient(TestServer(app.application(), host="127.0.0.1")) as test_client:
        assert (await test_client.get("/healthz", headers=RIGHT)).status == 200
        assert (await test_client.get("/healthz", headers=basic_auth("x", "y"))).status == 401
    assert len(threads) == 2
    assert all(name.startswith("basic-auth") for name in threads)


async def test_app_cleanup_stops_the_executor(reloads: Reloads) -> None:
    app, security = _web_app(WebConfig(users={"prometheus": SecretStr(HASH)}), reloads)
    async with TestClient(TestServer(app.application(), host="127.0.0.1")) as test_client:
        assert (await test_client.get("/healthz", headers=RIGHT)).status == 200
    assert security.auth is not None
    with pytest.raises(RuntimeError, match="shutdown"):
        await security.auth.verify(basic_auth("prometheus", "other")["Authorization"])


class BlockingCheckpw:
    """Checks that wait until released; the real answer afterwards."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self._checkpw: Callable[[bytes, bytes], bool] = webauth._checkpw

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.started.release()
        self.release.wait(10)
        return self._checkpw(password, hashed)

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.acquire, True, 10)


@pytest.fixture
def blocking(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockingCheckpw]:
    checkpw = BlockingCheckpw()
    monkeypatch.setattr(webauth, "_checkpw", checkpw)
    yield checkpw
    checkpw.release.set()


async def test_busy_checks_get_429_at_once_and_cached_credentials_still_get_in(
    reloads: Reloads, blocking: BlockingCheckpw
) -> None:
    config = WebConfig(users={"prometheus": SecretStr(HASH)}, headers=HEADERS)
    app, security = _web_app(config, reloads)
    async with TestClient(TestServer(app.application(), host="127.0.0.1")) as test_client:
        blocking.release.set()
        assert (await test_client.get("/metrics", headers=RIGHT)).status == 200  # now cached
        blocking.release.clear()
        # Every request here comes from 127.0.0.1: two wrong passwords fill its slots.
        flood = [
            asyncio.create_task(
                test_client.get("/metrics", headers=basic_auth("prometheus", f"x{n}"))
            )
            for n in range(MAX_PENDING_CHECKS_PER_CLIENT)
        ]
        await blocking.wait_started()
        for _ in range(500):  # until the second one waits in the queue too
            if security.checks.pending == MAX_PENDING_CHECKS_PER_CLIENT:
                break
            await asyncio.sleep(0.01)
        refused = await test_client.get("/metrics", headers=basic_auth("prometheus", "guess"))
        assert refused.status == 429
        assert await refused.text() == CHECKS_BUSY
        assert "WWW-Authenticate" not in refused.headers
        assert refused.headers["X-Frame-Options"] == "deny"
        # Unknown users are refused alike: a full queue tells nothing about who exists.
        assert (await test_client.get("/", headers=basic_auth("mallory", "x"))).status == 429
        # The cached credentials need no check: answered while the flood's checks hang.
        scrape = await test_client.get("/metrics", headers=RIGHT)
        assert scrape.status == 200
        assert METRIC in await scrape.text()
        assert not any(request.done() for request in flood)
        blocking.release.set()
        assert [(await request).status for request in flood] == [401, 401]


# --- the verifier -------------------------------------------------------------------------------


class CountingCheckpw:
    """Wraps webauth._checkpw, recording the hash each call was made against."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self._checkpw: Callable[[bytes, bytes], bool] = webauth._checkpw

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.hashes.append(hashed)
        return self._checkpw(password, hashed)


@pytest.fixture
def checkpw(monkeypatch: pytest.MonkeyPatch) -> CountingCheckpw:
    counting = CountingCheckpw()
    monkeypatch.setattr(webauth, "_checkpw", counting)
    return counting


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def header(user: str, password: str) -> str:
    return basic_auth(user, password)["Authorization"]


async def test_success_is_cached(checkpw: CountingCheckpw) -> None:
    auth = BasicAuth({"prometheus": SecretStr(HASH)})
    assert await auth.verify(header("prometheus", PASSWORD))
    assert await auth.verify(header("prometheus", PASSWORD))
    assert len(checkpw.hashes) == 1


async def test_failure_is_never_cached(checkpw: CountingCheckpw) -> None:
    auth = BasicAuth({"prometheus": SecretStr(HASH)})
    for _ in range(3):
        assert not await auth.verify(header("prometheus", "wrong"))
    assert len(checkpw.hashes) == 3
    # A cached success does not let another password in.
    assert await auth.verify(header("prometheus", PASSWORD))
    assert not await auth.verify(header("prometheus", "wrong"))
    assert len(checkpw.hashes) == 5


async def test_cache_is_bounded_least_recently_used_first(checkpw: CountingCheckpw) -> None:
    users = {name: SecretStr(HASH) for name in ("a", "b", "c")}
    auth = BasicAuth(users, cache_size=2)
    for name in ("a", "b", "a", "c"):  # c evicts b, the least recently used
        assert await auth.verify(header(name, PASSWORD))
    assert len(checkpw.hashes) == 3
    assert await auth.verify(header("a", PASSWORD))
    assert await auth.verify(header("c", PASSWORD))
    assert len(checkpw.hashes) == 3
    assert await auth.verify(header("b", PASSWORD))
    assert len(checkpw.hashes) == 4


async def test_unknown_user_costs_a_check_against_a_dummy_hash_of_the_same_cost(
    checkpw: CountingCheckpw,
) -> None:
    cost_5 = bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=5))
    auth = BasicAuth({"prometheus": SecretStr(HASH), "other": SecretStr(cost_5.decode())})
    # The password of a real user does not help an unknown one.
    assert not await auth.verify(header("mallory", PASSWORD))
    assert not await auth.verify(header("mallory", PASSWORD))
    assert len(checkpw.hashes) == 2
    dummy = checkpw.hashes[0]
    assert dummy not in (HASH.encode(), cost_5)
    assert dummy[:7] == b"$2b$05$"  # the highest configured cost
    assert len(dummy) == 60


async def test_checkpw_runs_on_the_given_executor(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def recording(password: bytes, hashed: bytes) -> bool:
        threads.append(threading.get_ident())
        return False

    monkeypatch.setattr(webauth, "_checkpw", recording)
    auth = BasicAuth({"prometheus": SecretStr(HASH)}, checks=CheckQueue(executor))
    assert not await auth.verify(header("prometheus", PASSWORD))
    assert threads
    assert loop_thread not in threads


async def test_slow_checks_do_not_block_the_loop(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def blocking(password: bytes, hashed: bytes) -> bool:
        release.wait(10)
        return False

    monkeypatch.setattr(webauth, "_checkpw", blocking)
    auth = BasicAuth({"prometheus": SecretStr(HASH)}, checks=CheckQueue(executor))
    checks = [
        asyncio.create_task(auth.verify(header("prometheus", "x"), client=f"10.0.0.{n}"))
        for n in range(5)
    ]
    # The loop still runs other work while every check waits on the executor.
    await asyncio.sleep(0)
    assert not any(check.done() for check in checks)
    release.set()
    assert await asyncio.gather(*checks) == [False] * 5


async def test_non_ascii_user_and_password() -> None:
    hashed = bcrypt.hashpw("pässwörd".encode(), bcrypt.gensalt(rounds=4)).decode()
    auth = BasicAuth({"jörg": SecretStr(hashed)})
    assert await auth.verify(header("jörg", "pässwörd"))
    assert not await auth.verify(header("jorg", "pässwörd"))


async def test_long_passwords_follow_bcrypt(checkpw: CountingCheckpw) -> None:
    auth = BasicAuth({"prometheus": SecretStr(HASH)})
    assert not await auth.verify(header("prometheus", "x" * 200))
    long_password = "y" * 80
    hashed = bcrypt.hashpw(long_password[:72].encode(), bcrypt.gensalt(rounds=4)).decode()
    assert await BasicAuth({"p": SecretStr(hashed)}).verify(header("p", long_password))


def test_needs_a_user() -> None:
    with pytest.raises(ValueError, match="at least one user"):
        BasicAuth({})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("Basic", None),
        ("Basic ", None),
        ("Bearer dXNlcjpwYXNz", None),
        ("Basic dXNlcjpwYXNz", (b"user", b"pass")),
        ("basic   dXNlcjpwYXNz  ", (b"user", b"pass")),
        ("Basic dXNlcg==", None),  # "user", no colon
        ("Basic dXNlcjpwYTpzcw==", (b"user", b"pa:ss")),  # the first colon splits
        ("Basic OnBhc3M=", (b"", b"pass")),
        ("Basic dXNlcjpwYXNz!", None),
        ("Basic dXNlcjpwYXN", None),  # bad padding
        ("Basic ünïcode", None),
    ],
)
def test_parse_basic_authorization(value: str | None, expected: tuple[bytes, bytes] | None) -> None:
    assert parse_basic_authorization(value) == expected


async def test_a_full_queue_refuses_new_checks_but_not_cached_credentials(
    executor: ThreadPoolExecutor, blocking: BlockingCheckpw
) -> None:
    auth = BasicAuth({"prometheus": SecretStr(HASH)}, checks=CheckQueue(executor))
    blocking.release.set()
    assert await auth.verify(header("prometheus", PASSWORD), client="scraper")
    blocking.release.clear()
    pending = [
        asyncio.create_task(auth.verify(header("prometheus", f"x{n}"), client="flood"))
        for n in range(MAX_PENDING_CHECKS_PER_CLIENT)
    ]
    await blocking.wait_started()
    with pytest.raises(ChecksBusyError):
        await auth.verify(header("prometheus", "y"), client="flood")
    with pytest.raises(ChecksBusyError):
        await auth.verify(header("nobody", "y"), client="flood")
    assert await auth.verify(header("prometheus", PASSWORD), client="flood")
    blocking.release.set()
    assert await asyncio.gather(*pending) == [False, False]


async def test_another_client_still_gets_a_check_while_one_fills_its_slots(
    executor: ThreadPoolExecutor, blocking: BlockingCheckpw
) -> None:
    auth = BasicAuth({"prometheus": SecretStr(HASH)}, checks=CheckQueue(executor))
    pending = [
        asyncio.create_task(auth.verify(header("prometheus", f"x{n}"), client="flood"))
        for n in range(MAX_PENDING_CHECKS_PER_CLIENT)
    ]
    await blocking.wait_started()
    scraper = asyncio.create_task(auth.verify(header("prometheus", PASSWORD), client="scraper"))
    blocking.release.set()
    assert await scraper
    assert await asyncio.gather(*pending) == [False, False]
