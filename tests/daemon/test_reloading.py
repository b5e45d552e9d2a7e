"""The reload coordinator with a fake load that waits until the test lets it through."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest
from prometheus_client import CollectorRegistry

from exporter.clock import FixedClock
from exporter.config.errors import ConfigError
from exporter.config.model import Config
from exporter.daemon.reloading import Reloader
from exporter.metrics.selfmetrics import ExporterMetrics
from tests.helpers.builders import NOW

RUNNING = Config(targets={}, groups=(), source="running.yml")
WAIT = 5.0  # seconds a test waits for a thread before calling it stuck
TIMED_OUT = "config reload timed out after 0.05s; keeping the running config"
STILL_RUNNING = (
    "config reload failed: a previous reload is still running; keeping the running config"
)


def _config(name: str) -> Config:
    return Config(targets={}, groups=(), source=name)


class Loads:
    """A load that waits for ``let_one_through``, then returns or raises the next outcome."""

    def __init__(self, *outcomes: Config | Exception) -> None:
        self._outcomes = list(outcomes)
        self._gate = threading.Semaphore(0)
        self._entered = threading.Semaphore(0)
        self._lock = threading.Lock()
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.threads: list[threading.Thread] = []
        self.collector_on: list[bool] = []

    def __call__(self) -> Config:
        self.collector_on.append(gc.isenabled())
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.append(threading.current_thread())
        self._entered.release()
        try:
            assert self._gate.acquire(timeout=WAIT), "the test never let the load through"
            outcome = self._outcomes.pop(0)
        finally:
            with self._lock:
                self.running -= 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def entered(self) -> None:
        """Until a load has started (one per call)."""
        assert await asyncio.to_thread(self._entered.acquire, True, WAIT), "no load started"

    def let_one_through(self) -> None:
        self._gate.release()


class Applied:
    def __init__(self) -> None:
        self.configs: list[Config] = []
        self.threads: list[threading.Thread] = []
        self.error: Exception | None = None

    async def __call__(self, config: Config) -> None:
        self.threads.append(threading.current_thread())
        if self.error is not None:
            raise self.error
        self.configs.append(config)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def applied() -> Applied:
    return Applied()


def _reloader(
    loads: Loads, applied: Applied, registry: CollectorRegistry, timeout: float = WAIT
) -> Reloader:
    metrics = ExporterMetrics(registry)
    metrics.config_loaded(True, 1.0)
    return Reloader(loads, applied, metrics, FixedClock(NOW), config=RUNNING, timeout=timeout)


def _successful(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("aloudata_can_exporter_config_last_reload_successful")


async def test_a_reload_loads_on_a_thread_and_applies_on_the_loop(
    applied: Applied, registry: CollectorRegistry
) -> None:
    new = _config("new.yml")
    loads = Loads(new)
    reloader = _reloader(loads, applied, registry)
    reloading = asyncio.create_task(reloader.reload())
    await loads.entered()
    # The load is blocked: the loop still runs everything else.
    assert await asyncio.wait_for(asyncio.sleep(0.001, "loop free"), WAIT) == "loop free"
    assert not reloading.done()
    assert loads.threads[0] is not threading.current_thread()
    # A daemon thread: a load stuck on a hung mount cannot hold up the process's exit.
    assert loads.threads[0].daemon
    loads.let_one_through()

    assert await reloading == []
    assert applied.configs == [new]
    assert applied.threads == [threading.current_thread()]
    assert reloader.config is new
    assert _successful(registry) == 1
    # Off during the load, on again after it.
    assert loads.collector_on == [False]
    assert gc.isenabled()


async def test_requests_while_one_runs_make_one_more_reload(
    applied: Applied, registry: CollectorRegistry
) -> None:
    first, second = _config("first.yml"), _config("second.yml")
    loads = Loads(first, second)
    reloader = _reloader(loads, applied, registry)
    running = asyncio.create_task(reloader.reload("http"))
    await loads.entered()
    waiting = [asyncio.create_task(reloader.reload("http")) for _ in range(3)]
    reloader.request("SIGHUP")
    reloader.request("SIGHUP")
    await asyncio.sleep(0)
    assert loads.calls == 1
    loads.let_one_through()
    assert await running == []
    await loads.entered()
    loads.let_one_through()

    assert await asyncio.gather(*waiting) == [[], [], []]
    assert loads.calls == 2
    assert loads.most_at_once == 1
    assert applied.configs == [first, second]
    assert reloader.config is second


async def test_a_caller_gets_the_outcome_of_a_reload_that_started_after_it_asked(
    applied: Applied, registry: CollectorRegistry
) -> None:
    # The file was still good when the first reload read it, and broken by the time the second
    # caller asked: the second caller must hear about the broken file.
    broken = ConfigError(["groups[0].name: required key is missing"], "exporter.yml")
    loads = Loads(_config("good.yml"), broken)
    reloader = _reloader(loads, applied, registry)
    first = asyncio.create_task(reloader.reload())
    await loads.entered()
    second = asyncio.create_task(reloader.reload())
    await asyncio.sleep(0)
    loads.let_one_through()
    await loads.entered()
    loads.let_one_through()

    assert await first == []
    assert await second == [
        "config error: groups[0].name: required key is missing (file=exporter.yml)"
    ]
    assert _successful(registry) == 0


async def test_an_invalid_config_keeps_the_running_one(
    applied: Applied, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    loads = Loads(ConfigError(["targets: required key is missing"], "exporter.yml"))
    reloader = _reloader(loads, applied, registry)
    reloading = asyncio.create_task(reloader.reload())
    await loads.entered()
    loads.let_one_through()

    assert await reloading == ["config error: targets: required key is missing (file=exporter.yml)"]
    assert reloader.config is RUNNING
    assert applied.configs == []
    assert _successful(registry) == 0
    assert "config reload failed; keeping the running config" in caplog.messages


async def test_a_load_that_times_out_keeps_the_running_config_and_blocks_the_next_loads(
    applied: Applied, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    late, fresh = _config("late.yml"), _config("fresh.yml")
    loads = Loads(late, fresh)
    reloader = _reloader(loads, applied, registry, timeout=0.05)

    assert await reloader.reload() == [TIMED_OUT]
    assert reloader.config is RUNNING
    assert _successful(registry) == 0
    # The stuck load's thread goes on, without keeping the garbage collector off; another load
    # on top of it is refused at once.
    assert loads.running == 1
    assert gc.isenabled()
    assert await reloader.reload() == [STILL_RUNNING]
    assert loads.calls == 1

    caplog.set_level(logging.INFO, logger="exporter")
    loads.let_one_through()
    await asyncio.to_thread(loads.threads[0].join, WAIT)
    reloading = asyncio.create_task(reloader.reload())
    await loads.entered()
    loads.let_one_through()
    assert await reloading == []
    assert reloader.config is fresh  # not the late one
    assert applied.configs == [fresh]
    assert _successful(registry) == 1
    assert "a config load that timed out has ended; its result was discarded" in caplog.messages


async def test_an_unexpected_error_fails_only_that_reload(
    applied: Applied, registry: CollectorRegistry
) -> None:
    loads = Loads(RuntimeError("bug"), _config("next.yml"))
    reloader = _reloader(loads, applied, registry)
    reloading = asyncio.create_task(reloader.reload())
    await loads.entered()
    loads.let_one_through()
    assert await reloading == ["config reload failed: unexpected error; see the exporter's log"]
    assert _successful(registry) == 0

    reloading = asyncio.create_task(reloader.reload())
    await loads.entered()
    loads.let_one_through()
    assert await reloading == []
    assert _successful(registry) == 1


async def test_a_failed_apply_fails_the_reload(
    applied: Applied, registry: CollectorRegistry
) -> None:
    applied.error = RuntimeError("bug")
    loads = Loads(_config("new.yml"))
    reloader = _reloader(loads, applied, registry)
    reloading = asyncio.create_task(reloader.reload())
    await loads.entered()
    loads.let_one_through()
    assert await reloading == ["config reload failed while applying it; see the exporter's log"]
    assert reloader.config is RUNNING
    assert _successful(registry) == 0


async def test_close_cancels_the_callers_still_waiting(
    applied: Applied, registry: CollectorRegistry
) -> None:
    loads = Loads(_config("never.yml"), _config("never-either.yml"))
    reloader = _reloader(loads, applied, registry)
    running = asyncio.create_task(reloader.reload())
    await loads.entered()
    queued = asyncio.create_task(reloader.reload())
    await asyncio.sleep(0)
    await reloader.close()
    for caller in (running, queued):
        with pytest.raises(asyncio.CancelledError):
            await caller
    loads.let_one_through()  # the abandoned thread ends; nobody waits for it
    assert applied.configs == []
