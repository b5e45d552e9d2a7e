"""exporter.can.pool against a scripted asyncio server on 127.0.0.1.

tests/client/test_network.py goes through CanClient for TCP, TLS and timeouts, and the fault
matrix (tests/faults) covers hangs, trickles, resets and oversized bodies. These drive the pool
itself: the connection limit, keep-alive and when a connection must not be reused, response
framings (chunked, read until close, 1xx first), and that no way of abandoning a request
leaks a slot or puts a half-read connection back.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import httpcore
import httpx
import pytest

from exporter.can.pool import ConnectionPool

# A connection dropped without being closed warns when collected: make that a failure.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")

# Every wait on the server is bounded: a broken pool fails the test instead of hanging it.
WAIT_SECONDS = 2.0
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
CAN_OK = (
    b'{"success": true, "code": "200", "data": {"hasNotReady": false,'
    b' "latestDateTime": "2024-09-01 00:00:00", "latestRefreshTime": "2024-09-02 03:00:00"}}'
)

# How the server answers its n-th request (1-based, over all connections). Returns whether
# to keep the connection open for more requests.
Respond = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


async def answer_ok(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(OK)
    await writer.drain()
    return True


async def hold_until_hung_up(reader: asyncio.StreamReader) -> bool:
    """Answer nothing until the client closes the connection; then close ours."""
    await reader.read(1)
    return False


async def hold_the_first_then_answer(
    n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """Leave the first request unanswered until the client hangs up; answer the others."""
    if n == 1:
        return await hold_until_hung_up(reader)
    return await answer_ok(n, reader, writer)


class Server:
    """An HTTP/1.1 server that counts connections and requests and answers as told."""

    def __init__(self, respond: Respond = answer_ok) -> None:
        self.respond = respond
        self.connections = 0  # accepted, in all
        self.open = 0  # open right now
        self.max_open = 0
        self.hangups = 0  # connections the client closed (EOF seen)
        self.requests = 0  # read whole
        self.answering = 0  # requests read and not answered yet
        self.max_answering = 0
        self.port = 0
        self._changed = asyncio.Condition()
        self._writers: set[asyncio.StreamWriter] = set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_SECONDS), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        await self._notify()
        try:
            while await self._read_request(reader):
                self.requests += 1
                self.answering += 1
                self.max_answering = max(self.max_answering, self.answering)
                await self._notify()
                try:
                    keep_open = await self.respond(self.requests, reader, writer)
                finally:
                    self.answering -= 1
                if not keep_open:
                    break
        except ConnectionError:
            pass
        finally:
            # Before any await: a connection this server closed is never counted.
            self.hangups += reader.at_eof()
            self.open -= 1
            writer.close()
            self._writers.discard(writer)
            await self._notify()

    async def _read_request(self, reader: asyncio.StreamReader) -> bool:
        """Read one request whole; False when the client closed the connection instead."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        return True

    async def stop(self) -> None:
        """Close every connection and wait for the handlers to see it (none is cancelled)."""
        for writer in list(self._writers):
            writer.close()
        await self.until(lambda: self.open == 0)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Respond], Awaitable[Server]]]:
    started: list[tuple[Server, asyncio.Server]] = []

    async def start(respond: Respond = answer_ok) -> Server:
        server = Server(respond)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listener.sockets[0].getsockname()[1]
        started.append((server, listener))
        return server

    yield start
    for server, listener in started:
        listener.close()
        await listener.wait_closed()
        await server.stop()


@pytest.fixture
async def make_pool() -> AsyncIterator[Callable[..., ConnectionPool]]:
    pools: list[ConnectionPool] = []

    def make(max_connections: int = 1, keepalive_expiry: float = 5.0) -> ConnectionPool:
        pools.append(
            ConnectionPool(ssl.create_default_context(), max_connections, keepalive_expiry)
        )
        return pools[-1]

    yield make
    for pool in pools:
        await pool.aclose()


def _request(port: int, *, pool_timeout: float | None = WAIT_SECONDS) -> httpcore.Request:
    host = f"127.0.0.1:{port}".encode()
    return httpcore.Request(
        "POST",
        f"http://127.0.0.1:{port}/anymetrics/api/v1/accelerate/latestTime",
        headers=[(b"Host", host), (b"Content-Length", b"2")],
        content=httpx.ByteStream(b"{}"),
        extensions={
            "timeout": {
                "connect": WAIT_SECONDS,
                "read": WAIT_SECONDS,
                "write": WAIT_SECONDS,
                "pool": pool_timeout,
            }
        },
    )


async def _fetch(
    pool: ConnectionPool, port: int, *, pool_timeout: float | None = WAIT_SECONDS
) -> tuple[int, bytes]:
    response = await pool.handle_async_request(_request(port, pool_timeout=pool_timeout))
    try:
        return response.status, await response.aread()
    finally:
        await response.aclose()


# --- the connection limit -------------------------------------------------------------------


async def test_five_concurrent_requests_share_two_connections(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    async def slow_ok(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.1)
        return await answer_ok(n, reader, writer)

    server = await serve(slow_ok)
    pool = make_pool(max_connections=2)
    results = await asyncio.gather(*(_fetch(pool, server.port) for _ in range(5)))
    assert results == [(200, b"{}")] * 5
    assert (server.requests, server.connections, server.max_open) == (5, 2, 2)
    assert server.max_answering == 2


async def test_a_request_waiting_past_the_pool_timeout_gets_pool_timeout(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    release = asyncio.Event()

    async def held_ok(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n <= 2:
            await release.wait()
        return await answer_ok(n, reader, writer)

    server = await serve(held_ok)
    pool = make_pool(max_connections=2)
    busy = [asyncio.create_task(_fetch(pool, server.port)) for _ in range(2)]
    await server.until(lambda: server.answering == 2)
    try:
        with pytest.raises(httpcore.PoolTimeout):
            await _fetch(pool, server.port, pool_timeout=0.05)
    finally:
        release.set()
    assert await asyncio.gather(*busy) == [(200, b"{}")] * 2
    # The request that gave up holds no slot: two more run at once on the same two connections.
    assert (
        await asyncio.gather(*(_fetch(pool, server.port) for _ in range(2))) == [(200, b"{}")] * 2
    )
    assert (server.requests, server.connections) == (4, 2)


# --- keep-alive and when not to reuse -------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    server = await serve(answer_ok)
    pool = make_pool(max_connections=2)
    for _ in range(3):
        assert await _fetch(pool, server.port) == (200, b"{}")
    assert (server.requests, server.connections, server.hangups) == (3, 1, 0)


async def test_an_idle_connection_past_the_keepalive_expiry_is_replaced(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    server = await serve(answer_ok)  # keeps every connection open
    pool = make_pool(max_connections=1, keepalive_expiry=0.1)
    assert await _fetch(pool, server.port) == (200, b"{}")
    assert await _fetch(pool, server.port) == (200, b"{}")  # well within the expiry
    assert server.connections == 1
    await asyncio.sleep(0.2)
    assert await _fetch(pool, server.port) == (200, b"{}")
    assert (server.requests, server.connections) == (3, 2)
    await server.until(lambda: server.hangups == 1)  # the expired one was closed, not dropped


@pytest.mark.parametrize(
    ("answer", "body", "server_closes"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
            b"{}",
            False,  # the pool must close it even though the server would go on
            id="connection-close",
        ),
        pytest.param(
            b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n" + CAN_OK,
            CAN_OK,
            True,  # the body ends where the connection does
            id="http1.0-until-close",
        ),
    ],
)
async def test_a_response_that_ends_the_connection_is_not_reused(
    serve: Callable[[Respond], Awaitable[Server]],
    make_pool: Callable[..., ConnectionPool],
    answer: bytes,
    body: bytes,
    server_closes: bool,
) -> None:
    async def respond(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n > 1:
            return await answer_ok(n, reader, writer)
        writer.write(answer)
        await writer.drain()
        return not server_closes

    server = await serve(respond)
    pool = make_pool(max_connections=1)
    assert await _fetch(pool, server.port) == (200, body)
    assert await _fetch(pool, server.port) == (200, b"{}")
    assert (server.requests, server.connections) == (2, 2)
    if not server_closes:
        await server.until(lambda: server.hangups == 1)


async def test_a_chunked_response_is_read_whole_and_the_connection_reused(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    async def chunked(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for start in range(0, len(CAN_OK), 40):
            piece = CAN_OK[start : start + 40]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)  # separate reads on the client, not one buffer
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    server = await serve(chunked)
    pool = make_pool(max_connections=1)
    assert await _fetch(pool, server.port) == (200, CAN_OK)
    assert await _fetch(pool, server.port) == (200, CAN_OK)
    assert (server.requests, server.connections) == (2, 1)


@pytest.mark.parametrize(
    "informational",
    [
        pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n", id="100"),
        pytest.param(
            b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n", id="103"
        ),
        pytest.param(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n", id="two"),
    ],
)
async def test_informational_responses_before_the_answer_are_skipped(
    serve: Callable[[Respond], Awaitable[Server]],
    make_pool: Callable[..., ConnectionPool],
    informational: bytes,
) -> None:
    async def respond(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(informational)
        await writer.drain()
        await asyncio.sleep(0.01)  # the 1xx on its own read
        writer.write(b"HTTP/1.1 418 I'm a teapot\r\ncontent-length: 5\r\n\r\nshort")
        await writer.drain()
        return True

    server = await serve(respond)
    pool = make_pool(max_connections=1)
    assert await _fetch(pool, server.port) == (418, b"short")
    assert await _fetch(pool, server.port) == (418, b"short")
    assert (server.requests, server.connections) == (2, 1)


async def test_bytes_sent_right_after_a_response_do_not_answer_the_next_request(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    """As test_network's unasked 408, but sent in the same write as the first answer: the
    pool reads both at once, so they sit in h11's buffer, not the stream's."""

    async def respond(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(OK + b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            return True
        return await answer_ok(n, reader, writer)

    server = await serve(respond)
    pool = make_pool(max_connections=1)
    assert await _fetch(pool, server.port) == (200, b"{}")
    assert await _fetch(pool, server.port) == (200, b"{}")
    assert server.connections == 2


# --- abandoned requests leak no slot --------------------------------------------------------


async def _abandoned_then_next(
    server: Server, pool: ConnectionPool, abandon: Callable[[], Awaitable[None]]
) -> None:
    """Abandon a request, then check the single slot serves the next one on a new connection."""
    await abandon()
    # pool_timeout=0.05: a leaked slot would be a PoolTimeout, not a slow success.
    assert await _fetch(pool, server.port, pool_timeout=0.05) == (200, b"{}")
    assert server.connections == 2
    await server.until(lambda: server.hangups == 1)  # the abandoned connection was closed


async def test_a_request_cancelled_while_waiting_for_the_answer_frees_its_slot(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    server = await serve(hold_the_first_then_answer)
    pool = make_pool(max_connections=1)

    async def abandon() -> None:
        task = asyncio.create_task(_fetch(pool, server.port))
        await server.until(lambda: server.answering == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    await _abandoned_then_next(server, pool, abandon)


async def test_a_request_timed_out_by_the_caller_frees_its_slot(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    server = await serve(hold_the_first_then_answer)
    pool = make_pool(max_connections=1)

    async def abandon() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await _fetch(pool, server.port)
        assert server.requests == 1  # it was waiting for the answer, not for the connection

    await _abandoned_then_next(server, pool, abandon)


async def test_a_body_cancelled_half_read_frees_its_slot(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    async def respond(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n > 1:
            return await answer_ok(n, reader, writer)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}")
        await writer.drain()
        return await hold_until_hung_up(reader)

    server = await serve(respond)
    pool = make_pool(max_connections=1)

    async def abandon() -> None:
        response = await pool.handle_async_request(_request(server.port))
        first = asyncio.Event()

        async def read() -> None:
            # No aclose (test_a_body_closed_unread_frees_its_slot has it): the body's own
            # iterator gives the connection back when a read in it is cancelled.
            async for _ in response.aiter_stream():
                first.set()

        task = asyncio.create_task(read())
        async with asyncio.timeout(WAIT_SECONDS):
            await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    await _abandoned_then_next(server, pool, abandon)


async def test_a_body_closed_unread_frees_its_slot(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    server = await serve(answer_ok)  # a whole answer: the pool could not know it is done
    pool = make_pool(max_connections=1)

    async def abandon() -> None:
        response = await pool.handle_async_request(_request(server.port))
        assert response.status == 200
        await response.aclose()

    await _abandoned_then_next(server, pool, abandon)


async def test_a_request_whose_server_hangs_up_unanswered_frees_its_slot(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    async def respond(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            return False  # read the request, close without a word
        return await answer_ok(n, reader, writer)

    server = await serve(respond)
    pool = make_pool(max_connections=1)
    with pytest.raises(httpcore.RemoteProtocolError, match="without an answer"):
        await _fetch(pool, server.port)
    assert await _fetch(pool, server.port, pool_timeout=0.05) == (200, b"{}")
    assert (server.requests, server.connections) == (2, 2)


# --- closing the pool -----------------------------------------------------------------------


async def test_closing_the_pool_closes_a_response_in_flight_and_refuses_new_requests(
    serve: Callable[[Respond], Awaitable[Server]], make_pool: Callable[..., ConnectionPool]
) -> None:
    server = await serve(answer_ok)
    pool = make_pool(max_connections=2)
    assert await _fetch(pool, server.port) == (200, b"{}")  # leaves one idle connection
    response = await pool.handle_async_request(_request(server.port))  # on that connection
    await pool.aclose()
    assert await response.aread() == b"{}"
    await response.aclose()
    # A kept-alive connection would stay open; the server sees it closed instead.
    await server.until(lambda: server.hangups == 1)
    assert (server.requests, server.connections) == (2, 1)
    with pytest.raises(RuntimeError, match="closed"):
        await pool.handle_async_request(_request(server.port))
