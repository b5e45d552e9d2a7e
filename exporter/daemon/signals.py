"""Signals from the first line of ``main``: none of them ends the exporter before it can act on it.

Python's default action for SIGHUP and SIGTERM ends the process, and SIGINT raises
KeyboardInterrupt wherever the main thread is. A SIGHUP sent while the configuration loads
(systemd's ``ExecReload``, ``docker kill -s HUP``) used to stop the exporter. ``SignalInbox``
records them from the start; ``on_loop`` hands them to the event loop's handlers (asyncio's
``add_signal_handler``) and replays what came before; ``Lifecycle`` turns them into a stop or a
reload: a SIGHUP before the exporter has started is one reload once it has.

Standard library only, so that ``exporter.cli`` can install it before importing the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import TypeVar

log = logging.getLogger("exporter")

HANDLED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)

_T = TypeVar("_T")
_SignalHandler = Callable[[int, FrameType | None], object] | int | None


class SignalInbox:
    """Records SIGHUP, SIGTERM and SIGINT until an event loop takes them over."""

    def __init__(self) -> None:
        self._pending: list[signal.Signals] = []

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[SignalInbox]:
        """Record from now on; put back the handlers found here when done."""
        inbox = cls()
        previous: dict[signal.Signals, _SignalHandler] = {}
        try:
            for signum in HANDLED:
                previous[signum] = signal.signal(signum, inbox._record)
            yield inbox
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def pending(self) -> list[signal.Signals]:
        """The signals recorded and not yet handed to a loop, oldest first."""
        return list(self._pending)

    @contextlib.contextmanager
    def on_loop(
        self, loop: asyncio.AbstractEventLoop, handle: Callable[[signal.Signals], None]
    ) -> Iterator[None]:
        """Let ``loop`` call ``handle`` for each signal, those recorded so far first."""
        for signum in HANDLED:
            loop.add_signal_handler(signum, handle, signum)
        # Only now: until the last handler above was in place, a signal could still be recorded.
        replay, self._pending = self._pending, []
        for signum in replay:
            loop.call_soon(handle, signum)
        try:
            yield
        finally:
            for signum in HANDLED:
                # asyncio puts back the default action, which would end the process: record
                # again until the process exits.
                loop.remove_signal_handler(signum)
                signal.signal(signum, self._record)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self._pending.append(signal.Signals(signum))


class StopRequestedError(Exception):
    """A SIGTERM or SIGINT came before the work it interrupted finished."""

    def __init__(self, signum: signal.Signals) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signum.name}")


class Lifecycle:
    """What the signals mean: SIGTERM and SIGINT stop, SIGHUP reloads once started."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.stop_signal: signal.Signals | None = None
        self._reload: Callable[[str], None] | None = None
        self._reload_pending = False

    def on_signal(self, signum: signal.Signals) -> None:
        if signum is not signal.SIGHUP:
            self.stop_signal = self.stop_signal or signum
            self.stopping.set()
        elif self._reload is not None:
            self._reload(signum.name)
        elif not self._reload_pending:
            self._reload_pending = True
            log.info("SIGHUP during start-up; reloading once started")

    def serve_reloads(self, reload: Callable[[str], None]) -> None:
        """From now on SIGHUP calls ``reload``; once now if one came during start-up."""
        self._reload = reload
        if self._reload_pending:
            self._reload_pending = False
            reload(signal.SIGHUP.name)

    async def unless_stopped(self, work: Awaitable[_T]) -> _T:
        """``work``'s result; StopRequestedError (``work`` cancelled) if a stop comes first."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert self.stop_signal is not None
            raise StopRequestedError(self.stop_signal)
        return task.result()
