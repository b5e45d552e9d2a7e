"""The client's own asyncio network layer against real sockets on 127.0.0.1.

The rest of tests/client fakes CAN inside httpx; these go through exporter.can.pool: TCP,
TLS, keep-alive, a connection CAN closed while idle, and timeouts.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from exporter.can.client import CanClient, CanTransport
from exporter.can.models import FailureReason
from exporter.can.pool import ConnectionPool
from exporter.config import PlanKey, Target, parse_config
from tests.pki import make_pki

OK = {
    "success": True,
    "code": "200",
    "data": {
        "hasNotReady": False,
        "latestDateTime": "2024-09-01 00:00:00",
        "latestRefreshTime": "2024-09-02 03:00:00",
    },
}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _target(url: str, *, ca_file: Path | None = None, timeout: str = "5s") -> Target:
    ca = f"\n    tls: {{ca_file: {ca_file}}}" if ca_file else ""
    text = f"""
targets:
  - name: prod
    url: "{url}"
    tenant_id: "1"
    auth: {{type: APIKEY, value: network-test-key}}
    timezone: UTC
    timeout: {timeout}
    max_concurrency: 5 # one pool of five connections{ca}
groups:
  - {{name: g, target: prod, plan_ids: [p1]}}
"""
    return parse_config(text, environ={}).targets["prod"]


class Can:
    """A minimal HTTP/1.1 CAN: answers every request with ``OK``, counting connections."""

    def __init__(self, *, close_idle_after: float | None = None, silent: bool = False) -> None:
        self.connections = 0
        self.requests = 0
        self._close_idle_after = close_idle_after
        self._silent = silent

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await self._answer_one(reader, writer):
                if self._close_idle_after is not None:
                    await asyncio.sleep(self._close_idle_after)
                    return  # closes the kept-alive connection under the client's feet
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        self.requests += 1
        if self._silent:
            await asyncio.sleep(3600)
        body = json.dumps(OK).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        return True


async def _serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    port: int = server.sockets[0].getsockname()[1]
    async with server:
        yield port
        server.close()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Target], CanClient]]:
    clients: list[CanClient] = []

    def make(target: Target) -> CanClient:
        clients.append(CanClient(target))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def test_the_transport_runs_on_the_clients_own_pool() -> None:
    client = CanClient(_target("http://127.0.0.1:1"))
    try:
        assert isinstance(client._transport, CanTransport)
        assert isinstance(client._transport._pool, ConnectionPool)
    finally:
        await client.aclose()


async def test_polls_reuse_one_kept_alive_connection(
    client_for: Callable[[Target], CanClient],
) -> None:
    can = Can()
    async for port in _serve(can.handle):
        client = client_for(_target(f"http://127.0.0.1:{port}"))
        for _ in range(3):
            result = await client.poll(PlanKey.IDS, ["p1"], 5.0)
            assert result.error is None, result.error
            assert result.reading is not None
            assert result.reading.has_not_ready is False
    assert (can.requests, can.connections) == (3, 1)


async def test_a_connection_closed_while_idle_is_not_reused(
    client_for: Callable[[Target], CanClient],
) -> None:
    can = Can(close_idle_after=0)
    async for port in _serve(can.handle):
        client = client_for(_target(f"http://127.0.0.1:{port}"))
        assert (await client.poll(PlanKey.IDS, ["p1"], 5.0)).error is None
        await asyncio.sleep(0.1)  # CAN closes; the client's stream sees the EOF
        second = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    assert second.error is None, second.error
    # A new connection at once: no failed try on the dead one, no retry.
    assert client.requests_sent == 2
    assert (can.requests, can.connections) == (2, 2)


async def test_tls_with_the_target_ca_file(
    tmp_path: Path, client_for: Callable[[Target], CanClient]
) -> None:
    pki = make_pki(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pki.server_cert, pki.server_key)
    can = Can()
    async for port in _serve(can.handle, server_context):
        trusted = client_for(_target(f"https://127.0.0.1:{port}", ca_file=pki.server_ca_file))
        ok = await trusted.poll(PlanKey.IDS, ["p1"], 5.0)
        untrusted = client_for(_target(f"https://127.0.0.1:{port}"))
        refused = await untrusted.poll(PlanKey.IDS, ["p1"], 5.0)
    assert ok.error is None, ok.error
    assert refused.error is not None
    assert refused.error.reason is FailureReason.CONNECTION
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error.message


async def test_a_silent_can_times_out_within_the_poll_timeout(
    client_for: Callable[[Target], CanClient],
) -> None:
    can = Can(silent=True)
    async for port in _serve(can.handle):
        client = client_for(_target(f"http://127.0.0.1:{port}"))
        started = asyncio.get_running_loop().time()
        result = await client.poll(PlanKey.IDS, ["p1"], 0.3)
        elapsed = asyncio.get_running_loop().time() - started
    assert result.error is not None
    assert result.error.reason is FailureReason.TIMEOUT
    assert 0.25 <= elapsed < 2


async def test_nothing_listening_is_a_connection_failure(
    client_for: Callable[[Target], CanClient],
) -> None:
    async for port in _serve(Can().handle):
        closed_port = port  # free again once the server is gone
    client = client_for(_target(f"http://127.0.0.1:{closed_port}"))
    result = await client.poll(PlanKey.IDS, ["p1"], 2.0)
    assert result.error is not None
    assert result.error.reason is FailureReason.CONNECTION
    assert "Connect call failed" in result.error.message


async def test_a_connection_with_unasked_bytes_is_not_reused(
    client_for: Callable[[Target], CanClient],
) -> None:
    """A proxy may answer an idle connection with "408 Request Timeout" and close it; that
    answer must not be read as the next poll's."""
    can = Can()

    async def answer_then_408(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        can.connections += 1
        try:
            await can._answer_one(reader, writer)
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.5)  # not closed yet when the next poll comes
        finally:
            writer.close()

    async for port in _serve(answer_then_408):
        client = client_for(_target(f"http://127.0.0.1:{port}"))
        assert (await client.poll(PlanKey.IDS, ["p1"], 5.0)).error is None
        await asyncio.sleep(0.15)  # the 408 has arrived
        second = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    assert second.error is None, second.error
    assert can.connections == 2
