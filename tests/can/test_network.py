"""CanClient on the daemon's transport (httpx over aiohttp) against real sockets on 127.0.0.1.

The rest of tests/client fakes CAN inside httpx's own transport; these build clients as the
daemon does: TCP and TLS, keep-alive, connections CAN closes, timeouts, header limits, and
what each failure of the network counts as.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from httpx_aiohttp import AiohttpTransport

from exporter.can import client as can_client
from exporter.can.client import MAX_ATTEMPTS, CanClient
from exporter.can.models import FailureReason
from exporter.can.transport import MAX_HEADER_BYTES, MAX_HEADERS, aiohttp_transport
from exporter.config.load import parse_config
from exporter.config.model import PlanKey, Target
from tests.helpers.pki import make_pki

OK = {
    "success": True,
    "code": "200",
    "data": {
        "hasNotReady": False,
        "latestDateTime": "2024-09-01 00:00:00",
        "latestRefreshTime": "2024-09-02 03:00:00",
    },
}
OK_BODY = json.dumps(OK).encode()
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _target(url: str, *, tls: str = "", timeout: str = "5s", max_concurrency: int = 5) -> Target:
    tls_line = f"\n    tls: {tls}" if tls else ""
    text = f"""
targets:
  - name: prod
    url: "{url}"
    tenant_id: "1"
    auth: {{type: APIKEY, value: network-test-key}}
    timezone: UTC
    timeout: {timeout}
    max_concurrency: {max_concurrency}{tls_line}
groups:
  - {{name: g, target: prod, plan_ids: [p1]}}
"""
    return parse_config(text, environ={}).targets["prod"]


def _answer(body: bytes = OK_BODY, *, head: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + head
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


class Can:
    """A minimal HTTP/1.1 CAN answering every request with ``OK``, counting connections.

    ``answers_per_connection``: after that many answers it reads the next request on the same
    connection and closes without answering (a server timing out a kept-alive connection just
    as the client reuses it). ``close_idle_after``: closes each connection that long after
    its first answer. ``delay``: seconds before each answer.
    """

    def __init__(
        self,
        *,
        answers_per_connection: int | None = None,
        close_idle_after: float | None = None,
        delay: float = 0.0,
    ) -> None:
        self.connections = 0
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._answers_per_connection = answers_per_connection
        self._close_idle_after = close_idle_after
        self._delay = delay

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                await _read_request(reader)
                self.requests += 1
                if answered == self._answers_per_connection:
                    return
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    await asyncio.sleep(self._delay)
                finally:
                    self.in_flight -= 1
                writer.write(_answer())
                await writer.drain()
                answered += 1
                if self._close_idle_after is not None:
                    await asyncio.sleep(self._close_idle_after)
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def _serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A server on a free port; yields its http(s):// base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    port: int = server.sockets[0].getsockname()[1]
    async with server:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        server.close()


def _replying(reply: bytes, *, then_wait: float = 0.0) -> Handler:
    """A handler that reads one request and sends ``reply`` (raw bytes), then waits."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(reply)
            await writer.drain()
            await asyncio.sleep(then_wait)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return handle


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Target], CanClient]]:
    clients: list[CanClient] = []

    def make(target: Target) -> CanClient:
        clients.append(CanClient(target))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


def test_the_daemon_sends_through_aiohttp() -> None:
    assert can_client.default_transport is aiohttp_transport
    transport = aiohttp_transport(_target("http://127.0.0.1:1"))
    assert isinstance(transport, AiohttpTransport)


# --- keep-alive ---------------------------------------------------------------------------------


async def test_sequential_polls_reuse_one_connection(
    client_for: Callable[[Target], CanClient],
) -> None:
    can = Can()
    async with _serve(can.handle) as url:
        client = client_for(_target(url))
        for _ in range(3):
            result = await client.poll(PlanKey.IDS, ["p1"], 5.0)
            assert result.error is None, result.error
            assert result.reading is not None
    assert (can.requests, can.connections) == (3, 1)


async def test_a_burst_opens_at_most_max_concurrency_connections_and_the_next_none(
    client_for: Callable[[Target], CanClient],
) -> None:
    can = Can(delay=0.02)
    async with _serve(can.handle) as url:
        client = client_for(_target(url, max_concurrency=5))
        for _ in range(2):  # two cycles of 20 polls
            results = await asyncio.gather(
                *(client.poll(PlanKey.IDS, [f"p{n}"], 5.0) for n in range(20))
            )
            assert all(result.error is None for result in results)
    assert can.requests == 40
    assert can.peak_in_flight == 5
    assert can.connections == 5  # all opened by the first cycle, kept for the second


async def test_a_connection_closed_while_idle_is_not_reused(
    client_for: Callable[[Target], CanClient],
) -> None:
    can = Can(close_idle_after=0)
    async with _serve(can.handle) as url:
        client = client_for(_target(url))
        assert (await client.poll(PlanKey.IDS, ["p1"], 5.0)).error is None
        await asyncio.sleep(0.1)  # CAN has closed; the client has seen it
        second = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    assert second.error is None, second.error
    assert client.requests_sent == 2  # no try on the dead connection
    assert (can.requests, can.connections) == (2, 2)


async def test_a_connection_closed_as_it_is_reused_is_retried(
    client_for: Callable[[Target], CanClient],
) -> None:
    can = Can(answers_per_connection=1)
    async with _serve(can.handle) as url:
        client = client_for(_target(url))
        assert (await client.poll(PlanKey.IDS, ["p1"], 5.0)).error is None
        second = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    assert second.error is None, second.error
    # The kept-alive connection took the request and closed; the retry opened a new one.
    assert client.requests_sent == 3
    assert (can.requests, can.connections) == (3, 2)


async def test_a_408_sent_on_an_idle_connection_costs_one_more_try(
    client_for: Callable[[Target], CanClient],
) -> None:
    """A proxy may answer an idle kept-alive connection with "408 Request Timeout" and close
    it. aiohttp reads that as the next request's answer: the 408 is retried, on a new
    connection, and the poll succeeds."""
    connections = 0

    async def answer_then_408(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await _read_request(reader)
            writer.write(_answer())
            await asyncio.sleep(0.05)
            writer.write(
                b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
            )
            await writer.drain()
            await asyncio.sleep(0.5)  # not closed yet when the next poll comes
        except ConnectionError:
            pass
        finally:
            writer.close()

    async with _serve(answer_then_408) as url:
        client = client_for(_target(url))
        assert (await client.poll(PlanKey.IDS, ["p1"], 5.0)).error is None
        await asyncio.sleep(0.15)  # the 408 has arrived
        second = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    assert second.error is None, second.error
    assert client.requests_sent == 3
    assert connections == 2


# --- TLS ---------------------------------------------------------------------------------------


async def test_tls_with_the_target_ca_file(
    tmp_path: Path, client_for: Callable[[Target], CanClient]
) -> None:
    pki = make_pki(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pki.server_cert, pki.server_key)
    can = Can()
    async with _serve(can.handle, server_context) as url:
        trusted = client_for(_target(url, tls=f"{{ca_file: {pki.server_ca_file}}}"))
        ok = await trusted.poll(PlanKey.IDS, ["p1"], 5.0)
        skipping = client_for(_target(url, tls="{insecure_skip_verify: true}"))
        skipped = await skipping.poll(PlanKey.IDS, ["p1"], 5.0)
        untrusted = client_for(_target(url))
        refused = await untrusted.poll(PlanKey.IDS, ["p1"], 5.0)
    assert ok.error is None, ok.error
    assert skipped.error is None, skipped.error
    assert refused.error is not None
    assert refused.error.reason is FailureReason.CONNECTION
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error.message


# --- time --------------------------------------------------------------------------------------


async def test_a_silent_can_times_out_within_the_poll_timeout(
    client_for: Callable[[Target], CanClient],
) -> None:
    can = Can(delay=3600)
    async with _serve(can.handle) as url:
        client = client_for(_target(url))
        started = time.monotonic()
        result = await client.poll(PlanKey.IDS, ["p1"], 0.3)
        elapsed = time.monotonic() - started
    assert result.error is not None
    assert result.error.reason is FailureReason.TIMEOUT
    assert client.requests_sent == 1  # a timeout is not retried
    assert 0.25 <= elapsed < 2


async def test_a_trickling_can_cannot_hold_a_poll_past_its_timeout(
    client_for: Callable[[Target], CanClient],
) -> None:
    """Each byte comes well within any per-read timeout; the whole answer never does."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            for _ in range(1000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async with _serve(trickle) as url:
        client = client_for(_target(url))
        started = time.monotonic()
        result = await client.poll(PlanKey.IDS, ["p1"], 0.5)
        elapsed = time.monotonic() - started
    assert result.error is not None
    assert result.error.reason is FailureReason.TIMEOUT
    assert result.error.message == "no answer within 0.5s"
    assert elapsed < 2


# --- what each failure counts as -----------------------------------------------------------------


async def test_nothing_listening_is_a_connection_failure(
    client_for: Callable[[Target], CanClient],
) -> None:
    async with _serve(Can().handle) as url:
        closed = url  # free again once the server is gone
    client = client_for(_target(closed))
    result = await client.poll(PlanKey.IDS, ["p1"], 2.0)
    assert result.error is not None
    assert result.error.reason is FailureReason.CONNECTION
    assert result.error.message.startswith("ClientConnectorError: ")
    assert "Connect call failed" in result.error.message
    assert client.requests_sent == MAX_ATTEMPTS


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    # SO_LINGER on with a zero timeout: closing sends RST instead of FIN.
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.parametrize(
    ("reply", "start"),
    [
        pytest.param(
            b"", "ServerDisconnectedError: Server disconnected", id="closed-without-answer"
        ),
        pytest.param(
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "ClientResponseError: Bad status line", id="not-http"
        ),
        pytest.param(
            _answer()[:-10],
            "ClientPayloadError: Response payload is not completed",
            id="short-body",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            ("ClientResponseError", "ClientPayloadError"),
            id="bad-chunk",
        ),
        pytest.param(
            _answer(head=b"x-big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n"),
            "ClientResponseError: Got more than 8190 bytes",
            id="header-value-over-the-limit",
        ),
        pytest.param(
            b"HTTP/1.1 200 " + b"O" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n",
            "ClientResponseError: Got more than 8190 bytes",
            id="status-line-over-the-limit",
        ),
        pytest.param(
            _answer(head=b"".join(b"x-%d: 1\r\n" % n for n in range(MAX_HEADERS + 1))),
            "ClientResponseError: Too many headers",
            id="too-many-headers",
        ),
    ],
)
async def test_broken_answers_are_connection_failures_and_retried(
    client_for: Callable[[Target], CanClient], reply: bytes, start: str | tuple[str, ...]
) -> None:
    """What is not HTTP aiohttp reads counts as ``connection`` (as it did before aiohttp)."""
    async with _serve(_replying(reply)) as url:
        client = client_for(_target(url))
        started = time.monotonic()
        result = await client.poll(PlanKey.IDS, ["p1"], 5.0)
        elapsed = time.monotonic() - started
    assert result.error is not None
    assert result.error.reason is FailureReason.CONNECTION, result.error.message
    assert result.error.message.startswith(start), result.error.message
    assert "\n" not in result.error.message
    assert len(result.error.message) < 400
    assert client.requests_sent == MAX_ATTEMPTS
    assert elapsed < 3  # refused as it came, not after the poll's timeout


async def test_a_reset_connection_is_a_connection_failure(
    client_for: Callable[[Target], CanClient],
) -> None:
    async with _serve(_reset) as url:
        client = client_for(_target(url))
        result = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    assert result.error is not None
    assert result.error.reason is FailureReason.CONNECTION, result.error.message
    assert client.requests_sent == MAX_ATTEMPTS


async def test_a_probe_without_retry_tries_once(
    client_for: Callable[[Target], CanClient],
) -> None:
    async with _serve(_reset) as url:
        client = client_for(_target(url))
        result = await client.poll(PlanKey.IDS, ["p1"], 5.0, retry=False)
    assert result.error is not None
    assert result.error.reason is FailureReason.CONNECTION
    assert client.requests_sent == 1


async def test_headers_at_the_limits_are_read(client_for: Callable[[Target], CanClient]) -> None:
    big = b"x-big: " + b"a" * MAX_HEADER_BYTES + b"\r\n"
    # _answer's own two (content-type, content-length) count too.
    many = b"".join(b"x-%d: 1\r\n" % n for n in range(MAX_HEADERS - 3))
    async with _serve(_replying(_answer(head=big + many))) as url:
        result = await client_for(_target(url)).poll(PlanKey.IDS, ["p1"], 5.0)
    assert result.error is None, result.error


async def test_cookies_can_sets_are_neither_kept_nor_sent_back(
    client_for: Callable[[Target], CanClient],
) -> None:
    requests: list[bytes] = []

    async def set_cookie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                requests.append(await _read_request(reader))
                # A new name every time: a jar that kept them would grow with every poll.
                cookie = b"set-cookie: session%d=abc; Path=/\r\n" % len(requests)
                writer.write(_answer(head=cookie))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async with _serve(set_cookie) as url:
        client = client_for(_target(url))
        for _ in range(3):
            assert (await client.poll(PlanKey.IDS, ["p1"], 5.0)).error is None
    assert len(requests) == 3
    assert not any(b"\r\ncookie:" in request.lower() for request in requests)


async def test_a_redirect_is_not_followed(client_for: Callable[[Target], CanClient]) -> None:
    redirect = (
        b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/elsewhere\r\ncontent-length: 0\r\n\r\n"
    )
    async with _serve(_replying(redirect)) as url:
        client = client_for(_target(url))
        result = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    assert result.error is not None
    assert result.error.reason is FailureReason.HTTP_STATUS
    assert result.error.message == "HTTP 302"
    assert client.requests_sent == 1


async def test_what_the_request_carries(client_for: Callable[[Target], CanClient]) -> None:
    requests: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await _read_request(reader))
        writer.write(_answer())
        await writer.drain()
        writer.close()

    async with _serve(record) as url:
        assert (await client_for(_target(url)).poll(PlanKey.NAMES, ["销售"], 5.0)).error is None
    head, _, body = requests[0].partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    assert lines[0] == "post /anymetrics/api/v1/accelerate/latesttime http/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["tenant-id"] == "1"
    assert headers["auth-type"] == "apikey"
    assert headers["auth-value"] == "network-test-key"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("aloudata-can-exporter/")
    assert json.loads(body) == {"planNameList": ["销售"]}
