"""Config reloads: off the event loop, one at a time, within a bounded time.

A reload (SIGHUP, ``POST /-/reload``, a changed secret file) reads the config file and the secret
files and validates them on a thread: a 10,000-group file takes about a second, which on the
event loop would hold up ``/metrics``, ``/healthz`` and the polls. Only applying the result (the
poller's jobs, the log's masked secrets) runs on the loop.

At most one reload runs at a time. Requests that come while one runs are coalesced into one more
reload after it, and each caller gets the outcome of a reload that started after its request, so
it reads the files as they were when it asked, or newer.

A load still running after ``RELOAD_TIMEOUT_SECONDS`` (a file on a hung network mount) fails the
reload and the running config stays. Its thread cannot be stopped: until it ends, later reloads
fail at once instead of stacking more threads on the same mount.

The garbage collector is off during a load. A load makes hundreds of thousands of objects that
all live on, and the collector's passes over them hold the GIL, so the event loop too: with
10,000 groups, a load on a thread took 1.4 s and stopped the loop's thread for up to 0.27 s at
a time with the collector on; 0.56 s and at most 22 ms with it off. gc.disable() is
process-wide, which is safe here: one load at a time (a load that timed out blocks the next
ones until it ends), and the timeout turns the collector back on at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from exporter.clock import Clock
from exporter.config.errors import ConfigError
from exporter.config.model import Config
from exporter.metrics.selfmetrics import ExporterMetrics

log = logging.getLogger("exporter")

# A 10,000-group file loads in about a second; a minute means something is stuck.
RELOAD_TIMEOUT_SECONDS = 60.0

_T = TypeVar("_T")


class LoadTimeoutError(Exception):
    """A load did not finish in time; its thread goes on, its result will be dropped."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"timed out after {timeout:g}s")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector off for a load (see the module's docstring)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def in_daemon_thread(function: Callable[[], _T], name: str) -> asyncio.Future[_T]:
    """``function()`` on a new daemon thread; its outcome as a future of the running loop.

    Not the loop's executor: asyncio.run's shutdown and the interpreter's exit wait for its
    threads, so a load stuck on a hung mount would keep the process from stopping. A daemon
    thread is left behind.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def deliver(settle: Callable[[asyncio.Future[_T], object], None], outcome: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle, future, outcome)

    def run() -> None:
        try:
            result = function()
        except Exception as exc:  # handed over to whoever awaits the future
            deliver(_set_exception, exc)
        else:
            deliver(_set_result, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


async def within(loading: asyncio.Future[_T], timeout: float) -> _T:
    """``loading``'s result; LoadTimeoutError after ``timeout`` seconds (``loading`` goes on)."""
    try:
        return await asyncio.wait_for(asyncio.shield(loading), timeout)
    except TimeoutError:
        # The stuck load must not keep the collector off; when it ends, enabling is a no-op.
        gc.enable()
        loading.add_done_callback(_log_late_end)
        raise LoadTimeoutError(timeout) from None


def _set_result(future: asyncio.Future[_T], result: object) -> None:
    if not future.done():
        future.set_result(result)  # type: ignore[arg-type]


def _set_exception(future: asyncio.Future[_T], exc: object) -> None:
    if not future.done():
        assert isinstance(exc, BaseException)
        future.set_exception(exc)


def _log_late_end(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a late failure is not reported again at exit
    log.info("a config load that timed out has ended; its result was discarded")


class Reloader:
    """Reloads the configuration; a bad one keeps the running one and flags the failure.

    ``load`` reads and validates the files (on a thread); ``apply`` puts the result in force
    (on the loop).
    """

    def __init__(
        self,
        load: Callable[[], Config],
        apply: Callable[[Config], Awaitable[None]],
        exporter_metrics: ExporterMetrics,
        clock: Clock,
        *,
        config: Config,
        timeout: float = RELOAD_TIMEOUT_SECONDS,
    ) -> None:
        self.config = config  # the running one
        self._load = load
        self._apply = apply
        self._metrics = exporter_metrics
        self._clock = clock
        self._timeout = timeout
        self._queued: asyncio.Future[list[str]] | None = None
        self._triggers: list[str] = []
        self._worker: asyncio.Task[None] | None = None
        self._loading: asyncio.Future[Config] | None = None

    async def reload(self, trigger: str = "http") -> list[str]:
        """The problems of a reload that starts after this call; empty when it succeeded."""
        return await asyncio.shield(self._enqueue(trigger))

    def request(self, trigger: str) -> None:
        """Ask for a reload without waiting for it; its outcome is logged."""
        self._enqueue(trigger)

    async def close(self) -> None:
        """Stop at shutdown: a reload under way is abandoned, its waiters cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._queued is not None:
            self._queued.cancel()
            self._queued = None

    def _enqueue(self, trigger: str) -> asyncio.Future[list[str]]:
        loop = asyncio.get_running_loop()
        if self._queued is None:
            self._queued = loop.create_future()
        if trigger not in self._triggers:
            self._triggers.append(trigger)
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        return self._queued

    async def _work(self) -> None:
        try:
            while self._queued is not None:
                outcome, self._queued = self._queued, None
                triggers, self._triggers = ",".join(self._triggers), []
                try:
                    problems = await self._reload_once(triggers)
                except asyncio.CancelledError:
                    outcome.cancel()
                    raise
                if not outcome.done():
                    outcome.set_result(problems)
        finally:
            self._worker = None

    async def _reload_once(self, triggers: str) -> list[str]:
        if self._loading is not None and not self._loading.done():
            return self._failed(
                [
                    "config reload failed: a previous reload is still running; "
                    "keeping the running config"
                ]
            )
        started = time.monotonic()
        log.info("reloading config", extra={"trigger": triggers})
        self._loading = loading = in_daemon_thread(
            self._load_with_collector_paused, "config-reload"
        )
        try:
            config = await within(loading, self._timeout)
        except LoadTimeoutError as exc:
            return self._failed([f"config reload {exc}; keeping the running config"])
        except ConfigError as exc:
            return self._failed(exc.lines())
        except Exception:
            log.exception("config reload failed: unexpected error")
            return self._failed(["config reload failed: unexpected error; see the exporter's log"])
        try:
            await self._apply(config)
        except Exception:
            log.exception("config reload failed while applying it")
            return self._failed(["config reload failed while applying it; see the exporter's log"])
        self.config = config
        self._metrics.config_loaded(True, self._clock.now().timestamp())
        log.info(
            "config reloaded",
            extra={
                "targets": len(config.targets),
                "groups": len(config.groups),
                "trigger": triggers,
                "duration_seconds": round(time.monotonic() - started, 3),
            },
        )
        return []

    def _load_with_collector_paused(self) -> Config:
        with collector_paused():
            return self._load()

    def _failed(self, problems: list[str]) -> list[str]:
        self._metrics.config_loaded(False, self._clock.now().timestamp())
        for line in problems:
            log.error("config reload failed; keeping the running config", extra={"error": line})
        return problems
