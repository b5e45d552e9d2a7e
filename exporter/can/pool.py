"""Kept-alive HTTP/1.1 connections to one CAN target, under httpx's transport.

httpx's ``AsyncHTTPTransport`` hands each request to a connection pool. httpcore's pool was
most of a poll's CPU in the scale benchmark: per request it scans every connection, takes
anyio locks, opens shielded cancel scopes and traces each phase, and its pools grow costlier
with every connection they hold; then h11's state machine took about a quarter of what was
left. This pool does only what the CAN client needs: idle connections on a stack (the most
recently used first, so the rest can expire), a semaphore for the connection limit, asyncio
streams for I/O, and exporter.can.http11 for the protocol.

It speaks httpcore's interface (``httpcore.Request`` in, ``httpcore.Response`` out, httpcore's
exceptions), so httpx maps its errors as usual and pytest-httpx still fakes CAN above it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from typing import cast

import httpcore

from exporter.can.http11 import (
    Framing,
    ProtocolError,
    ResponseHead,
    parse_chunk_size,
    parse_field,
    parse_head,
    request_bytes,
)

# What httpcore reads at a time; also the most a response head or a chunk-size line may take.
_READ_CHUNK = 64 * 1024

_Origin = tuple[bytes, bytes, int]


class Connection:
    """One TCP (or TLS) connection."""

    __slots__ = ("_reader", "_writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.idle_since = 0.0

    def reusable(self, now: float, expiry: float) -> bool:
        """Whether an idle connection may carry the next request.

        Anything CAN sent while the connection was idle means it closed it or answered
        something unasked (a proxy's "408 Request Timeout" before closing, say): asyncio has
        already read that into the reader's buffer, which has no public size.
        """
        return not (self.has_unread() or self.closed() or now - self.idle_since > expiry)

    def has_unread(self) -> bool:
        return bool(getattr(self._reader, "_buffer", b""))

    def closed(self) -> bool:
        return self._reader.at_eof() or self._writer.transport.is_closing()

    async def send(self, request: httpcore.Request, timeout: float | None) -> None:
        body = b"".join([chunk async for chunk in cast(AsyncIterable[bytes], request.stream)])
        try:
            data = request_bytes(request.method, request.url.target, request.headers, body)
        except ProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from None
        try:
            self._writer.write(data)
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

    async def receive_head(self, timeout: float | None) -> ResponseHead:
        """The final response's head, after any 1xx ones."""
        while True:
            data = await self._read_until(b"\r\n\r\n", timeout, "response head")
            with _from_can():
                head = parse_head(data)
            if head.status >= 200:
                return head

    async def body(self, head: ResponseHead, timeout: float | None) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, framed as ``head`` says."""
        if head.framing is Framing.LENGTH:
            remaining = head.content_length
            while remaining:
                data = await self._read(min(remaining, _READ_CHUNK), timeout)
                if not data:
                    raise httpcore.RemoteProtocolError(
                        f"CAN closed the connection {remaining} bytes short of Content-Length"
                    )
                remaining -= len(data)
                yield data
        elif head.framing is Framing.CHUNKED:
            while size := await self._chunk_size(timeout):
                while size:
                    data = await self._read(min(size, _READ_CHUNK), timeout)
                    if not data:
                        raise httpcore.RemoteProtocolError("CAN closed the connection mid-chunk")
                    size -= len(data)
                    yield data
                if await self._read_until(b"\r\n", timeout, "chunk end") != b"\r\n":
                    raise httpcore.RemoteProtocolError("chunk longer than its size")
            # Trailer fields, if any, up to the empty line: checked, then dropped. A line that
            # is not a field means the chunk sizes did not match the data.
            while (line := await self._read_until(b"\r\n", timeout, "trailer")) != b"\r\n":
                with _from_can("in the trailer: "):
                    parse_field(line[:-2])
        elif head.framing is Framing.UNTIL_CLOSE:
            while data := await self._read(_READ_CHUNK, timeout):
                yield data

    async def _chunk_size(self, timeout: float | None) -> int:
        line = await self._read_until(b"\r\n", timeout, "chunk size")
        with _from_can():
            return parse_chunk_size(line[:-2])

    async def _read(self, max_bytes: int, timeout: float | None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading from CAN") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def _read_until(self, separator: bytes, timeout: float | None, what: str) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.readuntil(separator)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading from CAN") from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and what == "response head":
                raise httpcore.RemoteProtocolError(
                    "CAN closed the connection without an answer"
                ) from None
            raise httpcore.RemoteProtocolError(f"CAN closed the connection in the {what}") from None
        except asyncio.LimitOverrunError:
            raise httpcore.RemoteProtocolError(f"{what} over {_READ_CHUNK} bytes") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        # Not waiting for the close to finish: over TLS that waits for the peer's close_notify,
        # up to half a minute from a CAN that never sends it.
        self._writer.close()


@contextmanager
def _from_can(where: str = "") -> Iterator[None]:
    """What CAN sent is not HTTP this client reads: httpcore's error for that, as httpx maps."""
    try:
        yield
    except ProtocolError as exc:
        raise httpcore.RemoteProtocolError(f"{where}{exc}") from None


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
        origin = _origin(request.url)
        connection: Connection | None = None
        try:
            connection = self._idle_connection(origin)
            if connection is None:
                connection = await self._connect(request.url, timeouts.get("connect"))
            await connection.send(request, timeouts.get("write"))
            read_timeout = timeouts.get("read")
            head = await connection.receive_head(read_timeout)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        body = ResponseBody(self, connection, origin, head, read_timeout)
        return httpcore.Response(
            head.status,
            headers=head.headers,
            content=body,
            extensions={"http_version": head.http_version, "reason_phrase": head.reason},
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

    def release(self, connection: Connection, origin: _Origin, *, reuse: bool) -> None:
        """Take back a connection whose response is over; ``reuse`` when it was read whole."""
        # Bytes after the answer (a proxy's 408, a body longer than its Content-Length) would
        # be read as the next request's answer.
        if reuse and not self._closed and not connection.has_unread():
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

    __slots__ = ("_complete", "_connection", "_head", "_origin", "_pool", "_timeout")

    def __init__(
        self,
        pool: ConnectionPool,
        connection: Connection,
        origin: _Origin,
        head: ResponseHead,
        timeout: float | None,
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._origin = origin
        self._head = head
        self._timeout = timeout
        self._complete = head.framing is Framing.NONE

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpcore.ReadError("the response is closed")
        try:
            async for data in connection.body(self._head, self._timeout):
                yield data
        except BaseException:
            self._give_back()  # not awaited: this may run as the generator is being closed
            raise
        self._complete = True

    async def aclose(self) -> None:
        self._give_back()

    def _give_back(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            reuse = self._complete and self._head.keep_alive
            self._pool.release(connection, self._origin, reuse=reuse)


def _origin(url: httpcore.URL) -> _Origin:
    return (url.scheme, url.host, url.port or 0)
