"""Horizontal sharding: each instance polls and exports only its share of the plan groups.

As kube-state-metrics shards (``--shard`` / ``--total-shards``), every instance runs with the
same configuration and the same ``--shard.total``, and its own ``--shard.index``. A group
belongs to exactly one shard::

    shard_of(target, group, total) = zlib.crc32(f"{target}/{group}".encode("utf-8")) % total

CRC-32 (the IEEE polynomial, as zlib, gzip and PNG use it) is fixed by its specification, so the
assignment is the same in every process, on every machine and every Python version, unlike
``hash()``, which is salted per process. A group keeps its shard across restarts and reloads for
as long as its target name, its group name and the shard total stay the same; changing the total
moves most groups to another shard.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.config.model import Config


def group_hash(target: str, group: str) -> int:
    """The group's stable 32-bit hash: the CRC-32 of ``target/group``."""
    return zlib.crc32(f"{target}/{group}".encode())


def shard_of(target: str, group: str, total: int) -> int:
    """The index of the shard that owns the group ``target/group`` among ``total`` shards."""
    if total < 1:
        raise ValueError(_total_problem(total))
    return group_hash(target, group) % total


@dataclass(frozen=True, slots=True)
class Shard:
    """This instance's shard: ``index`` in ``0 .. total - 1``."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(_total_problem(self.total))
        if self.index < 0:
            raise ValueError(f"shard index must not be negative, got {self.index}")
        if self.index >= self.total:
            raise ValueError(
                f"shard index {self.index} is out of range for a shard total of {self.total} "
                f"(0 to {self.total - 1})"
            )

    @property
    def sharded(self) -> bool:
        return self.total > 1

    def owns(self, target: str, group: str) -> bool:
        return shard_of(target, group, self.total) == self.index

    def select(self, config: Config) -> Config:
        """``config`` with only this shard's groups. Targets are kept: their secrets are still
        masked in logs and their ``value_file`` still watched, and they count in --check-config."""
        if not self.sharded:
            return config
        groups = tuple(group for group in config.groups if self.owns(group.target, group.name))
        warnings = config.warnings
        if config.groups and not groups:
            warnings = (
                *warnings,
                f"groups: none of the {len(config.groups)} groups falls in shard {self.index} "
                f"of {self.total}; this instance will only export its own metrics",
            )
        return replace(config, groups=groups, warnings=warnings)

    def __str__(self) -> str:
        return f"shard {self.index} of {self.total}"


UNSHARDED = Shard()


def _total_problem(total: int) -> str:
    return f"shard total must be at least 1, got {total}"
