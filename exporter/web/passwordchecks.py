"""The queue of password checks: bounded, and fair between client addresses.

A bcrypt check costs 0.05 to 0.3 s of CPU and runs one at a time on a thread of its own. An
unbounded queue would let a flood of wrong passwords make every later check, a valid user's
first one included, wait behind the whole flood. So:

- at most ``max_pending`` checks wait or run at once, and at most ``max_pending_per_client``
  of them from one client address; a check over either bound is refused at once
  (``ChecksBusyError``), never queued;
- the next check to run is the oldest one of the client served least recently (a client never
  served, or not lately, first). A client whose address is not the flood's waits for at most
  the check running and its own, whatever the flood sends; a valid user behind the flood's own
  address (one proxy in front of both) shares that address's two slots and may be refused
  until the flood stops.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

MAX_PENDING_CHECKS = 8
MAX_PENDING_CHECKS_PER_CLIENT = 2
# Clients remembered as served lately; one forgotten goes first again, as a new one would.
_REMEMBERED_CLIENTS = 1024


class ChecksBusyError(Exception):
    """No room for another password check: the request is answered at once instead."""


@dataclass(eq=False, slots=True)
class _Check:
    client: str
    work: Callable[[], bool]
    outcome: asyncio.Future[bool]


class CheckQueue:
    """Runs blocking checks one at a time on ``executor`` (the loop's default one if None)."""

    def __init__(
        self,
        executor: Executor | None = None,
        *,
        max_pending: int = MAX_PENDING_CHECKS,
        max_pending_per_client: int = MAX_PENDING_CHECKS_PER_CLIENT,
    ) -> None:
        self._executor = executor
        self._max_pending = max_pending
        self._max_pending_per_client = max_pending_per_client
        self._waiting: dict[str, deque[_Check]] = {}
        self._pending: Counter[str] = Counter()  # waiting or running, per client
        self._running = False
        self._turn = 0
        self._last_served: OrderedDict[str, int] = OrderedDict()

    @property
    def pending(self) -> int:
        """Checks waiting or running."""
        return self._pending.total()

    async def run(self, client: str, work: Callable[[], bool]) -> bool:
        """``work()``'s answer, in the client's turn; ``ChecksBusyError`` at once when full."""
        if (
            self.pending >= self._max_pending
            or self._pending[client] >= self._max_pending_per_client
        ):
            raise ChecksBusyError
        check = _Check(client, work, asyncio.get_running_loop().create_future())
        self._pending[client] += 1
        self._waiting.setdefault(client, deque()).append(check)
        self._start_next()
        # A request that goes away cancels its outcome: a waiting check is then dropped
        # unrun; a running one finishes, as a thread cannot be stopped, and keeps its slot.
        return await check.outcome

    def _start_next(self) -> None:
        while not self._running and self._waiting:
            client = min(self._waiting, key=lambda name: self._last_served.get(name, -1))
            queue = self._waiting[client]
            check = queue.popleft()
            if not queue:
                del self._waiting[client]
            if check.outcome.cancelled():
                self._release(check)
                continue
            self._served(client)
            try:
                running = asyncio.get_running_loop().run_in_executor(self._executor, check.work)
            except RuntimeError as exc:  # the executor was shut down
                self._release(check)
                check.outcome.set_exception(exc)
                continue
            self._running = True
            running.add_done_callback(partial(self._finished, check))

    def _finished(self, check: _Check, running: asyncio.Future[bool]) -> None:
        self._running = False
        self._release(check)
        if not check.outcome.cancelled():
            if running.cancelled():
                check.outcome.cancel()
            elif (error := running.exception()) is not None:
                check.outcome.set_exception(error)
            else:
                check.outcome.set_result(running.result())
        self._start_next()

    def _served(self, client: str) -> None:
        self._turn += 1
        self._last_served[client] = self._turn
        self._last_served.move_to_end(client)
        while len(self._last_served) > _REMEMBERED_CLIENTS:
            self._last_served.popitem(last=False)

    def _release(self, check: _Check) -> None:
        self._pending[check.client] -= 1
        if self._pending[check.client] <= 0:
            del self._pending[check.client]
