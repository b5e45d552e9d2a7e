"""The HTTP side: telemetry, health, readiness, reload and a landing page (aiohttp).

No handler ever waits on CAN: the telemetry path renders what the poller already stored.
"""

from __future__ import annotations

import asyncio
import gzip
import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter import __version__
from exporter.clock import Clock
from exporter.report import describe_status, format_age
from exporter.settings import ListenAddress
from exporter.state import GroupSnapshot, SnapshotStore

# Level 1 compresses metric text about 10:1 at a fraction of level 9's CPU.
_GZIP_LEVEL = 1

ReloadHandler = Callable[[], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class WebOptions:
    telemetry_path: str = "/metrics"
    enable_lifecycle: bool = False


class WebApp:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        store: SnapshotStore,
        clock: Clock,
        is_ready: Callable[[], bool],
        reload: ReloadHandler,
        options: WebOptions,
    ) -> None:
        self._registry = registry
        self._store = store
        self._clock = clock
        self._is_ready = is_ready
        self._reload = reload
        self._options = options
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self._options.telemetry_path, self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_post("/-/reload", self._reload_handler)
        app.router.add_get("/", self._landing)
        return app

    async def start(self, address: ListenAddress) -> list[str]:
        """Bind and serve; returns the bound ``host:port`` strings."""
        self._runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host=address.host, port=address.port, reuse_address=True)
        await site.start()
        return [_format_address(address) for address in self._runner.addresses]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        # Rendering is CPU work on a snapshot; off the loop it does not hold up requests.
        body = await asyncio.get_running_loop().run_in_executor(None, encoder, self._registry)
        headers = {"Content-Type": content_type}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._is_ready():
            return web.Response(text="ready\n")
        snapshots = self._store.snapshots()
        polled = sum(1 for snapshot in snapshots if snapshot.polled)
        return web.Response(
            status=503, text=f"not ready: {polled} of {len(snapshots)} groups polled\n"
        )

    async def _reload_handler(self, _: web.Request) -> web.Response:
        if not self._options.enable_lifecycle:
            return web.Response(status=403, text="Lifecycle API is not enabled.\n")
        problems = await self._reload()
        if problems:
            return web.Response(status=500, text="\n".join(problems) + "\n")
        return web.Response(text="config reloaded\n")

    async def _landing(self, _: web.Request) -> web.Response:
        page = render_landing_page(
            self._store.snapshots(), self._clock.now(), self._options.telemetry_path
        )
        return web.Response(text=page, content_type="text/html")


def render_landing_page(snapshots: list[GroupSnapshot], now: datetime, telemetry_path: str) -> str:
    rows = "\n".join(_landing_row(snapshot, now) for snapshot in snapshots)
    path = html.escape(telemetry_path)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Aloudata CAN exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}
.ok{{color:#2a7}}.fail{{color:#c33}}</style></head>
<body><h1>Aloudata CAN exporter</h1>
<p>Version {html.escape(__version__)}.
<a href="{path}">Metrics</a> · <a href="/healthz">Health</a> · <a href="/readyz">Readiness</a></p>
<table><thead><tr><th>Target</th><th>Group</th><th>Plans</th><th>Last poll</th>
<th>Data lag</th><th>Refresh age</th><th>Not ready</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


def _landing_row(snapshot: GroupSnapshot, now: datetime) -> str:
    group = snapshot.group
    status = describe_status(snapshot)
    css = "ok" if snapshot.poll_success else "fail"
    reading = snapshot.reading
    cells = [
        group.target,
        group.name,
        str(len(group.plans)),
        status,
        format_age(reading.latest_data_time if reading else None, now),
        format_age(reading.latest_refresh_time if reading else None, now),
        ("yes" if reading.has_not_ready else "no") if reading else "-",
    ]
    tds = "".join(
        f'<td class="{css}">{html.escape(cell)}</td>'
        if index == 3
        else f"<td>{html.escape(cell)}</td>"
        for index, cell in enumerate(cells)
    )
    return f"<tr>{tds}</tr>"


def _format_address(sockname: object) -> str:
    host, port = sockname[0], sockname[1]  # type: ignore[index]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
