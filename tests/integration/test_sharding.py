"""Three exporter processes sharding one config: every group is exported by exactly one of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exporter.config.sharding import shard_of
from tests.integration.processes import (
    STARTUP_TIMEOUT,
    Exporter,
    Simulator,
    http_ok,
    run_exporter,
    wait_for,
)

pytestmark = pytest.mark.integration

SECRET = "integration-apikey-4f1d"
TOTAL = 3
TARGETS = ("sim-a", "sim-b")
# Per target, every group asks for other plans (by ID or by name), so the config has no warnings.
PLANS = {
    "sales": "plan_ids: [aaaa0000000000000000000000000001]",
    "finance": "plan_ids: [aaaa0000000000000000000000000002]",
    "marketing": "plan_ids: [aaaa0000000000000000000000000003]",
    "ops": "plan_names: [fresh_daily]",
    "hr": "plan_names: [lagging_daily]",
    "supply": "plan_names: [not_ready_daily]",
    "pricing": "plan_names: [never_refreshed]",
}
GROUPS = ("sales", "finance", "marketing", "ops", "hr", "supply")
GroupKey = tuple[str, str]


def _config(url: str, groups: tuple[str, ...]) -> str:
    targets = "".join(
        f"""
  - name: {target}
    url: {url}
    tenant_id: "10001"
    auth: {{type: APIKEY, value_file: apikey}}
    timezone: Asia/Shanghai"""
        for target in TARGETS
    )
    group_lines = "".join(
        f"\n  - {{name: {group}, target: {target}, {PLANS[group]}}}"
        for target in TARGETS
        for group in groups
    )
    return f"defaults:\n  interval: 30s\n  timeout: 2s\ntargets:{targets}\ngroups:{group_lines}\n"


def _keys(groups: tuple[str, ...]) -> set[GroupKey]:
    return {(target, group) for target in TARGETS for group in groups}


@pytest.fixture
def config(simulator: Simulator, tmp_path: Path) -> Path:
    (tmp_path / "apikey").write_text(SECRET + "\n")
    path = tmp_path / "exporter.yml"
    path.write_text(_config(simulator.url, GROUPS))
    return path


@pytest.fixture
def shards(config: Path, tmp_path: Path) -> Iterator[list[Exporter]]:
    started: list[Exporter] = []
    try:
        for index in range(TOTAL):
            log_dir = tmp_path / f"shard-{index}"
            log_dir.mkdir()
            args = ["--config.file", str(config), "--web.enable-lifecycle"]
            args += ["--shard.index", str(index), "--shard.total", str(TOTAL)]
            started.append(Exporter(args, log_dir, wait_ready=False))
        for process in started:  # started together, so they get ready together
            wait_for(lambda p=process: _ready(p), STARTUP_TIMEOUT, "every shard's /readyz")
        yield started
    finally:
        for process in started:
            process.stop()


def _ready(process: Exporter) -> bool:
    if process.popen.poll() is not None:
        raise AssertionError(f"exporter exited early:\n{process.log()}")
    return http_ok(f"{process.url}/readyz")


def _exported(process: Exporter, name: str, **labels: str) -> set[GroupKey]:
    """The (target, group) of every ``name`` series with ``labels`` on the process' /metrics."""
    keys = set()
    for sample_name, sample_labels in process.scrape():
        label_map = dict(sample_labels)
        if sample_name == name and labels.items() <= label_map.items():
            keys.add((label_map["target"], label_map["group"]))
    return keys


def _assert_exactly_once(shards: list[Exporter], expected: set[GroupKey]) -> None:
    for name, labels in [
        ("aloudata_can_poll_success", {}),
        ("aloudata_can_data_lag_threshold_seconds", {"severity": "critical"}),
        ("aloudata_can_refresh_age_threshold_seconds", {"severity": "warning"}),
    ]:
        per_shard = [_exported(process, name, **labels) for process in shards]
        for index, keys in enumerate(per_shard):
            assert keys == {k for k in expected if shard_of(*k, TOTAL) == index}, (name, index)
        every = [key for keys in per_shard for key in keys]
        assert sorted(every) == sorted(expected), name  # each group once, none left out


def test_three_shards_export_every_group_exactly_once(shards: list[Exporter]) -> None:
    expected = _keys(GROUPS)
    # The split is not degenerate: every shard has groups of its own.
    assert {shard_of(*key, TOTAL) for key in expected} == set(range(TOTAL))
    _assert_exactly_once(shards, expected)
    for index, process in enumerate(shards):
        samples = process.scrape()
        assert samples[("aloudata_can_exporter_shard_ordinal", frozenset())] == index
        assert samples[("aloudata_can_exporter_total_shards", frozenset())] == TOTAL
        # Every shard keeps every target: its clients and target-level series.
        targets = {
            dict(labels)["target"]
            for name, labels in samples
            if name == "aloudata_can_target_circuit_open"
        }
        assert targets == set(TARGETS)
    assert "shard_index=1" in shards[1].log()


def test_reload_keeps_each_shard_to_its_groups(
    shards: list[Exporter], config: Path, simulator: Simulator
) -> None:
    groups = (*(g for g in GROUPS if g != "hr"), "pricing")
    config.write_text(_config(simulator.url, groups))
    for process in shards:
        assert httpx.post(process.url + "/-/reload", timeout=10).status_code == 200
    _assert_exactly_once(shards, _keys(groups))


def test_check_config_counts_the_shards_groups(config: Path) -> None:
    owned = sum(1 for key in _keys(GROUPS) if shard_of(*key, TOTAL) == 2)
    result = run_exporter(
        "--check-config", "--config.file", str(config), "--shard.index=2", "--shard.total=3"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"config ok: 2 targets, 12 groups (shard 2 of 3: {owned} groups)\n"

    result = run_exporter(
        "--check-config", "--config.file", str(config), "--shard.index=3", "--shard.total=3"
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "settings error: --shard.index: shard index 3 is out of range for a shard total of 3 "
        "(0 to 2)"
    ]


def test_once_polls_only_the_shards_groups(config: Path) -> None:
    result = run_exporter(
        "--once", "--config.file", str(config), "--shard.index=0", "--shard.total=3"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _, *rows = result.stdout.splitlines()
    polled = {(row.split()[0], row.split()[1]) for row in rows if row.split()[0] in TARGETS}
    assert polled == {key for key in _keys(GROUPS) if shard_of(*key, TOTAL) == 0}
