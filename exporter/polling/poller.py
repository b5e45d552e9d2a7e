"""Scheduled polling: one APScheduler job per plan group, poll -> parse -> store.

APScheduler decides when each group is due; a few workers per target (exporter.workers)
run the due polls, at most the target's max_concurrency at a time.

Each group's job runs on its own interval, at most one run at a time, with missed runs
coalesced. Groups are spread over their interval by a stable hash so a thousand groups
with the same interval do not all hit CAN in the same second, and every group is polled
once right at start.

A failing group backs off: its next poll moves out exponentially, up to its max_backoff.
A target whose every group fails at the target level (timeouts, refused connections, 5xx,
rejected credentials) opens its circuit: polls stop except one probe at a time, and the
first answer closes it and brings the target's groups forward.

What one poll sends is exporter.polling.run's, what a reload changes is
exporter.polling.reconcile's, and which outcomes are logged is exporter.polling.outcomes'.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Generator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.can.client import CanClient
from exporter.clock import Clock
from exporter.config.model import Config, Group, Target
from exporter.config.sharding import group_hash
from exporter.polling.clients import ClientFactory, TargetClients
from exporter.polling.outcomes import log_circuit_change, log_outcome
from exporter.polling.reconcile import (
    GroupChange,
    TargetChanges,
    asks_the_same,
    group_change,
    groups_gone,
    target_changes,
)
from exporter.polling.resilience import Circuit, CircuitChange, backoff_delay
from exporter.polling.run import Asker
from exporter.polling.workers import JOBSTORE, TargetWorkers
from exporter.state.snapshots import (
    GroupKey,
    GroupSnapshot,
    SnapshotStore,
    TargetSnapshot,
    next_snapshot,
    regrouped,
)

log = logging.getLogger("exporter.poller")

_MAX_JITTER_SECONDS = 5.0
# When a circuit closes, the target's groups are polled again within this (or their interval).
_RESUME_WITHIN_SECONDS = 60.0
# Groups added, changed or removed between two turns of the event loop in a reload: about 20 ms.
_APPLY_STEP = 256


class Poller:
    def __init__(
        self,
        store: SnapshotStore,
        clock: Clock,
        client_factory: ClientFactory = CanClient,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._random = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._clients = TargetClients(client_factory)
        self._targets: dict[str, Target] = {}
        self._groups: dict[GroupKey, Group] = {}
        # Each target's group names, kept with _groups so a poll never scans every group.
        self._target_groups: dict[str, set[str]] = {}
        self._workers = TargetWorkers(self._concurrency)
        self._scheduler = AsyncIOScheduler(timezone=UTC, executors={"default": self._workers})
        self._awaiting_first_poll: set[GroupKey] = set()
        # New jobs' first polls, due at once: when each was asked for (for next_run_time), and
        # the jobs not yet handed to the workers (that waits for the scheduler to run).
        self._first_polls: dict[str, datetime] = {}
        self._first_polls_to_submit: dict[str, Job] = {}
        self._ready = False
        self._asker = Asker(clock)

    @property
    def ready(self) -> bool:
        """True once every group of the first configuration has been polled (latched)."""
        return self._ready

    def apply(self, config: Config) -> None:
        """Make the jobs, clients and snapshots match ``config`` (first load and reloads)."""
        with contextlib.closing(self._apply_steps(config)) as steps:
            for _ in steps:
                pass

    async def apply_in_steps(self, config: Config) -> None:
        """As ``apply``, letting the event loop run between steps of ``_APPLY_STEP`` groups.

        A reload that changed every group's interval held the loop for 0.65 s in one go at
        10,000 groups; in steps, scrapes and polls go on meanwhile. Each group is either its
        old self or its new self in between, never half of each.
        """
        with contextlib.closing(self._apply_steps(config)) as steps:
            for _ in steps:
                await asyncio.sleep(0)

    def _apply_steps(self, config: Config) -> Generator[None, None, None]:
        running = self._scheduler.running
        if running:
            # One wake-up for the whole batch instead of one per added job.
            self._scheduler.pause()
        try:
            targets = target_changes(self._targets, config.targets)
            self._apply_targets(targets, config)
            wanted = {group.key: group for group in config.groups}
            for done, key in enumerate(groups_gone(self._groups, wanted), 1):
                self._remove_group(key)
                if done % _APPLY_STEP == 0:
                    yield
            for done, (key, group) in enumerate(wanted.items(), 1):
                previous = self._groups.get(key)
                if previous is None:
                    self._add_group(group)
                elif (change := group_change(previous, group, targets)) is not None:
                    self._change_group(change)
                if done % _APPLY_STEP == 0:
                    yield
            if not self._ready and not running:
                self._awaiting_first_poll = set(wanted)
                self._ready = not wanted
        finally:
            if running:
                self._scheduler.resume()
        if running:
            yield from self._first_polls_in_steps()

    def scheduled(self) -> list[str]:
        """The ``target/group`` ids of the scheduled jobs."""
        return sorted(job.id for job in self._scheduler.get_jobs())

    def next_run_time(self, key: GroupKey) -> datetime | None:
        """When the group is polled next (None when it has no job)."""
        job_id = _job_id(key)
        if job_id in self._first_polls:
            return self._first_polls[job_id]
        job = self._scheduler.get_job(job_id)
        return None if job is None else job.next_run_time

    def start(self) -> None:
        self._scheduler.start()
        self._submit_first_polls()

    def _submit_first_polls(self) -> None:
        for _ in self._first_polls_in_steps():
            pass

    def _first_polls_in_steps(self) -> Generator[None, None, None]:
        """Hand the new jobs' first polls straight to the workers, ``_APPLY_STEP`` at a time.

        Left to APScheduler (a next_run_time of now), 10,000 jobs due at once held the event
        loop for about 0.3 s before the first request went out, and cost it about 30 us each.
        """
        asked = [datetime.now(UTC)]  # APScheduler's own clock: it checks the misfire grace time
        jobs = list(self._first_polls_to_submit.values())
        self._first_polls_to_submit.clear()
        for done, job in enumerate(jobs, 1):
            # Not queued when the group's previous poll is still queued or out (a reload).
            self._workers.submit_job(job, asked)
            if done % _APPLY_STEP == 0:
                yield

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop scheduling, let polls in flight finish (bounded), close the clients."""
        if self._scheduler.running:
            # Pause, not shutdown: APScheduler's shutdown cancels the jobs that are running.
            self._scheduler.pause()
            self._workers.stop_taking()
        pending = self._workers.running() | self._clients.retiring
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=grace_seconds)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        await self._clients.aclose()

    async def poll_once(self, config: Config) -> list[GroupSnapshot]:
        """Poll every group of ``config`` once, without the scheduler (for ``--once``)."""
        self.apply(config)
        await asyncio.gather(*(self.poll_group(key) for key in self._groups))
        return [snapshot for key in self._groups if (snapshot := self._store.get(key))]

    async def poll_group(self, key: GroupKey) -> None:
        self._first_polls.pop(_job_id(key), None)
        group = self._groups.get(key)
        client = self._clients.client(key[0])
        circuit = self._clients.circuit(key[0])
        if group is None or client is None or circuit is None:
            return  # removed by a reload while the run was queued
        probe = circuit.is_open
        if probe and not circuit.start_probe(self._clock.now()):
            # Another group's probe is out, or the probes are backing off: CAN gets one
            # request at a time, fewer and fewer while it stays down.
            self._skip(group)
            return
        try:
            current = functools.partial(self._current, client, group)
            result, plan_results = await self._asker.ask(
                client, group, probe=probe, current=current
            )
        finally:
            if probe:
                circuit.end_probe()
        latest = self._groups.get(key)
        if latest is None or not asks_the_same(group, latest):
            return  # new plans by a reload while the request was out: the result is stale
        if self._clients.circuit(key[0]) is not circuit:
            return  # a new client (URL, credentials): its own polls will tell
        # A reload of thresholds, labels or timeouts leaves CAN's answer standing.
        group = latest
        previous = self._store.get(key) or GroupSnapshot(group)
        now = self._clock.now()
        reason = result.error.reason if result.error is not None else None
        groups = self._target_groups.get(group.target, set())
        change = circuit.record(group.name, reason, groups)
        if circuit.is_open:  # it opened, or a probe failed: the next probe waits longer
            circuit.hold_probes(now, group.interval, group.max_backoff, self._random.random())
        snapshot = next_snapshot(previous, result, now, plan_results)
        self._store.put(replace(snapshot, next_poll_time=self._next_poll_time(snapshot, now)))
        log_outcome(group, previous, result, plan_results, now)
        self._store.update_target(group.target, circuit.is_open, client.requests_sent)
        if change is not None:
            self._circuit_changed(group.target, change, circuit)
        self._mark_polled(key)

    def _current(self, client: CanClient, group: Group) -> bool:
        latest = self._groups.get(group.key)
        return (
            self._clients.client(group.target) is client
            and latest is not None
            and asks_the_same(group, latest)
        )

    def _concurrency(self, target: str) -> int:
        known = self._targets.get(target)
        return known.max_concurrency if known is not None else 1

    def _next_poll_time(self, snapshot: GroupSnapshot, now: datetime) -> datetime:
        """When the group is polled next: on schedule after a success, backed off after failures,
        and not before the next probe while the target's circuit is open.

        A failure moves the group's job; a success leaves the job on its interval.
        """
        group = snapshot.group
        job = self._scheduler.get_job(_job_id(group.key))
        circuit = self._clients.circuit(group.target)
        next_probe = circuit.next_probe if circuit is not None else None
        if snapshot.consecutive_failures == 0 and next_probe is None:
            if self._scheduler.running and job is not None and job.next_run_time is not None:
                scheduled: datetime = job.next_run_time
                return scheduled
            return now + timedelta(seconds=group.interval)
        delay = backoff_delay(
            group.interval, snapshot.consecutive_failures, group.max_backoff, self._random.random()
        )
        next_time = now + timedelta(seconds=delay)
        if next_probe is not None and next_probe > next_time:
            next_time = next_probe
        if job is not None:
            job.modify(next_run_time=next_time)
        return next_time

    def _skip(self, group: Group) -> None:
        """A poll not sent because the target's circuit is open: wait as if it had failed."""
        snapshot = self._store.get(group.key) or GroupSnapshot(group)
        pretend = replace(snapshot, consecutive_failures=max(1, snapshot.consecutive_failures))
        now = self._clock.now()
        self._store.put(replace(snapshot, next_poll_time=self._next_poll_time(pretend, now)))

    def _circuit_changed(self, target: str, change: CircuitChange, circuit: Circuit) -> None:
        log_circuit_change(target, change, circuit)
        if change is CircuitChange.OPENED:
            return
        now = self._clock.now()
        for name in self._target_groups.get(target, ()):
            key = (target, name)
            snapshot = self._store.get(key)
            if snapshot is None or snapshot.poll_success is not False:
                continue
            within = min(snapshot.group.interval, _RESUME_WITHIN_SECONDS)
            next_time = now + timedelta(seconds=_spread_fraction(key) * within)
            job = self._scheduler.get_job(_job_id(key))
            if job is not None:
                job.modify(next_run_time=next_time)
            self._store.put(replace(snapshot, next_poll_time=next_time))

    def _apply_targets(self, changes: TargetChanges, config: Config) -> None:
        for name in changes.removed:
            self._clients.remove(name)
            self._store.remove_target(name)
        for name in changes.replaced:
            self._clients.replace(name, config.targets[name])
            self._store.put_target(TargetSnapshot(name))
        self._targets = dict(config.targets)
        for name in config.targets:  # a window a reload adds is in force at once
            self._store.set_target_maintenance(name, config.target_maintenance.get(name, ()))

    def _add_group(self, group: Group) -> None:
        self._groups[group.key] = group
        self._target_groups.setdefault(group.target, set()).add(group.name)
        self._store.put(GroupSnapshot(group))
        self._schedule(group)

    def _change_group(self, change: GroupChange) -> None:
        group = change.group
        self._groups[group.key] = group
        snapshot = self._store.get(group.key) or GroupSnapshot(group)
        if change.rezoned:
            # The same CAN text read in another zone is another instant: comparing it with the
            # old baseline would count a regression (or an advance) that never happened.
            changes = replace(snapshot.changes, data_time=None, refresh_time=None)
            snapshot = replace(snapshot, changes=changes)
        same_plans = change.same_plans
        self._asker.forget(group.key)
        # A reading of other plans says nothing about the new ones.
        self._store.put(
            regrouped(snapshot, group, self._clock.now()) if same_plans else GroupSnapshot(group)
        )
        # Thresholds, labels, timeout, backoff: the next poll reads them from _groups.
        if not change.reschedule:
            return
        self._scheduler.remove_job(_job_id(group.key))
        self._schedule(group)

    def _remove_group(self, key: GroupKey) -> None:
        del self._groups[key]
        target, name = key
        self._target_groups.get(target, set()).discard(name)
        circuit = self._clients.circuit(target)
        if circuit is not None:
            circuit.forget(name)
        self._store.remove(key)
        self._awaiting_first_poll.discard(key)
        self._asker.forget(key)
        self._first_polls.pop(_job_id(key), None)
        self._first_polls_to_submit.pop(_job_id(key), None)
        self._scheduler.remove_job(_job_id(key))

    def _schedule(self, group: Group) -> None:
        now = self._clock.now()
        # APScheduler aligns runs to start_date + k * interval: a per-group start spreads them.
        offset = _spread_fraction(group.key) * group.interval
        job = self._scheduler.add_job(
            self.poll_group,
            IntervalTrigger(
                seconds=group.interval,
                start_date=now + timedelta(seconds=offset),
                jitter=min(group.interval * 0.05, _MAX_JITTER_SECONDS),
                timezone=UTC,
            ),
            args=[group.key],
            id=_job_id(group.key),
            jobstore=JOBSTORE,
            name=f"poll {group.target}/{group.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(group.interval)),
        )
        self._first_polls[job.id] = now
        self._first_polls_to_submit[job.id] = job

    def _mark_polled(self, key: GroupKey) -> None:
        if self._ready:
            return
        self._awaiting_first_poll.discard(key)
        if not self._awaiting_first_poll:
            self._ready = True
            log.info("every group has been polled once; ready")


def _job_id(key: GroupKey) -> str:
    return f"{key[0]}/{key[1]}"


def _spread_fraction(key: GroupKey) -> float:
    """A stable number in [0, 1) for the group, the same on every start."""
    return group_hash(*key) / 2**32
