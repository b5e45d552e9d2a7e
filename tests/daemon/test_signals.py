"""Signals caught from the first line of main, handed to the loop, turned into stop or reload.

The signals go to this test process itself; each test puts the handlers back as they were.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from exporter.daemon.signals import Lifecycle, SignalInbox, StopRequestedError


def _send(signum: signal.Signals) -> None:
    os.kill(os.getpid(), signum)  # the Python handler runs before the next line


def test_signals_before_the_loop_are_recorded_and_the_old_handlers_come_back() -> None:
    before = {signum: signal.getsignal(signum) for signum in signal.Signals}
    with SignalInbox.installed() as inbox:
        _send(signal.SIGHUP)  # the default action would end this test process
        _send(signal.SIGTERM)
        _send(signal.SIGINT)  # the default handler would raise KeyboardInterrupt
        assert inbox.pending() == [signal.SIGHUP, signal.SIGTERM, signal.SIGINT]
    assert {signum: signal.getsignal(signum) for signum in signal.Signals} == before


async def test_the_loop_gets_the_signals_recorded_before_it_then_its_own() -> None:
    handled: list[signal.Signals] = []
    loop = asyncio.get_running_loop()
    with SignalInbox.installed() as inbox:
        _send(signal.SIGHUP)
        with inbox.on_loop(loop, handled.append):
            assert inbox.pending() == []
            await asyncio.sleep(0)
            assert handled == [signal.SIGHUP]
            _send(signal.SIGTERM)
            async with asyncio.timeout(5):
                while len(handled) < 2:  # noqa: ASYNC110 - asyncio runs the handler soon
                    await asyncio.sleep(0.001)
            assert handled == [signal.SIGHUP, signal.SIGTERM]
        # The loop is done with them: recorded again, never the default action.
        _send(signal.SIGHUP)
        assert inbox.pending() == [signal.SIGHUP]


async def test_sighups_during_start_up_make_one_reload_once_started() -> None:
    lifecycle = Lifecycle()
    reloads: list[str] = []
    for _ in range(3):
        lifecycle.on_signal(signal.SIGHUP)
    assert not lifecycle.stopping.is_set()
    lifecycle.serve_reloads(reloads.append)
    assert reloads == ["SIGHUP"]
    lifecycle.on_signal(signal.SIGHUP)
    assert reloads == ["SIGHUP", "SIGHUP"]


async def test_serving_without_a_sighup_during_start_up_reloads_nothing() -> None:
    lifecycle = Lifecycle()
    reloads: list[str] = []
    lifecycle.serve_reloads(reloads.append)
    assert reloads == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_interrupts_the_start_up_work(signum: signal.Signals) -> None:
    lifecycle = Lifecycle()
    cancelled = asyncio.Event()

    async def endless() -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    work = asyncio.create_task(lifecycle.unless_stopped(endless()))
    await asyncio.sleep(0)
    lifecycle.on_signal(signum)
    with pytest.raises(StopRequestedError) as stopped:
        await work
    assert stopped.value.signum is signum
    assert cancelled.is_set()
    assert lifecycle.stopping.is_set()


async def test_work_that_finishes_first_gives_its_result() -> None:
    lifecycle = Lifecycle()

    async def quick() -> str:
        return "done"

    assert await lifecycle.unless_stopped(quick()) == "done"


def test_the_entry_point_catches_signals_before_the_heavy_imports() -> None:
    # Everything imported before main() installs the handlers is time in which a SIGHUP ends
    # the process: importing the command line must not pull in pydantic, YAML or the daemon.
    code = (
        "import sys, exporter.cli; "
        "heavy = ('pydantic', 'yaml', 'httpx', 'aiohttp', 'exporter.daemon.run', "
        "'exporter.config.load'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert imported == "[]"
