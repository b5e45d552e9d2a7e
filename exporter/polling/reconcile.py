"""What a new config changes: the targets and groups to add, replace or drop.

Pure comparisons of the poller's current targets and groups with a new config's. The poller
applies the answer: new clients and circuits, jobs added, moved or removed, snapshots kept,
reset or dropped. A change that leaves what CAN is asked alone (thresholds, labels, timeouts)
keeps the group's job and its last reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from exporter.config.model import Group, Target
from exporter.state.snapshots import GroupKey


@dataclass(frozen=True, slots=True)
class TargetChanges:
    """What a new config does to the targets."""

    # Targets gone from the config: their clients retire, their circuits and snapshots go.
    removed: tuple[str, ...]
    # Targets new or different (URL, credentials, ...), in config order: a new client each,
    # and a fresh circuit.
    replaced: tuple[str, ...]
    # Targets kept under another timezone: the same CAN text is now another instant.
    rezoned: frozenset[str]
    # Removed and replaced: the targets whose groups no longer use the client they had.
    new_client: frozenset[str]


@dataclass(frozen=True, slots=True)
class GroupChange:
    """A group kept under its name whose config or target changed."""

    previous: Group
    group: Group
    # Its target has a new client: the group is polled through it now.
    new_client: bool
    # Its target's timezone changed: the change baselines no longer compare.
    rezoned: bool

    @property
    def same_plans(self) -> bool:
        """A poll asks CAN the same: the last reading still stands for the new group."""
        return asks_the_same(self.previous, self.group)

    @property
    def reschedule(self) -> bool:
        """Whether the group's job is replaced (and so polled now).

        Only new plans, a new interval or a new client poll now; a reload that changes a
        default threshold must not send every group to CAN at once.
        """
        return not (
            self.same_plans
            and self.previous.interval == self.group.interval
            and not self.new_client
        )


def target_changes(old: Mapping[str, Target], new: Mapping[str, Target]) -> TargetChanges:
    removed = tuple(old.keys() - new.keys())
    replaced = tuple(name for name, target in new.items() if old.get(name) != target)
    return TargetChanges(
        removed=removed,
        replaced=replaced,
        rezoned=frozenset(
            name
            for name, target in new.items()
            if name in old and old[name].timezone != target.timezone
        ),
        new_client=frozenset(removed) | frozenset(replaced),
    )


def groups_gone(old: Mapping[GroupKey, Group], wanted: Mapping[GroupKey, Group]) -> Set[GroupKey]:
    """The groups the new config no longer has."""
    return old.keys() - wanted.keys()


def group_change(previous: Group, group: Group, targets: TargetChanges) -> GroupChange | None:
    """How a group kept under its name changed; None when neither it nor its target did."""
    new_client = group.target in targets.new_client
    if previous == group and not new_client:
        return None
    return GroupChange(
        previous, group, new_client=new_client, rezoned=group.target in targets.rezoned
    )


def asks_the_same(previous: Group, group: Group) -> bool:
    """Whether a poll of ``previous`` asks CAN what a poll of ``group`` would."""
    return (previous.plan_key, previous.plans, previous.per_plan, previous.drilldown) == (
        group.plan_key,
        group.plans,
        group.per_plan,
        group.drilldown,
    )
