"""Kept-alive HTTP/1.1 connections to one CAN target, under httpx's transport.

httpx's ``AsyncHTTPTransport`` hands each request to a connection pool. httpcore's pool was
most of a poll's CPU in the scale benchmark: per request it scans every connection, takes
anyio locks, opens shielded cancel scopes and traces each phase, and its pools grow costlier
with every connection they hold. This pool does only what the CAN client needs: idle
connections on a stack (the most recently used first, so the rest can expire), a semaphore
for the connection limit, asyncio streams for I/O, and h11 for the protocol itself.

It speaks httpcore's interface (``httpcore.Request`` in, ``httpcore.Response`` out, httpcore's
exceptions), so httpx maps its errors as usual and pytest-httpx still fakes CAN above it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, cast

import h11
import httpcore

# What httpcore reads at a time and allows for a response's head.
_READ_CHUNK = 64 * 1024
_MAX_HEAD_BYTES = 100 * 1024

_Origin = tuple[bytes, bytes, int]


class Connection:
    """One TCP (or TLS) connection and its HTTP/1.1 state."""

    __slots__ = ("_reader", "_writer", "idle_since", "protocol")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD_BYTES)
        self.idle_since = 0.0

    def reusable(self, now: float, expiry: float) -> bool:
        """Whether an idle connection may carry the next request.

        Anything CAN sent while the connection was idle means it closed it or answered
        something unasked (a proxy's "408 Request Timeout" before closing, say): asyncio has
        already read that into the reader's buffer, which has no public size.
        """
        unread = bool(getattr(self._reader, "_buffer", b""))
        closed = self._reader.at_eof() or self._writer.transport.is_closing()
        return not (unread or closed or now - self.idle_since > expiry)

    async def send(self, request: httpcore.Request, timeout: float | None) -> None:
        protocol = self.protocol
        try:
            head = h11.Request(
                method=request.method, target=request.url.target, headers=request.headers
            )
            chunks = [protocol.send(head) or b""]
            async for chunk in cast(AsyncIterable[bytes], request.stream):
                chunks.append(protocol.send(h11.Data(data=chunk)) or b"")
            chunks.append(protocol.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from exc
        try:
            self._writer.writelines(chunks)
            # A request is a few hundred bytes: the kernel takes it at once and this returns
            # without waiting, unless the socket's buffer is full.
            if self._writer.transport.get_write_buffer_size():
                async with asyncio.timeout(timeout):
                    await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing to CAN") from None
        except OSError:
            # CAN may have answered and closed before reading the request (a 413, a 503):
            # read that answer instead of failing on the write, as httpcore does.
            pass

    async def next_event(self, timeout: float | None) -> Any:
        """The next h11 event from CAN, reading from the socket as it needs."""
        protocol = self.protocol
        while True:
            try:
                event = protocol.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpcore.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            data = await self._read(timeout)
            if not data and protocol.their_state is h11.SEND_RESPONSE:
                raise httpcore.RemoteProtocolError("CAN closed the connection without an answer")
            protocol.receive_data(data)

    async def _read(self, timeout: float | None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(_READ_CHUNK)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading from CAN") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        # Not waiting for the close to finish: over TLS that waits for the peer's close_notify,
        # up to half a minute from a CAN that never sends it.
        self._writer.close()


class ConnectionPool:
    """At most ``max_connections`` connections, kept alive for ``keepalive_expiry`` seconds.

    Connections are opened as requests need them, to whatever origin a request names; one
    target's requests all go to one origin.
    """

    def __init__(
        self, ssl_context: ssl.SSLContext, max_connections: int, keepalive_expiry: float
    ) -> None:
        self._ssl_context = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[_Origin, list[Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        timeouts = request.extensions.get("timeout", {})
        await self._take_slot(timeouts.get("pool"))
        if self._closed:  # closed while this request waited for a connection
            self._slots.release()
            raise RuntimeError("the connection pool is closed")
        connection: Connection | None = None
        try:
            connection = self._idle_connection(_origin(request.url))
            if connection is None:
                connection = await self._connect(request.url, timeouts.get("connect"))
            await connection.send(request, timeouts.get("write"))
            read_timeout = timeouts.get("read")
            event = await connection.next_event(read_timeout)
            while isinstance(event, h11.InformationalResponse):  # 1xx: the answer follows
                event = await connection.next_event(read_timeout)
            if not isinstance(event, h11.Response):
                raise _unexpected(event)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        body = ResponseBody(self, connection, _origin(request.url), read_timeout)
        return httpcore.Response(
            event.status_code,
            headers=event.headers.raw_items(),
            content=body,
            extensions={
                "http_version": b"HTTP/" + event.http_version,
                "reason_phrase": event.reason,
            },
        )

    async def _take_slot(self, timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # returns at once: no suspension, no timer
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpcore.PoolTimeout("no free connection to CAN in time") from None

    def _idle_connection(self, origin: _Origin) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.reusable(now, self._keepalive_expiry):
                return connection
            connection.close()
        return None

    async def _connect(self, url: httpcore.URL, timeout: float | None) -> Connection:
        host = url.host.decode("ascii")
        port = url.port or (443 if url.scheme == b"https" else 80)
        tls = self._ssl_context if url.scheme == b"https" else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                    limit=_READ_CHUNK,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection to {host}:{port} in time") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return Connection(reader, writer)

    def release(self, connection: Connection, origin: _Origin) -> None:
        """Take back a connection whose response is over: kept when both sides may go on."""
        protocol = connection.protocol
        if (
            not self._closed
            and protocol.our_state is h11.DONE
            and protocol.their_state is h11.DONE
            # Bytes that came after the answer (a proxy's 408, a body longer than its
            # Content-Length) would be read as the next request's answer.
            and protocol.trailing_data == (b"", False)
        ):
            protocol.start_next_cycle()
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(connection)
        else:
            connection.close()
        self._slots.release()

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


class ResponseBody:
    """A response's body as httpcore streams it; closing it gives the connection back."""

    __slots__ = ("_connection", "_origin", "_pool", "_timeout")

    def __init__(
        self, pool: ConnectionPool, connection: Connection, origin: _Origin, timeout: float | None
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._origin = origin
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpcore.ReadError("the response is closed")
        try:
            while True:
                event = await connection.next_event(self._timeout)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return
                else:
                    raise _unexpected(event)
        except BaseException:
            self._give_back()  # not awaited: this may run as the generator is being closed
            raise

    async def aclose(self) -> None:
        self._give_back()

    def _give_back(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection, self._origin)


def _origin(url: httpcore.URL) -> _Origin:
    return (url.scheme, url.host, url.port or 0)


def _unexpected(event: object) -> httpcore.RemoteProtocolError:
    return httpcore.RemoteProtocolError(f"unexpected {type(event).__name__} from CAN")
