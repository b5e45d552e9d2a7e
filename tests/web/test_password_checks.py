"""The queue of password checks: its bounds, its order, and what a request that leaves does.

Checks are functions that block on an event until the test lets them finish, on a real
one-thread executor; no sleeps, no wall-clock assertions.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from exporter.web.passwordchecks import (
    MAX_PENDING_CHECKS,
    MAX_PENDING_CHECKS_PER_CLIENT,
    CheckQueue,
    ChecksBusyError,
)

TIMEOUT = 10.0


class Gate:
    """Checks that block until released, recording the order they ran in."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self._events: dict[str, threading.Event] = {}
        self.started = threading.Semaphore(0)
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def check(self, name: str, answer: bool = True) -> Callable[[], bool]:
        event = self._events.setdefault(name, threading.Event())

        def work() -> bool:
            with self._lock:
                self.running += 1
                self.most_running = max(self.most_running, self.running)
                self.ran.append(name)
            self.started.release()
            event.wait(TIMEOUT)
            with self._lock:
                self.running -= 1
            return answer

        return work

    def release(self, name: str) -> None:
        self._events.setdefault(name, threading.Event()).set()

    def release_all(self) -> None:
        for event in self._events.values():
            event.set()

    async def wait_started(self, count: int = 1) -> None:
        for _ in range(count):
            assert await asyncio.to_thread(self.started.acquire, True, TIMEOUT)


@pytest.fixture
def gate() -> Iterator[Gate]:
    opened = Gate()
    yield opened
    opened.release_all()


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


async def test_a_check_gives_its_answer(executor: ThreadPoolExecutor) -> None:
    queue = CheckQueue(executor)
    assert await queue.run("a", lambda: True) is True
    assert await queue.run("a", lambda: False) is False
    assert queue.pending == 0


async def test_one_client_gets_two_slots_then_is_refused_at_once(
    executor: ThreadPoolExecutor, gate: Gate
) -> None:
    queue = CheckQueue(executor)
    first = asyncio.create_task(queue.run("flood", gate.check("1")))
    second = asyncio.create_task(queue.run("flood", gate.check("2")))
    await gate.wait_started()
    assert MAX_PENDING_CHECKS_PER_CLIENT == 2
    assert queue.pending == 2
    with pytest.raises(ChecksBusyError):
        await queue.run("flood", gate.check("3"))
    assert queue.pending == 2  # the refused one never queued
    gate.release("1")
    assert await first
    gate.release("2")
    assert await second
    # Slots come back once checks finish.
    gate.release("4")
    assert await queue.run("flood", gate.check("4"))
    assert gate.ran == ["1", "2", "4"]
    assert queue.pending == 0


async def test_the_total_is_bounded_across_clients(
    executor: ThreadPoolExecutor, gate: Gate
) -> None:
    queue = CheckQueue(executor)
    tasks = [
        asyncio.create_task(queue.run(f"client-{index // 2}", gate.check(f"{index}")))
        for index in range(MAX_PENDING_CHECKS)
    ]
    await gate.wait_started()
    assert queue.pending == MAX_PENDING_CHECKS
    with pytest.raises(ChecksBusyError):
        await queue.run("a-new-client", gate.check("late"))
    gate.release_all()
    assert await asyncio.gather(*tasks) == [True] * MAX_PENDING_CHECKS
    assert queue.pending == 0


async def test_a_new_client_goes_before_the_flood_waiting_ahead_of_it(
    executor: ThreadPoolExecutor, gate: Gate
) -> None:
    queue = CheckQueue(executor)
    flood = [asyncio.create_task(queue.run("flood", gate.check(f"flood-{n}"))) for n in (1, 2)]
    await gate.wait_started()
    scraper = asyncio.create_task(queue.run("scraper", gate.check("scraper")))
    await asyncio.sleep(0)
    gate.release("flood-1")
    await gate.wait_started()
    # The scraper's check runs right after the one that was running, before flood-2.
    assert gate.ran == ["flood-1", "scraper"]
    gate.release_all()
    await asyncio.gather(scraper, *flood)
    assert gate.ran == ["flood-1", "scraper", "flood-2"]


async def test_the_client_served_least_recently_goes_first(
    executor: ThreadPoolExecutor, gate: Gate
) -> None:
    queue = CheckQueue(executor, max_pending=16, max_pending_per_client=4)
    for name in ("b", "a"):  # served once each, b longer ago
        gate.release(name)
        await queue.run(name, gate.check(name))
    blocker = asyncio.create_task(queue.run("c", gate.check("c-blocker")))
    await gate.wait_started(3)
    tasks = [
        asyncio.create_task(queue.run(client, gate.check(f"{client}-{n}")))
        for client, n in (("a", 1), ("a", 2), ("b", 1), ("b", 2), ("d", 1))
    ]
    await asyncio.sleep(0)
    gate.release_all()
    await asyncio.gather(blocker, *tasks)
    # d was never served, then b (served before a), then a, then b and a again in turn.
    assert gate.ran[3:] == ["d-1", "b-1", "a-1", "b-2", "a-2"]


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def test_only_one_check_runs_at_a_time_whatever_the_executor(gate: Gate) -> None:
    with CountingExecutor(max_workers=4) as wide:
        queue = CheckQueue(wide)
        tasks = [
            asyncio.create_task(queue.run(f"client-{n}", gate.check(f"{n}"))) for n in range(4)
        ]
        await gate.wait_started()
        assert wide.submitted == 1  # the others wait in the queue, not in the executor
        gate.release_all()
        await asyncio.gather(*tasks)
    assert wide.submitted == 4
    assert gate.most_running == 1


async def test_a_waiting_check_whose_request_went_away_never_runs(
    executor: ThreadPoolExecutor, gate: Gate
) -> None:
    queue = CheckQueue(executor)
    running = asyncio.create_task(queue.run("a", gate.check("running")))
    await gate.wait_started()
    waiting = asyncio.create_task(queue.run("b", gate.check("gone")))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.release("running")
    assert await running
    assert gate.ran == ["running"]
    assert queue.pending == 0


async def test_a_running_check_keeps_its_slot_until_its_thread_is_done(
    executor: ThreadPoolExecutor, gate: Gate
) -> None:
    queue = CheckQueue(executor, max_pending=1)
    running = asyncio.create_task(queue.run("a", gate.check("running")))
    await gate.wait_started()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # The thread still runs the check: no room for another until it ends.
    with pytest.raises(ChecksBusyError):
        await queue.run("b", gate.check("next"))
    gate.release("running")
    gate.release("next")
    # The one-thread executor runs this after the check; the slot is free by the time it ends.
    await asyncio.get_running_loop().run_in_executor(executor, lambda: None)
    assert queue.pending == 0
    assert await queue.run("b", gate.check("next"))


async def test_an_error_in_a_check_reaches_its_caller(executor: ThreadPoolExecutor) -> None:
    def broken() -> bool:
        raise ValueError("bad salt")

    queue = CheckQueue(executor)
    with pytest.raises(ValueError, match="bad salt"):
        await queue.run("a", broken)
    assert queue.pending == 0
    assert await queue.run("a", lambda: True)


async def test_a_shut_down_executor_fails_the_check() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    queue = CheckQueue(pool)
    with pytest.raises(RuntimeError, match="shutdown"):
        await queue.run("a", lambda: True)
    assert queue.pending == 0
