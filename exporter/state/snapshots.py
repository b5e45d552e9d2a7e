"""What the exporter knows about each group, as immutable snapshots.

The poller computes a new ``GroupSnapshot`` from the previous one and a poll's results with
the pure ``next_snapshot`` and stores it in one assignment; the collector reads snapshots
at scrape time from another thread without locks.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from exporter.can.models import FailureReason, PollResult, Reading
from exporter.config.maintenance import MaintenanceWindow
from exporter.config.model import Group
from exporter.state.freshness import NOT_YET_KNOWN, FreshnessLedger, stale_from

# Upper bounds of the poll-duration histogram; CAN usually answers in tens of milliseconds.
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REASONS: tuple[FailureReason, ...] = tuple(FailureReason)

GroupKey = tuple[str, str]


# Groups polled alike (as often, as fast) have equal counts: one tuple serves them all, which
# saves about 0.13 KiB a group. Bounded: emptied when full, the next polls fill it again.
_SHARED_COUNTS: dict[tuple[int, ...], tuple[int, ...]] = {}
_MAX_SHARED_COUNTS = 4096


def _shared(counts: tuple[int, ...]) -> tuple[int, ...]:
    shared = _SHARED_COUNTS.get(counts)
    if shared is None:
        if len(_SHARED_COUNTS) >= _MAX_SHARED_COUNTS:
            _SHARED_COUNTS.clear()
        _SHARED_COUNTS[counts] = shared = counts
    return shared


@dataclass(frozen=True, slots=True)
class DurationHistogram:
    """Per-bucket (not cumulative) counts; the last slot counts what is above every bound."""

    counts: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    total: float = 0.0

    def observe(self, seconds: float) -> DurationHistogram:
        slot = bisect.bisect_left(DURATION_BUCKETS, seconds)
        counts = list(self.counts)
        counts[slot] += 1
        return DurationHistogram(_shared(tuple(counts)), self.total + seconds)

    def cumulative(self) -> Iterator[tuple[float, int]]:
        running = 0
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            yield bound, running

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class PlanSnapshot:
    plan: str
    reading: Reading | None = None
    poll_success: bool | None = None
    # CAN's last answer about the plan alone said it does not exist.
    missing: bool = False


@dataclass(frozen=True, slots=True)
class DataChanges:
    """How the group's latestDateTime has moved between successful polls since the exporter
    started (or since the group's plans last changed in the config).

    ``data_time`` and ``refresh_time`` are the last non-null values seen, the baseline the
    next reading is compared with; a null in a reading leaves its baseline as it was.
    """

    data_time: datetime | None = None
    refresh_time: datetime | None = None
    # latestDateTime moved backwards: a rollback, or a backfill that rewrote older data.
    regressions: int = 0
    # Polls since latestDateTime last changed that saw latestRefreshTime advance.
    refreshes_without_new_data: int = 0
    # The exporter's time of the poll that first saw the current latestDateTime.
    last_change_time: datetime | None = None

    def after(self, reading: Reading, now: datetime) -> DataChanges:
        """The changes once a successful poll at ``now`` has read ``reading``."""
        data_time = reading.latest_data_time
        refresh_time = reading.latest_refresh_time or self.refresh_time
        if data_time is None:
            return replace(self, refresh_time=refresh_time)
        if self.data_time is None or data_time != self.data_time:
            # New data, or data going back: either way the streak of refreshes with the
            # same data is over.
            regressed = self.data_time is not None and data_time < self.data_time
            return replace(
                self,
                data_time=data_time,
                refresh_time=refresh_time,
                regressions=self.regressions + int(regressed),
                refreshes_without_new_data=0,
                last_change_time=now,
            )
        refreshed = (
            reading.latest_refresh_time is not None
            and self.refresh_time is not None
            and reading.latest_refresh_time > self.refresh_time
        )
        return replace(
            self,
            refresh_time=refresh_time,
            refreshes_without_new_data=self.refreshes_without_new_data + int(refreshed),
        )


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    group: Group
    reading: Reading | None = None
    poll_success: bool | None = None
    last_poll_time: datetime | None = None
    last_success_time: datetime | None = None
    last_reason: FailureReason | None = None
    last_error: str | None = None
    errors: tuple[int, ...] = (0,) * len(REASONS)
    durations: DurationHistogram = DurationHistogram()
    plans: tuple[PlanSnapshot, ...] = ()
    consecutive_failures: int = 0
    next_poll_time: datetime | None = None
    changes: DataChanges = DataChanges()
    freshness: FreshnessLedger = NOT_YET_KNOWN

    @property
    def polled(self) -> bool:
        return self.poll_success is not None

    def error_count(self, reason: FailureReason) -> int:
        return self.errors[REASONS.index(reason)]


def next_snapshot(
    previous: GroupSnapshot,
    result: PollResult,
    now: datetime,
    plan_results: Mapping[str, PollResult] | None = None,
) -> GroupSnapshot:
    """The snapshot after a poll: a failure keeps the last good reading and changes nothing.

    Without ``plan_results`` (a group poll without its plan polls) the plans keep theirs;
    with them, the plans are exactly those in ``plan_results``.
    """
    errors = previous.errors
    if result.error is not None:
        slot = REASONS.index(result.error.reason)
        errors = (*errors[:slot], errors[slot] + 1, *errors[slot + 1 :])
    succeeded = result.reading is not None
    return replace(
        previous,
        reading=result.reading if succeeded else previous.reading,
        poll_success=succeeded,
        last_poll_time=now,
        last_success_time=now if succeeded else previous.last_success_time,
        last_reason=result.error.reason if result.error is not None else None,
        last_error=result.error.describe() if result.error is not None else None,
        errors=errors,
        durations=previous.durations.observe(result.duration_seconds),
        plans=_next_plans(previous.plans, plan_results)
        if plan_results is not None
        else previous.plans,
        consecutive_failures=0 if succeeded else previous.consecutive_failures + 1,
        changes=previous.changes.after(result.reading, now)
        if result.reading is not None
        else previous.changes,
        freshness=_next_freshness(previous, result.reading, now)
        if result.reading is not None
        else previous.freshness,
    )


def _next_freshness(previous: GroupSnapshot, reading: Reading, now: datetime) -> FreshnessLedger:
    ledger = previous.freshness
    last = previous.reading
    if (
        ledger.since is not None
        and last is not None
        and (last.has_not_ready, last.latest_data_time, last.latest_refresh_time)
        == (reading.has_not_ready, reading.latest_data_time, reading.latest_refresh_time)
    ):
        # The same times under the same group go stale at the same instant: the interval
        # goes on as it is, without computing that instant again (a cron lookup with a
        # schedule) on every poll.
        return ledger
    return ledger.restarted(
        now.timestamp(), stale_from(previous.group, reading), previous.group.maintenance
    )


def regrouped(snapshot: GroupSnapshot, group: Group, now: datetime) -> GroupSnapshot:
    """The snapshot under a reloaded group: its reading is judged by the new thresholds, SLO
    and maintenance windows from ``now`` on; the time before stays counted as the old ones
    judged it."""
    freshness = snapshot.freshness
    if snapshot.reading is not None:
        freshness = freshness.restarted(
            now.timestamp(), stale_from(group, snapshot.reading), group.maintenance
        )
    return replace(snapshot, group=group, freshness=freshness)


def _next_plans(
    previous: tuple[PlanSnapshot, ...], results: Mapping[str, PollResult]
) -> tuple[PlanSnapshot, ...]:
    before = {plan.plan: plan for plan in previous}
    plans = []
    for plan, result in results.items():
        last = before.get(plan, PlanSnapshot(plan))
        reading = result.reading if result.reading is not None else last.reading
        succeeded = result.reading is not None
        plans.append(PlanSnapshot(plan, reading, succeeded, _missing(result, last)))
    return tuple(plans)


def _missing(result: PollResult, last: PlanSnapshot) -> bool:
    """Missing when CAN says so; present when it answers about the plan; else as before
    (a timeout says nothing about whether the plan exists)."""
    if result.error is not None and result.error.reason is FailureReason.PLAN_NOT_FOUND:
        return True
    return False if result.reading is not None else last.missing


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    """What the exporter knows about one target as a whole."""

    name: str
    circuit_open: bool = False
    requests_sent: int = 0
    # The target's own maintenance windows, from its config.
    maintenance: tuple[MaintenanceWindow, ...] = ()


class SnapshotStore:
    """The current snapshot of every configured group, keyed by (target, group), and of
    every target, keyed by name."""

    def __init__(self) -> None:
        self._snapshots: dict[GroupKey, GroupSnapshot] = {}
        self._targets: dict[str, TargetSnapshot] = {}

    def put_target(self, snapshot: TargetSnapshot) -> None:
        self._targets[snapshot.name] = snapshot

    def update_target(self, name: str, circuit_open: bool, requests_sent: int) -> None:
        """What a poll learnt of the target; its maintenance windows stay as they were set."""
        windows = known.maintenance if (known := self._targets.get(name)) else ()
        self._targets[name] = TargetSnapshot(name, circuit_open, requests_sent, windows)

    def set_target_maintenance(self, name: str, windows: tuple[MaintenanceWindow, ...]) -> None:
        """The target's own windows, as its config now says."""
        known = self._targets.get(name) or TargetSnapshot(name)
        self._targets[name] = replace(known, maintenance=windows)

    def remove_target(self, name: str) -> None:
        self._targets.pop(name, None)

    def targets(self) -> list[TargetSnapshot]:
        return list(self._targets.values())

    def get(self, key: GroupKey) -> GroupSnapshot | None:
        return self._snapshots.get(key)

    def put(self, snapshot: GroupSnapshot) -> None:
        self._snapshots[snapshot.group.key] = snapshot

    def remove(self, key: GroupKey) -> None:
        self._snapshots.pop(key, None)

    def snapshots(self) -> list[GroupSnapshot]:
        """A copy, safe to iterate while the poller stores new snapshots."""
        return list(self._snapshots.values())

    def keys(self) -> set[GroupKey]:
        return set(self._snapshots)

    def __len__(self) -> int:
        return len(self._snapshots)
