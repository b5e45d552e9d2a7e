"""Sharding: which instance owns which group, and the shard's own gauges."""

from __future__ import annotations

import re
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.config.model import Config
from exporter.config.sharding import UNSHARDED, Shard, shard_of
from exporter.daemon.run import ConfigSource
from exporter.metrics.selfmetrics import ExporterMetrics
from tests.helpers.builders import config_for, make_group
from tests.helpers.programs import require_tool


def _config(count: int) -> Config:
    """``count`` groups spread over three targets."""
    base = config_for("http://can.invalid", "  - {name: g, target: prod, plan_ids: [p]}")
    groups = tuple(
        make_group(f"dashboard_{number:03d}", target=("prod", "staging", "dev")[number % 3])
        for number in range(count)
    )
    return Config(targets=base.targets, groups=groups, source="exporter.yml")


def test_three_shards_cover_every_group_exactly_once() -> None:
    config = _config(300)
    selected = [Shard(index, 3).select(config) for index in range(3)]
    owners = Counter(group.key for part in selected for group in part.groups)
    assert set(owners) == {group.key for group in config.groups}
    assert set(owners.values()) == {1}
    # Roughly even: about 100 each.
    assert all(70 <= len(part.groups) <= 130 for part in selected), [
        len(part.groups) for part in selected
    ]


@pytest.mark.parametrize("total", [1, 2, 5, 16])
def test_any_total_partitions_the_groups(total: int) -> None:
    config = _config(200)
    keys = [group.key for i in range(total) for group in Shard(i, total).select(config).groups]
    assert sorted(keys) == sorted(group.key for group in config.groups)


@pytest.mark.parametrize(
    ("target", "group", "total", "shard"),
    [
        ("prod", "sales", 3, 1),
        ("prod", "finance", 3, 0),
        ("staging", "sales", 7, 5),
        ("prod", "销售看板", 5, 1),  # UTF-8 bytes
        ("prod", "anything", 1, 0),
        # Modulo 2**32 is the CRC itself: pins the exact function, not only its residues.
        ("prod", "sales", 2**32, 3875400934),
        ("prod", "销售看板", 2**32, 1676538691),
    ],
)
def test_the_hash_is_pinned(target: str, group: str, total: int, shard: int) -> None:
    # Changing the hash moves groups between running shards: a breaking change. The values were
    # computed in another process, so they also show the hash is not salted like hash().
    assert shard_of(target, group, total) == shard
    assert shard_of(target, group, total) == zlib.crc32(f"{target}/{group}".encode()) % total


@pytest.mark.parametrize(
    ("index", "total", "message"),
    [
        (0, 0, "shard total must be at least 1, got 0"),
        (0, -2, "shard total must be at least 1, got -2"),
        (-1, 3, "shard index must not be negative, got -1"),
        (3, 3, "shard index 3 is out of range for a shard total of 3 (0 to 2)"),
        (1, 1, "shard index 1 is out of range for a shard total of 1 (0 to 0)"),
    ],
)
def test_invalid_shards(index: int, total: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        Shard(index, total)
    assert str(caught.value) == message
    assert "\n" not in message


def test_shard_of_rejects_a_total_below_one() -> None:
    with pytest.raises(ValueError, match=r"^shard total must be at least 1, got 0$"):
        shard_of("prod", "sales", 0)


def test_unsharded_selects_everything() -> None:
    config = _config(10)
    assert Shard(0, 1) == UNSHARDED
    assert not UNSHARDED.sharded
    assert UNSHARDED.select(config) is config
    assert str(Shard(1, 3)) == "shard 1 of 3"


def test_select_keeps_targets_order_and_source() -> None:
    config = _config(30)
    part = Shard(2, 3).select(config)
    assert part.targets is config.targets
    assert part.source == config.source
    assert list(part.groups) == [g for g in config.groups if shard_of(*g.key, 3) == 2]
    assert part.warnings == config.warnings


def test_a_shard_without_groups_warns() -> None:
    config = _config(1)  # dashboard_000 on prod
    owner = shard_of("prod", "dashboard_000", 4)
    empty = Shard((owner + 1) % 4, 4).select(config)
    assert empty.groups == ()
    assert empty.warnings == (
        f"groups: none of the 1 groups falls in shard {(owner + 1) % 4} of 4; "
        "this instance will only export its own metrics",
    )
    # No groups at all is config's own warning, not the shard's.
    assert Shard(1, 2).select(_config(0)).warnings == ()


def test_config_source_loads_this_shards_part(tmp_path: Path) -> None:
    # The reloader reads through ConfigSource.load too, so reloads stay sharded.
    path = tmp_path / "exporter.yml"
    groups = "".join(f"\n  - {{name: g{n}, target: prod, plan_ids: [p{n}]}}" for n in range(12))
    path.write_text(
        "targets:\n  - {name: prod, url: 'http://can.invalid', tenant_id: '1',"
        " auth: {type: APIKEY, value: apikey-0123}}\ngroups:" + groups + "\n"
    )
    source = ConfigSource(path, environ={}, shard=Shard(1, 3))
    assert len(source.load_all().groups) == 12
    assert [g.name for g in source.load().groups] == [
        f"g{n}" for n in range(12) if shard_of("prod", f"g{n}", 3) == 1
    ]
    assert ConfigSource(path, environ={}).load() == source.load_all()


def test_shard_gauges() -> None:
    registry = CollectorRegistry()
    ExporterMetrics(registry, Shard(2, 5))
    assert registry.get_sample_value("aloudata_can_exporter_shard_ordinal") == 2
    assert registry.get_sample_value("aloudata_can_exporter_total_shards") == 5

    unsharded = CollectorRegistry()
    ExporterMetrics(unsharded)
    assert unsharded.get_sample_value("aloudata_can_exporter_shard_ordinal") == 0
    assert unsharded.get_sample_value("aloudata_can_exporter_total_shards") == 1


def test_exporter_metrics_pass_promtool_lint() -> None:
    # Why the total is not called ..._shard_total: promtool rejects _total on a gauge.
    registry = CollectorRegistry()
    ExporterMetrics(registry, Shard(1, 3))
    result = subprocess.run(
        [require_tool("promtool"), "check", "metrics"],
        input=generate_latest(registry).decode(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
