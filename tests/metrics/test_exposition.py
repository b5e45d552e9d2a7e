"""The fast exposition gives the same bytes as generate_latest over the collector."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.utils import floatToGoString

from exporter.can.models import CanError, FailureReason, PollResult
from exporter.clock import FixedClock
from exporter.metrics.exposition import Exposition, _count, _go_float
from exporter.state.snapshots import GroupSnapshot, SnapshotStore, TargetSnapshot, next_snapshot
from tests.helpers.builders import NOW, make_group, make_reading
from tests.helpers.golden import golden_store


def _reference(exposition: Exposition) -> bytes:
    registry = CollectorRegistry()
    registry.register(exposition.collector)
    return generate_latest(registry)


def _ok(seconds: float = 0.1) -> PollResult:
    return PollResult(make_reading(), None, seconds)


def _failed(reason: FailureReason) -> PollResult:
    return PollResult(None, CanError(reason, "boom"), 2.0)


# Off the whole second, so the ages' fractions are rendered as prometheus_client writes them.
@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW + timedelta(seconds=12.345))


def test_golden_store_renders_identically(clock: FixedClock) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    for snapshot in golden_store().snapshots():
        store.put(snapshot)
    store.put_target(TargetSnapshot("prod", circuit_open=True, requests_sent=9))
    assert exposition.render() == _reference(exposition)


@pytest.mark.parametrize(
    "name",
    ['quote"d', "back\\slash", "new\nline", "销售_日报", "a,b=c{d}", " spaced "],
)
def test_label_values_are_escaped_like_prometheus_client(clock: FixedClock, name: str) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    group = make_group(name, target=name, plans=(name, "p2"), per_plan=True)
    store.put(next_snapshot(GroupSnapshot(group), _ok(), NOW, {name: _ok(), "p2": _ok()}))
    store.put_target(TargetSnapshot(name))
    assert exposition.render() == _reference(exposition)


def test_plan_level_series_of_an_auto_group_render_identically(clock: FixedClock) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    group = replace(make_group(plans=("fresh", "gone", "slow", "late")), drilldown=True)
    late = PollResult(make_reading(not_ready=True), None, 0.1)
    offending = {
        "gone": PollResult(None, CanError(FailureReason.PLAN_NOT_FOUND, "gone"), 0.1),
        "slow": _failed(FailureReason.TIMEOUT),
        "late": late,
    }
    snapshot = next_snapshot(GroupSnapshot(group), offending["gone"], NOW, offending)
    store.put(snapshot)
    text = exposition.render()
    assert text == _reference(exposition)
    assert b'aloudata_can_plan_missing{group="sales",plan="gone",target="prod"} 1.0\n' in text
    assert text.count(b"aloudata_can_plan_missing{") == 1

    store.put(next_snapshot(snapshot, _ok(), NOW, {}))
    text = exposition.render()
    assert text == _reference(exposition)
    assert b'plan="' not in text


@pytest.mark.parametrize(
    "value",
    [
        'Finance "ledger" team',
        "C:\\reports\\",
        "two\nlines",
        "https://grafana.example.com/d/fin?var-group=a&var-target=b#panel-2",
        "销售 数据",
        "{a=b},c",
    ],
)
def test_group_labels_are_escaped_and_sorted_like_prometheus_client(
    clock: FixedClock, value: str
) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    # Names that sort before group, between group and target, and after target, upper case
    # (before lower case) included.
    labels = (("Zone", value), ("a_first", value), ("owner", value), ("zz_last", value))
    store.put(next_snapshot(GroupSnapshot(make_group(labels=labels)), _ok(), NOW))
    store.put(GroupSnapshot(make_group("plain")))
    text = exposition.render()
    assert text == _reference(exposition)
    assert text.count(b"aloudata_can_group_info{") == 2


def test_changed_labels_change_the_rendered_info(clock: FixedClock) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    snapshot = next_snapshot(GroupSnapshot(make_group(labels=(("team", "finance"),))), _ok(), NOW)
    store.put(snapshot)
    assert b'aloudata_can_group_info{group="sales",target="prod",team="finance"} 1.0\n' in (
        exposition.render()
    )
    store.put(replace(snapshot, group=replace(snapshot.group, labels=())))
    text = exposition.render()
    assert text == _reference(exposition)
    assert b'aloudata_can_group_info{group="sales",target="prod"} 1.0\n' in text
    assert b"finance" not in text


def test_ages_are_computed_at_render_time(clock: FixedClock) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    store.put(next_snapshot(GroupSnapshot(make_group()), _ok(), NOW))
    first = exposition.render()
    clock.at += timedelta(minutes=10)
    second = exposition.render()
    assert first != second
    assert second == _reference(exposition)
    line = next(x for x in second.decode().splitlines() if x.startswith("aloudata_can_data_lag"))
    # The reading's data time is 2024-09-01 00:00 UTC; NOW is 2024-09-02 04:00 UTC.
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(28 * 3600 + 600 + 12.345)


def test_schedule_series_render_identically_as_deadlines_pass(clock: FixedClock) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    for snapshot in golden_store().snapshots():
        store.put(snapshot)
    seen = set()
    # Every 20 minutes for two days: deadlines pass, days turn, the caches move on.
    for _ in range(2 * 72):
        clock.at += timedelta(minutes=20)
        text = exposition.render()
        assert text == _reference(exposition)
        seen.add(next(x for x in text.splitlines() if x.startswith(b"aloudata_can_refresh_dead")))
    assert len(seen) == 3


def test_new_snapshots_replace_lines_and_removed_groups_leave(clock: FixedClock) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    store.put(next_snapshot(GroupSnapshot(make_group("a")), _ok(), NOW))
    store.put(next_snapshot(GroupSnapshot(make_group("b")), _ok(), NOW))
    exposition.render()
    failed = next_snapshot(store.get(("prod", "a")), _failed(FailureReason.TIMEOUT), NOW)  # type: ignore[arg-type]
    store.put(replace(failed, next_poll_time=NOW + timedelta(minutes=2)))
    store.remove(("prod", "b"))
    text = exposition.render()
    assert text == _reference(exposition)
    assert b'reason="timeout"' in text
    assert b'group="b"' not in text


def test_a_snapshot_stored_before_the_exposition_existed_is_rendered(clock: FixedClock) -> None:
    store = SnapshotStore()
    store.put(next_snapshot(GroupSnapshot(make_group("early")), _ok(), NOW))
    exposition = Exposition(store, clock)
    assert b'group="early"' in exposition.render()
    assert exposition.render() == _reference(exposition)


def test_an_empty_store_renders_every_family_header(clock: FixedClock) -> None:
    exposition = Exposition(SnapshotStore(), clock)
    text = exposition.render()
    assert text == _reference(exposition)
    assert b"# TYPE aloudata_can_poll_errors_total counter" in text


@given(st.floats(allow_nan=True, allow_infinity=True))
@example(1725249720.0)
@example(1e-300)
@example(-1e16)
@example(999999.5)
@example(1000000.0)
def test_float_text_matches_prometheus_client(value: float) -> None:
    assert _go_float(value) == floatToGoString(value)


@pytest.mark.parametrize("count", [0, 1, 7, 1023, 1024, 10**12])
def test_count_text_matches_prometheus_client(count: int) -> None:
    assert _count(count) == floatToGoString(count)


def test_a_body_of_several_chunks_per_family_is_the_reference(clock: FixedClock) -> None:
    store = SnapshotStore()
    exposition = Exposition(store, clock)
    for index in range(600):  # 256 groups per chunk: three chunks per family
        group = make_group(f"g{index:03d}", per_plan=index % 7 == 0, plans=("p1", "p2"))
        result = _ok() if index % 5 else _failed(FailureReason.TIMEOUT)
        plans = {"p1": _ok(), "p2": result} if group.per_plan else None
        store.put(next_snapshot(GroupSnapshot(group), result, NOW, plans))
    chunks = exposition.render_chunks()
    # The family's header and first 256 lines, then two more chunks of its lines.
    assert sum(chunk.startswith(b"aloudata_can_data_lag_seconds{") for chunk in chunks) == 2
    assert b"".join(chunks) == _reference(exposition)
