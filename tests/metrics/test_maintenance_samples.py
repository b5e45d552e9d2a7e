"""aloudata_can_maintenance, its end, and aloudata_can_target_maintenance, at the scrape's time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest

from exporter.can.models import PollResult
from exporter.clock import FixedClock
from exporter.config.maintenance import MaintenanceWindow
from exporter.metrics.collector import CanCollector
from exporter.metrics.exposition import Exposition
from exporter.state.snapshots import GroupSnapshot, SnapshotStore, TargetSnapshot, next_snapshot
from tests.helpers.builders import NOW, make_group, make_reading

HOUR = 3600.0
START = NOW.timestamp()
SALES = {"target": "prod", "group": "sales"}
OPS = {"target": "prod", "group": "ops"}


def _store(*groups_windows: tuple[str, tuple[MaintenanceWindow, ...]]) -> SnapshotStore:
    """Groups of target prod with their windows; as config resolution does, the target's own
    (from_target) windows are on each of its groups and on the target."""
    store = SnapshotStore()
    own: set[MaintenanceWindow] = set()
    for name, windows in groups_windows:
        group = replace(make_group(name), maintenance=windows)
        ok = PollResult(make_reading(), None, 0.1)
        store.put(next_snapshot(GroupSnapshot(group), ok, NOW))
        own.update(window for window in windows if window.from_target)
    store.put_target(TargetSnapshot("prod", maintenance=tuple(own)))
    return store


def _value(store: SnapshotStore, hours: float, name: str, labels: dict[str, str]) -> float | None:
    registry = CollectorRegistry()
    registry.register(CanCollector(store, FixedClock(NOW + timedelta(hours=hours))))
    return registry.get_sample_value(name, labels)


def test_a_group_window_sets_the_group_only_while_it_is_in_force() -> None:
    windows = (
        MaintenanceWindow(START + HOUR, START + 3 * HOUR, "upgrade"),
        MaintenanceWindow(START + 2 * HOUR, START + 4 * HOUR, "migration"),
    )
    store = _store(("sales", windows), ("ops", ()))
    assert _value(store, 0, "aloudata_can_maintenance", SALES) == 0.0
    assert _value(store, 0, "aloudata_can_maintenance_end_timestamp_seconds", SALES) is None
    assert _value(store, 1, "aloudata_can_maintenance", SALES) == 1.0
    assert _value(store, 1.5, "aloudata_can_maintenance_end_timestamp_seconds", SALES) == (
        START + 3 * HOUR
    )
    # Both in force: the end in force is the later one.
    assert _value(store, 2.5, "aloudata_can_maintenance_end_timestamp_seconds", SALES) == (
        START + 4 * HOUR
    )
    assert _value(store, 4, "aloudata_can_maintenance", SALES) == 0.0
    # The group's own windows leave its target and the other groups out of maintenance.
    assert _value(store, 1.5, "aloudata_can_maintenance", OPS) == 0.0
    assert _value(store, 1.5, "aloudata_can_target_maintenance", {"target": "prod"}) == 0.0
    # And its fresh gauge is absent meanwhile, as while unknown.
    assert _value(store, 1.5, "aloudata_can_fresh", SALES) is None
    assert _value(store, 0.5, "aloudata_can_fresh", SALES) == 1.0


def test_a_target_window_puts_the_target_in_maintenance() -> None:
    window = MaintenanceWindow(START, START + HOUR, "CAN upgrade", from_target=True)
    store = _store(("sales", (window,)), ("ops", (window,)))
    assert _value(store, 0.5, "aloudata_can_target_maintenance", {"target": "prod"}) == 1.0
    assert _value(store, 0.5, "aloudata_can_maintenance", OPS) == 1.0
    assert _value(store, 1, "aloudata_can_target_maintenance", {"target": "prod"}) == 0.0


def test_the_exposition_writes_the_same_bytes() -> None:
    window = MaintenanceWindow(START, START + HOUR, "CAN upgrade", from_target=True)
    store = _store(("sales", (window,)), ("ops", ()))
    clock = FixedClock(NOW)
    exposition = Exposition(store, clock)
    registry = CollectorRegistry()
    registry.register(exposition.collector)
    assert exposition.render() == generate_latest(registry)
    assert b'aloudata_can_target_maintenance{target="prod"} 1.0' in exposition.render()
