"""An APScheduler executor that runs due polls on a few workers per target, not a task each.

APScheduler's asyncio executor starts one task per due run. At start every group is due at
once, so 10,000 groups meant 10,000 tasks waiting for a connection, about 2.6 KiB each, and
the event loop juggling all of them. Here a due run joins its target's queue, and at most
``max_concurrency`` worker coroutines per target take runs from it, one after the other;
workers exist only while their queue has work.

A queued run counts as running for APScheduler (its ``max_instances`` accounting), so a
group waiting in the queue is not queued a second time. Such a run is dropped quietly, not
with APScheduler's warning: the poll already queued or out brings a fresh reading anyway, and
at start, groups whose first slot comes before their first poll is done would each log one.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_coroutine_job

log = logging.getLogger("exporter.workers")

# (job, run_times) as APScheduler hands them over; Any because APScheduler 3 is untyped.
_Run = tuple[Any, list[Any]]
# The job store the poller adds every job to, named in the events of their runs. (APScheduler's
# own executors read it from the job's private attribute.)
JOBSTORE = "default"


class TargetWorkers(BaseExecutor):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """Runs coroutine jobs whose first argument is a ``(target, group)`` key.

    ``concurrency(target)`` says how many runs of that target may be out at once.
    """

    def __init__(self, concurrency: Callable[[str], int]) -> None:
        super().__init__()
        self._concurrency = concurrency
        self._queues: dict[str, deque[_Run]] = {}
        self._workers: dict[str, set[asyncio.Task[None]]] = {}
        self._accepting = True

    def submit_job(self, job: Any, run_times: list[Any]) -> None:
        with self._lock:
            if self._instances[job.id] >= job.max_instances:
                log.debug("poll already queued or running; not queued again", extra={"job": job.id})
                return
            self._do_submit_job(job, run_times)
            self._instances[job.id] += 1

    def _do_submit_job(self, job: Any, run_times: list[Any]) -> None:
        target: str = job.args[0][0]
        queue = self._queues.setdefault(target, deque())
        queue.append((job, run_times))
        workers = self._workers.setdefault(target, set())
        if len(workers) < max(1, self._concurrency(target)):
            workers.add(asyncio.get_running_loop().create_task(self._work(queue, workers)))

    async def _work(self, queue: deque[_Run], workers: set[asyncio.Task[None]]) -> None:
        try:
            await self._run_queued(queue)
        finally:
            # Leave the set before this task is done: a run submitted in the same loop turn
            # (a job.modify() in the poll wakes the scheduler) must start a new worker.
            workers.discard(asyncio.current_task())

    async def _run_queued(self, queue: deque[_Run]) -> None:
        while queue and self._accepting:
            job, run_times = queue.popleft()
            try:
                events = await run_coroutine_job(job, JOBSTORE, run_times, self._logger.name)
            except asyncio.CancelledError:
                self._run_job_error(job.id, *sys.exc_info()[1:])
                raise
            except Exception:  # run_coroutine_job catches the job's own; this is a bug here
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

    def running(self) -> set[asyncio.Task[None]]:
        """The worker tasks out now (each runs at most one poll at a time)."""
        return set().union(*self._workers.values())

    def stop_taking(self) -> None:
        """Drop the queued runs: workers finish the poll they are on and stop."""
        self._accepting = False
        for queue in self._queues.values():
            for job, _ in queue:
                self._run_job_success(job.id, [])
            queue.clear()

    def shutdown(self, wait: bool = True) -> None:
        self.stop_taking()
        for task in self.running():
            task.cancel()
