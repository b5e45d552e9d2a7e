"""aiohttp application serving a scenario as a fake CAN latestTime endpoint."""

import asyncio
import logging
import secrets
import socket
import struct
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from aiohttp import web

from exporter.can.models import LATEST_TIME_PATH
from exporter.simulator.reply import compute_reply
from exporter.simulator.scenario import Scenario

HEALTH_PATH = "/-/healthy"
# What the simulator has served, as JSON: for benchmarks that count the connections a client opened.
STATS_PATH = "/-/stats"

# Short, so that closing the server does not wait out a long injected latency.
_SHUTDOWN_TIMEOUT_SECONDS = 1.0

_log = logging.getLogger(__name__)

Now = Callable[[], datetime]

_SCENARIO_KEY = web.AppKey("scenario", Scenario)
_NOW_KEY: web.AppKey[Now] = web.AppKey("now")
_STARTED_KEY = web.AppKey("started", datetime)


@dataclass
class _Served:
    """latestTime requests served, and the connections they came on."""

    requests: int = 0
    connections: int = 0
    # A connection is counted the first time one of its requests comes; closed ones drop out.
    _open: weakref.WeakSet[asyncio.BaseTransport] = field(default_factory=weakref.WeakSet)

    def count(self, transport: asyncio.BaseTransport | None) -> None:
        self.requests += 1
        if transport is not None and transport not in self._open:
            self._open.add(transport)
            self.connections += 1


_SERVED_KEY = web.AppKey("served", _Served)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_trace_id() -> str:
    """A trace ID shaped like CAN's: `<32 hex>.<small number>.<millisecond time + 4 digits>`."""
    suffix = f"{time.time_ns() // 1_000_000}{secrets.randbelow(10_000):04d}"
    return f"{secrets.token_hex(16)}.{secrets.randbelow(1000)}.{suffix}"


def create_app(scenario: Scenario, now: Now = _utc_now) -> web.Application:
    """Build the simulator application; `now` must return an aware datetime."""
    app = web.Application()
    app[_SCENARIO_KEY] = scenario
    app[_NOW_KEY] = now
    # The scenario's data_frozen_after and data_rollback count from here.
    app[_STARTED_KEY] = now()
    app[_SERVED_KEY] = _Served()
    app.router.add_post(LATEST_TIME_PATH, _latest_time)
    app.router.add_get(HEALTH_PATH, _healthy)
    app.router.add_get(STATS_PATH, _stats)
    return app


async def _latest_time(request: web.Request) -> web.Response:
    request.app[_SERVED_KEY].count(request.transport)
    reply = compute_reply(
        request.app[_SCENARIO_KEY],
        headers=request.headers,
        body=await request.read(),
        now=request.app[_NOW_KEY](),
        trace_id=_new_trace_id(),
        started=request.app[_STARTED_KEY],
    )
    if reply.delay:
        await asyncio.sleep(reply.delay.total_seconds())
    if reply.reset:
        _reset_connection(request)
        _log.debug("reset latestTime connection delay_seconds=%s", reply.delay.total_seconds())
        # Writing it fails on the closed transport, which aiohttp takes for a client that went
        # away: nothing reaches the client, and the access log shows status 0.
        return web.Response(status=reply.status)
    _log.debug(
        "answered latestTime status=%d delay_seconds=%s", reply.status, reply.delay.total_seconds()
    )
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)


def _reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP RST (linger 0) rather than an orderly close."""
    transport = request.transport
    if transport is None:  # the client has already gone
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _healthy(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _stats(request: web.Request) -> web.Response:
    served = request.app[_SERVED_KEY]
    return web.json_response({"requests": served.requests, "connections": served.connections})


class RunningSimulator:
    """A simulator bound to a local port; close it with `close()` or `async with`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def start_simulator(
    scenario: Scenario,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    now: Now = _utc_now,
    access_log: bool = False,
) -> RunningSimulator:
    """Serve `scenario` on host:port (port 0 picks a free one) in the running event loop."""
    runner = web.AppRunner(
        create_app(scenario, now),
        shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS,
        # Stop a delayed handler when its client gives up, as a real server's worker would.
        handler_cancellation=True,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningSimulator(runner, bound_host, bound_port)
