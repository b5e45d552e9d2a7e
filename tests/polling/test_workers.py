"""Due polls run on at most max_concurrency workers per target, never a task per group."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pytest_httpx import HTTPXMock

from exporter.clock import SystemClock
from exporter.config.load import parse_config
from exporter.config.model import Config
from exporter.polling.poller import Poller
from exporter.polling.workers import JOBSTORE, TargetWorkers
from exporter.state.snapshots import GroupKey, SnapshotStore
from tests.helpers.builders import CAN_OK_BODY

TARGETS = {"slow": "http://slow.can.test", "fast": "http://fast.can.test"}


def _config(groups_per_target: int, concurrency: int) -> Config:
    targets = "".join(
        f"""
  - name: {name}
    url: {url}
    tenant_id: "1"
    auth: {{type: APIKEY, value: apikey-0123}}
    timezone: UTC
    max_concurrency: {concurrency}
"""
        for name, url in TARGETS.items()
    )
    groups = "".join(
        f"  - {{name: g{i}, target: {name}, plan_ids: [p{i}], interval: 1h, timeout: 5s}}\n"
        for name in TARGETS
        for i in range(groups_per_target)
    )
    return parse_config(f"targets:{targets}groups:\n{groups}", environ={})


class SlowCan:
    """Answers after ``release`` is set, counting the requests out at once per host."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.out: dict[str, int] = dict.fromkeys(TARGETS, 0)
        self.peak: dict[str, int] = dict.fromkeys(TARGETS, 0)
        self.answered = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        target = request.url.host.split(".")[0]
        self.out[target] += 1
        self.peak[target] = max(self.peak[target], self.out[target])
        try:
            await self.release.wait()
        finally:
            self.out[target] -= 1
        self.answered += 1
        return httpx.Response(200, json=CAN_OK_BODY)


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _worker_tasks() -> int:
    return sum(1 for task in asyncio.all_tasks() if "TargetWorkers._work" in repr(task))


async def test_at_most_max_concurrency_polls_and_workers_per_target(
    httpx_mock: HTTPXMock,
) -> None:
    can = SlowCan()
    httpx_mock.add_callback(can, is_reusable=True)
    poller = Poller(SnapshotStore(), SystemClock())
    poller.apply(_config(groups_per_target=20, concurrency=3))
    poller.start()
    try:
        await _until(lambda: sum(can.out.values()) == 6, "three polls out per target")
        await asyncio.sleep(0.05)  # room for a wrong extra worker to start
        assert can.out == {"slow": 3, "fast": 3}
        assert _worker_tasks() == 6  # 40 due groups, 6 coroutines
        can.release.set()
        await _until(lambda: poller.ready, "every group polled")
        assert can.answered == 40
        assert can.peak == {"slow": 3, "fast": 3}
        await _until(lambda: _worker_tasks() == 0, "idle workers to end")
    finally:
        await poller.stop(grace_seconds=1)


async def test_stop_drops_queued_polls_and_lets_those_out_finish(
    httpx_mock: HTTPXMock,
) -> None:
    can = SlowCan()
    httpx_mock.add_callback(can, is_reusable=True)
    store = SnapshotStore()
    poller = Poller(store, SystemClock())
    poller.apply(_config(groups_per_target=10, concurrency=2))
    poller.start()
    await _until(lambda: sum(can.out.values()) == 4, "two polls out per target")
    stopping = asyncio.create_task(poller.stop(grace_seconds=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # it waits for the four polls out
    can.release.set()
    await asyncio.wait_for(stopping, 2)
    assert can.answered == 4  # the 16 queued ones were never sent
    polled = [s for s in store.snapshots() if s.poll_success is not None]
    assert len(polled) == 4
    assert _worker_tasks() == 0


async def test_a_run_due_as_the_last_worker_ends_gets_a_worker() -> None:
    """A poll's last act can wake the scheduler (job.modify for a backoff); a run of the same
    target due then must start a worker, though the one ending has not finished yet."""
    ran: list[GroupKey] = []
    scheduler = AsyncIOScheduler(timezone=UTC, executors={"default": TargetWorkers(lambda _: 1)})

    async def poll(key: GroupKey) -> None:
        ran.append(key)
        if key == ("t", "a"):
            due = datetime.now(UTC) - timedelta(milliseconds=1)
            scheduler.add_job(poll, "date", run_date=due, args=[("t", "b")], id="t/b")

    scheduler.start()
    try:
        scheduler.add_job(poll, "date", run_date=datetime.now(UTC), args=[("t", "a")], id="t/a")
        await _until(lambda: len(ran) == 2, "both runs")
    finally:
        scheduler.shutdown(wait=False)
    assert ran == [("t", "a"), ("t", "b")]


async def test_a_run_due_while_the_group_is_queued_or_out_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """APScheduler would log "skipped: maximum number of running instances reached" each time;
    the poll queued or out brings a fresh reading anyway."""
    caplog.set_level(logging.DEBUG)
    release = asyncio.Event()
    ran: list[GroupKey] = []
    scheduler = AsyncIOScheduler(timezone=UTC, executors={"default": TargetWorkers(lambda _: 1)})

    async def poll(key: GroupKey) -> None:
        ran.append(key)
        await release.wait()

    scheduler.start()
    try:
        for name in ("a", "b"):  # b waits in the queue behind a, on the one worker
            scheduler.add_job(
                poll, "interval", seconds=0.05, args=[("t", name)], id=f"t/{name}",
                max_instances=1, next_run_time=datetime.now(UTC),
            )  # fmt: skip
        await asyncio.sleep(0.3)  # five more runs of each come due meanwhile
        assert ran == [("t", "a")]
        release.set()
        await _until(lambda: len(ran) >= 2, "b's queued run")
    finally:
        scheduler.shutdown(wait=False)
    assert ran[:2] == [("t", "a"), ("t", "b")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    dropped = [r for r in caplog.records if r.getMessage().startswith("poll already queued")]
    assert {r.__dict__["job"] for r in dropped} == {"t/a", "t/b"}


async def test_a_run_s_event_names_the_store_its_job_is_in() -> None:
    """APScheduler's listeners learn where a job lives from its run's event; the workers name
    the store the poller adds every job to (a running scheduler refuses a store it lacks),
    without the job's private attribute."""
    events: list[JobExecutionEvent] = []
    scheduler = AsyncIOScheduler(timezone=UTC, executors={"default": TargetWorkers(lambda _: 1)})
    scheduler.add_listener(events.append, EVENT_JOB_EXECUTED)

    async def poll(key: GroupKey) -> None:
        pass

    scheduler.start()
    try:
        scheduler.add_job(
            poll, "date", run_date=datetime.now(UTC), args=[("t", "a")], id="t/a",
            jobstore=JOBSTORE,
        )  # fmt: skip
        await _until(lambda: len(events) == 1, "the run's event")
    finally:
        scheduler.shutdown(wait=False)
    assert (events[0].job_id, events[0].jobstore) == ("t/a", JOBSTORE)
