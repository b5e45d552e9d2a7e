"""Scheduled polling: one APScheduler job per plan group, poll -> parse -> store.

APScheduler decides when each group is due; a few workers per target (exporter.workers)
run the due polls, at most the target's max_concurrency at a time.

Each group's job runs on its own interval, at most one run at a time, with missed runs
coalesced. Groups are spread over their interval by a stable hash so a thousand groups
with the same interval do not all hit CAN in the same second, and every group is polled
once right at start.

A failing group backs off: its next poll moves out exponentially, up to its max_backoff.
A ``per_plan: auto`` group is asked about as a whole; while its answer shows it unhealthy, its
plans are asked about one by one as well (exporter.drilldown decides when and which to export).

A target whose every group fails at the target level (timeouts, refused connections, 5xx,
rejected credentials) opens its circuit: polls stop except one probe at a time, and the
first answer closes it and brings the target's groups forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.can.client import CanClient
from exporter.can.models import CanError, FailureReason, PollResult, Reading
from exporter.clock import Clock
from exporter.config.model import Config, Group, Target
from exporter.config.sharding import group_hash
from exporter.polling.drilldown import Drilldown, decide, offending, plans_to_ask
from exporter.polling.resilience import Circuit, CircuitChange, backoff_delay
from exporter.polling.workers import TargetWorkers
from exporter.state import GroupKey, GroupSnapshot, SnapshotStore, TargetSnapshot, next_snapshot

log = logging.getLogger("exporter.poller")

ClientFactory = Callable[[Target], CanClient]
# How far a CAN time may be ahead of ours before it is reported as skew.
_FUTURE_TOLERANCE = timedelta(minutes=1)
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
        self._client_factory = client_factory
        self._random = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._clients: dict[str, CanClient] = {}
        self._circuits: dict[str, Circuit] = {}
        self._targets: dict[str, Target] = {}
        self._groups: dict[GroupKey, Group] = {}
        # Each target's group names, kept with _groups so a poll never scans every group.
        self._target_groups: dict[str, set[str]] = {}
        self._workers = TargetWorkers(self._concurrency)
        self._scheduler = AsyncIOScheduler(timezone=UTC, executors={"default": self._workers})
        self._retired: set[asyncio.Task[None]] = set()
        self._awaiting_first_poll: set[GroupKey] = set()
        # New jobs' first polls, due at once: when each was asked for (for next_run_time), and
        # the jobs not yet handed to the workers (that waits for the scheduler to run).
        self._first_polls: dict[str, datetime] = {}
        self._first_polls_to_submit: dict[str, Job] = {}
        self._ready = False
        # Auto groups whose drilldown has been logged as limited to drilldown_max_plans.
        self._truncation_logged: set[GroupKey] = set()

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
            rezoned = {
                name
                for name, target in config.targets.items()
                if name in self._targets and self._targets[name].timezone != target.timezone
            }
            changed_targets = self._apply_targets(config.targets)
            wanted = {group.key: group for group in config.groups}
            for done, key in enumerate(self._groups.keys() - wanted.keys(), 1):
                self._remove_group(key)
                if done % _APPLY_STEP == 0:
                    yield
            for done, (key, group) in enumerate(wanted.items(), 1):
                previous = self._groups.get(key)
                if previous is None:
                    self._add_group(group)
                elif previous != group or group.target in changed_targets:
                    self._change_group(
                        previous,
                        group,
                        new_client=group.target in changed_targets,
                        rezoned=group.target in rezoned,
                    )
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
        pending = self._workers.running() | self._retired
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=grace_seconds)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))
        self._clients.clear()

    async def poll_once(self, config: Config) -> list[GroupSnapshot]:
        """Poll every group of ``config`` once, without the scheduler (for ``--once``)."""
        self.apply(config)
        await asyncio.gather(*(self.poll_group(key) for key in self._groups))
        return [snapshot for key in self._groups if (snapshot := self._store.get(key))]

    async def poll_group(self, key: GroupKey) -> None:
        self._first_polls.pop(_job_id(key), None)
        group = self._groups.get(key)
        client = self._clients.get(key[0])
        circuit = self._circuits.get(key[0])
        if group is None or client is None or circuit is None:
            return  # removed by a reload while the run was queued
        probe = circuit.is_open
        if probe and not circuit.start_probe(self._clock.now()):
            # Another group's probe is out, or the probes are backing off: CAN gets one
            # request at a time, fewer and fewer while it stays down.
            self._skip(group)
            return
        try:
            # A probe asks about the group only, not each of its plans as well, and once: a
            # retry would only double what a dead target is sent.
            current = functools.partial(self._current, client, group)
            per_plan = group.per_plan and not probe
            result, plan_results = await _poll(
                client, group, per_plan=per_plan, current=current, retry=not probe
            )
            if group.drilldown and not probe:
                plan_results = await self._drill_down(client, group, result, current)
        finally:
            if probe:
                circuit.end_probe()
        latest = self._groups.get(key)
        if latest is None or not _asks_the_same(group, latest):
            return  # new plans by a reload while the request was out: the result is stale
        if self._circuits.get(key[0]) is not circuit:
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
        _log_outcome(group, previous, result, plan_results, now)
        self._store.put_target(TargetSnapshot(group.target, circuit.is_open, client.requests_sent))
        if change is not None:
            self._circuit_changed(group.target, change, circuit)
        self._mark_polled(key)

    def _current(self, client: CanClient, group: Group) -> bool:
        latest = self._groups.get(group.key)
        return (
            self._clients.get(group.target) is client
            and latest is not None
            and _asks_the_same(group, latest)
        )

    async def _drill_down(
        self, client: CanClient, group: Group, result: PollResult, current: Callable[[], bool]
    ) -> dict[str, PollResult] | None:
        """An auto group's plan results to store: the offending plans after asking each plan
        while the group is unhealthy, none once it is healthy, None to keep the last ones."""
        decision = decide(group, result, self._clock.now())
        if decision is Drilldown.KEEP:
            return None
        if decision is Drilldown.CLEAR:
            return {}
        plans = plans_to_ask(group)
        if len(plans) < len(group.plans) and group.key not in self._truncation_logged:
            self._truncation_logged.add(group.key)
            log.info(
                "group has more plans than drilldown_max_plans; asking about the first ones only",
                extra={
                    "target": group.target,
                    "group": group.name,
                    "plans": len(group.plans),
                    "drilldown_max_plans": group.drilldown_max_plans,
                },
            )
        results = _one_plan_results(group, result) or await _poll_each(
            client, group, plans, current
        )
        found = offending(group, results, self._clock.now())
        log.debug(
            "drilldown",
            extra={
                "target": group.target,
                "group": group.name,
                "asked": len(plans),
                "offending": len(found),
            },
        )
        return found

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
        circuit = self._circuits.get(group.target)
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
        fields = {"target": target, "groups": circuit.failing_groups}
        if change is CircuitChange.OPENED:
            log.warning(
                "every group of the target is failing; circuit open, probing one request at a time",
                extra=fields,
            )
            return
        log.info("target answers again; circuit closed", extra={"target": target})
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

    def _apply_targets(self, targets: Mapping[str, Target]) -> set[str]:
        changed: set[str] = set()
        for name in self._targets.keys() - targets.keys():
            self._retire_client(name)
            self._circuits.pop(name, None)
            self._store.remove_target(name)
            changed.add(name)
        for name, target in targets.items():
            if self._targets.get(name) != target:
                if name in self._targets:
                    self._retire_client(name)
                self._clients[name] = self._client_factory(target)
                # A changed target (new URL, new credentials) gets a fresh chance.
                self._circuits[name] = Circuit()
                self._store.put_target(TargetSnapshot(name))
                changed.add(name)
        self._targets = dict(targets)
        return changed

    def _retire_client(self, name: str) -> None:
        client = self._clients.pop(name, None)
        if client is not None:
            # Requests in flight still hold it; close it once they have had their timeout.
            task = asyncio.get_running_loop().create_task(
                _close_later(client, client.target.timeout)
            )
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    def _add_group(self, group: Group) -> None:
        self._groups[group.key] = group
        self._target_groups.setdefault(group.target, set()).add(group.name)
        self._store.put(GroupSnapshot(group))
        self._schedule(group)

    def _change_group(
        self, previous: Group, group: Group, *, new_client: bool, rezoned: bool = False
    ) -> None:
        self._groups[group.key] = group
        snapshot = self._store.get(group.key) or GroupSnapshot(group)
        if rezoned:
            # The same CAN text read in another zone is another instant: comparing it with the
            # old baseline would count a regression (or an advance) that never happened.
            changes = replace(snapshot.changes, data_time=None, refresh_time=None)
            snapshot = replace(snapshot, changes=changes)
        same_plans = _asks_the_same(previous, group)
        self._truncation_logged.discard(group.key)
        # A reading of other plans says nothing about the new ones.
        self._store.put(replace(snapshot, group=group) if same_plans else GroupSnapshot(group))
        # Thresholds, labels, timeout, backoff: the next poll reads them from _groups. Only new
        # plans, a new interval or a new client poll now; a reload that changes a default
        # threshold must not send every group to CAN at once.
        if same_plans and previous.interval == group.interval and not new_client:
            return
        self._scheduler.remove_job(_job_id(group.key))
        self._schedule(group)

    def _remove_group(self, key: GroupKey) -> None:
        del self._groups[key]
        target, name = key
        self._target_groups.get(target, set()).discard(name)
        circuit = self._circuits.get(target)
        if circuit is not None:
            circuit.forget(name)
        self._store.remove(key)
        self._awaiting_first_poll.discard(key)
        self._truncation_logged.discard(key)
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


async def _poll(
    client: CanClient,
    group: Group,
    *,
    per_plan: bool,
    current: Callable[[], bool],
    retry: bool = True,
) -> tuple[PollResult, dict[str, PollResult] | None]:
    if not per_plan:
        return await client.poll(group.plan_key, group.plans, group.timeout, retry=retry), None
    if len(group.plans) == 1:
        result = await client.poll(group.plan_key, group.plans, group.timeout)
        return result, _one_plan_results(group, result)
    return await asyncio.gather(
        client.poll(group.plan_key, group.plans, group.timeout),
        _poll_each(client, group, group.plans, current),
    )


async def _poll_each(
    client: CanClient, group: Group, plans: tuple[str, ...], current: Callable[[], bool]
) -> dict[str, PollResult]:
    """Ask about each plan alone (per_plan: true, and auto's drilldown), at most the target's
    max_concurrency at a time.

    The client's semaphore and rate limit bound what CAN receives anyway; the few workers here
    keep a group to that many pending requests, not one task per plan.
    """
    results: dict[str, PollResult] = {}
    queue = iter(plans)

    async def work() -> None:
        for plan in queue:
            # A reload replaced the client (closed soon after) or the group: the poll's
            # result will be dropped, so CAN is asked nothing more for it.
            if not current():
                return
            results[plan] = await client.poll(group.plan_key, [plan], group.timeout)

    workers = min(len(plans), client.target.max_concurrency)
    await asyncio.gather(*(work() for _ in range(workers)))
    return {plan: results[plan] for plan in plans if plan in results}


def _one_plan_results(group: Group, result: PollResult) -> dict[str, PollResult] | None:
    """A group of one plan asked CAN exactly what asking that plan alone would: the group's
    answer is the plan's, and CAN is not asked twice. None for a larger group."""
    return {group.plans[0]: result} if len(group.plans) == 1 else None


def _asks_the_same(previous: Group, group: Group) -> bool:
    """Whether a poll of ``previous`` asks CAN what a poll of ``group`` would."""
    return (previous.plan_key, previous.plans, previous.per_plan, previous.drilldown) == (
        group.plan_key,
        group.plans,
        group.per_plan,
        group.drilldown,
    )


async def _close_later(client: CanClient, delay: float) -> None:
    try:
        await asyncio.sleep(delay)
    finally:
        await client.aclose()


def _job_id(key: GroupKey) -> str:
    return f"{key[0]}/{key[1]}"


def _spread_fraction(key: GroupKey) -> float:
    """A stable number in [0, 1) for the group, the same on every start."""
    return group_hash(*key) / 2**32


def _log_outcome(
    group: Group,
    previous: GroupSnapshot,
    result: PollResult,
    plan_results: Mapping[str, PollResult] | None,
    now: datetime,
) -> None:
    """Log on state changes only, so a failing CAN does not flood the log."""
    fields: dict[str, object] = {"target": group.target, "group": group.name}
    if result.error is not None:
        repeated = previous.last_reason == result.error.reason
        level = logging.DEBUG if repeated else logging.WARNING
        log.log(level, "poll failed", extra={**fields, **_error_fields(result.error)})
    elif previous.poll_success is False:
        log.info("poll recovered", extra=fields)
    if result.reading is not None:
        _warn_future_times(fields, result.reading, previous.reading, now)
    before = {p.plan: p for p in previous.plans}
    for plan, plan_result in (plan_results or {}).items():
        error = plan_result.error
        if error is None:
            continue
        last = before.get(plan)
        failed_before = last is not None and last.poll_success is False
        newly_missing = error.reason is FailureReason.PLAN_NOT_FOUND and not (last and last.missing)
        if not failed_before or newly_missing:
            log.warning("plan poll failed", extra={**fields, "plan": plan, **_error_fields(error)})


def _warn_future_times(
    fields: Mapping[str, object], reading: Reading, previous: Reading | None, now: datetime
) -> None:
    for can_field, attribute in (
        ("latestDateTime", "latest_data_time"),
        ("latestRefreshTime", "latest_refresh_time"),
    ):
        moment: datetime | None = getattr(reading, attribute)
        before: datetime | None = getattr(previous, attribute) if previous else None
        if moment is not None and _in_future(moment, now) and not _in_future(before, now):
            log.warning(
                "CAN time is in the future: check the target's timezone or clock skew",
                extra={**fields, "field": can_field, "value": moment.isoformat()},
            )


def _error_fields(error: CanError) -> dict[str, object]:
    return {
        "reason": error.reason.value,
        "error": error.message,
        "error_msg": error.error_msg,
        "trace_id": error.trace_id,
    }


def _in_future(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and moment - now > _FUTURE_TOLERANCE
