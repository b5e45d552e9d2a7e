"""The HTTP side: telemetry, health, readiness, reload and a landing page (aiohttp).

No handler ever waits on CAN: the telemetry path renders what the poller already stored.
With ``--web.config.file`` (``WebSecurity``) the server speaks TLS, applies the rate limit and
asks for basic auth on every path before any handler runs, and adds the configured response
headers.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.registry import Collector

from exporter.clock import Clock
from exporter.listen import ListenAddress
from exporter.metrics.exposition import Exposition
from exporter.state.snapshots import SnapshotStore
from exporter.web.landing import render_landing_page
from exporter.web.passwordchecks import ChecksBusyError
from exporter.web.security import WebSecurity

log = logging.getLogger("exporter.web")

# Level 1 compresses metric text about 10:1 at a fraction of level 9's CPU.
_GZIP_LEVEL = 1
# zlib's window bits for a gzip header and trailer around the deflate stream.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
WWW_AUTHENTICATE = 'Basic realm="aloudata-can-exporter"'
CHECKS_BUSY = "Too Many Requests: password checks are busy\n"

ReloadHandler = Callable[[], Awaitable[list[str]]]
Encoder = Callable[[Collector], bytes]


@dataclass(frozen=True, slots=True)
class WebOptions:
    telemetry_path: str = "/metrics"
    enable_lifecycle: bool = False


class WebApp:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        exposition: Exposition,
        store: SnapshotStore,
        clock: Clock,
        is_ready: Callable[[], bool],
        reload: ReloadHandler,
        options: WebOptions,
        security: WebSecurity | None = None,
    ) -> None:
        self._registry = registry  # the exporter's own metrics; the groups' come from exposition
        self._exposition = exposition
        self._store = store
        self._clock = clock
        self._is_ready = is_ready
        self._reload = reload
        self._options = options
        self._security = security
        self._runner: web.AppRunner | None = None
        self._render_executor: ThreadPoolExecutor | None = None

    def application(self) -> web.Application:
        app = web.Application()
        # One render at a time, always on the same thread: under the GIL a second thread would
        # not render faster, only hold a second body in memory and in its own malloc arena.
        self._render_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        app.on_cleanup.append(self._close_render_executor)
        if self._security is not None:
            app.middlewares.append(self._guard)
            app.on_response_prepare.append(self._add_headers)
            app.on_cleanup.append(self._close_security)
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
        site = web.TCPSite(
            self._runner,
            host=address.host,
            port=address.port,
            reuse_address=True,
            ssl_context=self._security.ssl_context if self._security is not None else None,
        )
        await site.start()
        return [_format_address(address) for address in self._runner.addresses]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Before any handler, on every path, known or not: the rate limit (429), then basic
        auth (401 without the right credentials, 429 when password checks are busy), in
        exporter-toolkit's order."""
        assert self._security is not None  # installed only with a web config
        self._security.refresh()
        if not self._security.allow_request():
            return web.Response(status=429, text="Too Many Requests\n")
        auth = self._security.auth
        if auth is None:
            return await handler(request)
        try:
            allowed = await auth.verify(
                request.headers.get(hdrs.AUTHORIZATION), client=request.remote or ""
            )
        except ChecksBusyError:
            # 429, not 401: the password was not checked, and a scraper's target page should
            # say "too many requests", not that its credentials are wrong.
            return web.Response(status=429, text=CHECKS_BUSY)
        if not allowed:
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={hdrs.WWW_AUTHENTICATE: WWW_AUTHENTICATE},
            )
        return await handler(request)

    async def _add_headers(self, _: web.Request, response: web.StreamResponse) -> None:
        assert self._security is not None
        response.headers.update(self._security.headers)

    async def _close_render_executor(self, _: web.Application) -> None:
        if self._render_executor is not None:
            self._render_executor.shutdown(wait=False, cancel_futures=True)

    async def _close_security(self, _: web.Application) -> None:
        assert self._security is not None
        self._security.close()

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        encoder, content_type = _choose_encoder(request.headers.get("Accept", ""))
        compress = "gzip" in request.headers.get("Accept-Encoding", "")
        # Rendering and compressing are CPU work on snapshots; off the loop they do not hold
        # up polls or other requests.
        chunks = await asyncio.get_running_loop().run_in_executor(
            self._render_executor, self._render, encoder, content_type, compress
        )
        headers = {"Content-Type": content_type}
        if compress:
            headers["Content-Encoding"] = "gzip"
        # Written chunk by chunk, each let go once sent: the body is never joined into one
        # copy, nor copied whole into the socket's buffer.
        response = web.StreamResponse(headers=headers)
        response.content_length = sum(len(chunk) for chunk in chunks)
        try:
            await response.prepare(request)
            if request.method != hdrs.METH_HEAD:
                chunks.reverse()
                while chunks:
                    await response.write(chunks.pop())
            await response.write_eof()
        except ConnectionError:
            # A scraper that timed out and hung up: nothing is wrong here.
            log.debug("scraper went away before the body was sent", extra={"left": len(chunks)})
        return response

    def _render(self, encoder: Encoder, content_type: str, compress: bool) -> list[bytes]:
        """The body in chunks, compressed if asked."""
        if content_type.startswith("text/plain"):
            chunks = self._exposition.render_chunks()
            chunks.append(encoder(self._registry))
        else:  # OpenMetrics, asked for by name: the general path
            chunks = [encoder(_Joined(self._exposition.collector, self._registry))]
        if compress:
            # Chunk by chunk: the whole uncompressed body is never held a second time.
            gzipper = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
            chunks = [gzipper.compress(chunk) for chunk in chunks]
            chunks.append(gzipper.flush())
        return [chunk for chunk in chunks if chunk]

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
        # A row per group: 10,000 take about 0.15 s to render, off the loop as /metrics is.
        page = await asyncio.get_running_loop().run_in_executor(
            self._render_executor,
            render_landing_page,
            self._store.snapshots(),
            self._clock.now(),
            self._options.telemetry_path,
            self._store.targets(),
        )
        return web.Response(text=page, content_type="text/html")


def _choose_encoder(accept: str) -> tuple[Encoder, str]:
    """The text format whenever the scraper accepts it, OpenMetrics only when it must be.

    Prometheus asks for OpenMetrics first and the text format second; as client_golang does
    by default, it gets the text format, which here carries the same samples and comes from
    the fast path.
    """
    if "text/plain" in accept or "*/*" in accept or not accept.strip():
        return generate_latest, CONTENT_TYPE_PLAIN_0_0_4
    return choose_encoder(accept)


class _Joined(Collector):
    """Several collectors as one, for an encoder that takes one."""

    def __init__(self, *parts: Collector) -> None:
        self._parts = parts

    def collect(self) -> Iterable[Metric]:
        for part in self._parts:
            yield from part.collect()


def _format_address(sockname: object) -> str:
    host, port = sockname[0], sockname[1]  # type: ignore[index]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
