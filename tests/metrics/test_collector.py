"""The scrape-time collector against hand-built snapshots and a fixed clock."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.can.models import CanError, FailureReason, PollResult, parse_latest_time
from exporter.clock import FixedClock
from exporter.config.model import ThresholdValues
from exporter.metrics.collector import CanCollector
from exporter.state.snapshots import (
    GroupSnapshot,
    PlanSnapshot,
    SnapshotStore,
    next_snapshot,
)
from tests.helpers.builders import NOW, make_group, make_reading
from tests.helpers.golden import GOLDEN, NIGHTLY, T_MINUS_1, golden_store
from tests.helpers.programs import require_tool

GROUP = {"target": "prod", "group": "sales"}
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _registry(store: SnapshotStore, clock: FixedClock) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CanCollector(store, clock))
    return registry


def _ok(seconds: float = 0.2) -> PollResult:
    return PollResult(make_reading(), None, seconds)


def _failed(reason: FailureReason, seconds: float = 0.1) -> PollResult:
    return PollResult(None, CanError(reason, "boom"), seconds)


def test_ages_are_computed_at_scrape_time(clock: FixedClock) -> None:
    store = SnapshotStore()
    store.put(next_snapshot(GroupSnapshot(make_group()), _ok(), NOW))
    registry = _registry(store, clock)

    lag = registry.get_sample_value("aloudata_can_data_lag_seconds", GROUP)
    age = registry.get_sample_value("aloudata_can_refresh_age_seconds", GROUP)
    assert lag == (NOW - datetime(2024, 9, 1, tzinfo=UTC)).total_seconds() == 100800
    assert age == 3600

    clock.at = NOW + timedelta(minutes=10)
    assert registry.get_sample_value("aloudata_can_data_lag_seconds", GROUP) == 100800 + 600
    assert registry.get_sample_value("aloudata_can_refresh_age_seconds", GROUP) == 3600 + 600


def test_reading_values_and_poll_health(clock: FixedClock) -> None:
    store = SnapshotStore()
    store.put(next_snapshot(GroupSnapshot(make_group()), _ok(0.2), NOW))
    registry = _registry(store, clock)

    assert registry.get_sample_value("aloudata_can_not_ready", GROUP) == 0
    assert (
        registry.get_sample_value("aloudata_can_latest_data_timestamp_seconds", GROUP)
        == datetime(2024, 9, 1, tzinfo=UTC).timestamp()
    )
    assert registry.get_sample_value("aloudata_can_poll_success", GROUP) == 1
    assert (
        registry.get_sample_value("aloudata_can_last_success_timestamp_seconds", GROUP)
        == NOW.timestamp()
    )
    assert registry.get_sample_value("aloudata_can_poll_duration_seconds_count", GROUP) == 1
    assert (
        registry.get_sample_value(
            "aloudata_can_poll_duration_seconds_bucket", {**GROUP, "le": "0.25"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "aloudata_can_poll_duration_seconds_bucket", {**GROUP, "le": "0.1"}
        )
        == 0
    )


def test_failed_poll_keeps_the_last_good_reading_and_counts_the_reason(clock: FixedClock) -> None:
    store = SnapshotStore()
    snapshot = next_snapshot(GroupSnapshot(make_group()), _ok(), NOW - timedelta(minutes=5))
    snapshot = next_snapshot(snapshot, _failed(FailureReason.TIMEOUT), NOW)
    snapshot = next_snapshot(snapshot, _failed(FailureReason.TIMEOUT), NOW)
    store.put(snapshot)
    registry = _registry(store, clock)

    assert registry.get_sample_value("aloudata_can_poll_success", GROUP) == 0
    assert registry.get_sample_value("aloudata_can_data_lag_seconds", GROUP) == 100800
    assert (
        registry.get_sample_value("aloudata_can_last_success_timestamp_seconds", GROUP)
        == (NOW - timedelta(minutes=5)).timestamp()
    )
    assert (
        registry.get_sample_value("aloudata_can_poll_errors_total", {**GROUP, "reason": "timeout"})
        == 2
    )
    # Reasons that never happened are not exported.
    assert (
        registry.get_sample_value("aloudata_can_poll_errors_total", {**GROUP, "reason": "auth"})
        is None
    )


def test_null_times_leave_their_series_absent(clock: FixedClock) -> None:
    store = SnapshotStore()
    result = PollResult(make_reading(None, None, not_ready=True), None, 0.01)
    store.put(next_snapshot(GroupSnapshot(make_group()), result, NOW))
    registry = _registry(store, clock)

    assert registry.get_sample_value("aloudata_can_not_ready", GROUP) == 1
    for name in (
        "aloudata_can_data_lag_seconds",
        "aloudata_can_refresh_age_seconds",
        "aloudata_can_latest_data_timestamp_seconds",
        "aloudata_can_latest_refresh_timestamp_seconds",
    ):
        assert registry.get_sample_value(name, GROUP) is None, name


def test_a_group_never_polled_exports_thresholds_but_no_reading(clock: FixedClock) -> None:
    store = SnapshotStore()
    store.put(GroupSnapshot(make_group(data_lag=ThresholdValues(None, 7200.0))))
    registry = _registry(store, clock)

    assert registry.get_sample_value("aloudata_can_poll_success", GROUP) is None
    assert registry.get_sample_value("aloudata_can_data_lag_seconds", GROUP) is None
    assert (
        registry.get_sample_value(
            "aloudata_can_data_lag_threshold_seconds", {**GROUP, "severity": "critical"}
        )
        == 7200
    )
    assert (
        registry.get_sample_value(
            "aloudata_can_data_lag_threshold_seconds", {**GROUP, "severity": "warning"}
        )
        is None
    )
    assert (
        registry.get_sample_value(
            "aloudata_can_refresh_age_threshold_seconds", {**GROUP, "severity": "warning"}
        )
        == 90000
    )


def test_change_detection_series_appear_with_the_first_poll(clock: FixedClock) -> None:
    store = SnapshotStore()
    group = make_group(refreshes_without_new_data=ThresholdValues(None, 6.0))
    store.put(GroupSnapshot(group))
    registry = _registry(store, clock)
    regressions = "aloudata_can_data_time_regressions_total"
    streak = "aloudata_can_refreshes_without_new_data"
    last_change = "aloudata_can_data_time_last_change_timestamp_seconds"
    threshold = "aloudata_can_refreshes_without_new_data_threshold"

    assert registry.get_sample_value(regressions, GROUP) is None
    assert registry.get_sample_value(streak, GROUP) is None
    assert registry.get_sample_value(threshold, {**GROUP, "severity": "critical"}) == 6
    assert registry.get_sample_value(threshold, {**GROUP, "severity": "warning"}) is None

    # A failed first poll: the counter starts at 0, but no data time has been seen.
    store.put(next_snapshot(GroupSnapshot(group), _failed(FailureReason.TIMEOUT), NOW))
    assert registry.get_sample_value(regressions, GROUP) == 0
    assert registry.get_sample_value(streak, GROUP) == 0
    assert registry.get_sample_value(last_change, GROUP) is None

    snapshot = next_snapshot(GroupSnapshot(group), _ok(), NOW - timedelta(hours=1))
    refreshed = make_reading(refresh_time=NOW)
    snapshot = next_snapshot(snapshot, PollResult(refreshed, None, 0.1), NOW)
    store.put(snapshot)
    assert registry.get_sample_value(regressions, GROUP) == 0
    assert registry.get_sample_value(streak, GROUP) == 1
    assert registry.get_sample_value(last_change, GROUP) == (NOW - timedelta(hours=1)).timestamp()
    # No created sample: the other counters have none either.
    assert registry.get_sample_value("aloudata_can_data_time_regressions_created", GROUP) is None


def test_plan_level_series(clock: FixedClock) -> None:
    store = SnapshotStore()
    group = make_group(plans=("a", "b"), per_plan=True)
    plan_results = {
        "a": PollResult(make_reading(refresh_time=NOW - timedelta(hours=2)), None, 0.01),
        "b": _failed(FailureReason.PLAN_NOT_FOUND),
    }
    store.put(
        next_snapshot(
            GroupSnapshot(group), _failed(FailureReason.PLAN_NOT_FOUND), NOW, plan_results
        )
    )
    registry = _registry(store, clock)

    plan_a, plan_b = {**GROUP, "plan": "a"}, {**GROUP, "plan": "b"}
    assert registry.get_sample_value("aloudata_can_plan_poll_success", plan_a) == 1
    assert registry.get_sample_value("aloudata_can_plan_poll_success", plan_b) == 0
    assert registry.get_sample_value("aloudata_can_plan_refresh_age_seconds", plan_a) == 7200
    assert registry.get_sample_value("aloudata_can_plan_data_lag_seconds", plan_a) == 100800
    assert registry.get_sample_value("aloudata_can_plan_not_ready", plan_a) == 0
    assert registry.get_sample_value("aloudata_can_plan_data_lag_seconds", plan_b) is None


def test_plan_missing_is_1_for_a_missing_plan_and_absent_for_the_others(clock: FixedClock) -> None:
    store = SnapshotStore()
    group = make_group(plans=("a", "b", "c"), per_plan=True)
    plan_results = {
        "a": _ok(),
        "b": _failed(FailureReason.PLAN_NOT_FOUND),
        "c": _failed(FailureReason.TIMEOUT),
    }
    missing = _failed(FailureReason.PLAN_NOT_FOUND)
    store.put(next_snapshot(GroupSnapshot(group), missing, NOW, plan_results))
    registry = _registry(store, clock)

    values = {
        plan: registry.get_sample_value("aloudata_can_plan_missing", {**GROUP, "plan": plan})
        for plan in ("a", "b", "c")
    }
    assert values == {"a": None, "b": 1.0, "c": None}


def test_a_missing_plan_stays_missing_until_can_answers_about_it() -> None:
    group = make_group(plans=("a",), per_plan=True)
    gone = {"a": _failed(FailureReason.PLAN_NOT_FOUND)}
    snapshot = next_snapshot(GroupSnapshot(group), gone["a"], NOW, gone)
    assert snapshot.plans[0].missing
    # A timeout says nothing about whether the plan exists.
    snapshot = next_snapshot(snapshot, _ok(), NOW, {"a": _failed(FailureReason.TIMEOUT)})
    assert snapshot.plans[0].missing
    # Nor does a group poll without its plan polls (a probe).
    snapshot = next_snapshot(snapshot, _ok(), NOW)
    assert snapshot.plans[0].missing
    snapshot = next_snapshot(snapshot, _ok(), NOW, {"a": _ok()})
    assert snapshot.plans == (PlanSnapshot("a", make_reading(), poll_success=True, missing=False),)


def test_plan_failure_keeps_the_plans_last_reading() -> None:
    group = make_group(plans=("a",), per_plan=True)
    first = next_snapshot(GroupSnapshot(group), _ok(), NOW, {"a": _ok()})
    second = next_snapshot(first, _ok(), NOW, {"a": _failed(FailureReason.TIMEOUT)})

    assert second.plans == (PlanSnapshot("a", make_reading(), poll_success=False),)


def test_removed_groups_disappear(clock: FixedClock) -> None:
    store = SnapshotStore()
    store.put(next_snapshot(GroupSnapshot(make_group("a")), _ok(), NOW))
    store.put(next_snapshot(GroupSnapshot(make_group("b")), _ok(), NOW))
    registry = _registry(store, clock)
    store.remove(("prod", "a"))

    output = generate_latest(registry).decode()
    assert 'group="a"' not in output
    assert 'group="b"' in output


def _info_series(registry: CollectorRegistry) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "aloudata_can_group_info"
    ]


def test_group_info_is_one_series_per_group_with_its_labels(clock: FixedClock) -> None:
    store = SnapshotStore()
    store.put(GroupSnapshot(make_group("sales")))  # never polled: still has its info
    owned = make_group("finance", labels=(("owner", "alice"), ("team", "finance")))
    store.put(next_snapshot(GroupSnapshot(owned), _failed(FailureReason.TIMEOUT), NOW))
    registry = _registry(store, clock)

    assert _info_series(registry) == [
        {"target": "prod", "group": "sales"},
        {"target": "prod", "group": "finance", "owner": "alice", "team": "finance"},
    ]
    owned_labels = {"target": "prod", "group": "finance", "owner": "alice", "team": "finance"}
    assert registry.get_sample_value("aloudata_can_group_info", owned_labels) == 1


def test_changed_labels_replace_the_info_series(clock: FixedClock) -> None:
    store = SnapshotStore()
    snapshot = next_snapshot(GroupSnapshot(make_group(labels=(("team", "finance"),))), _ok(), NOW)
    store.put(snapshot)
    registry = _registry(store, clock)
    relabelled = replace(snapshot.group, labels=(("owner", "bob"), ("team", "sales")))
    store.put(replace(snapshot, group=relabelled))

    assert _info_series(registry) == [{**GROUP, "owner": "bob", "team": "sales"}]
    assert 'team="finance"' not in generate_latest(registry).decode()


def test_timezone_conversion_from_a_can_response(clock: FixedClock) -> None:
    body = json.dumps(
        {
            "data": {
                "hasNotReady": False,
                "latestDateTime": "2024-09-02 00:00:00",
                "latestRefreshTime": "2024-09-02 11:30:00",
            },
            "success": True,
            "code": "200",
            "errorMsg": None,
            "traceId": "x",
        }
    )
    store = SnapshotStore()
    reading = parse_latest_time(body, ZoneInfo("Asia/Shanghai"))
    store.put(next_snapshot(GroupSnapshot(make_group()), PollResult(reading, None, 0.1), NOW))
    registry = _registry(store, clock)

    # 2024-09-02 00:00 in Shanghai is 2024-09-01 16:00 UTC, 12 h before NOW (04:00 UTC).
    assert registry.get_sample_value("aloudata_can_data_lag_seconds", GROUP) == 12 * 3600
    # 11:30 in Shanghai is 03:30 UTC.
    assert registry.get_sample_value("aloudata_can_refresh_age_seconds", GROUP) == 30 * 60


def test_schedule_series_are_computed_at_scrape_time(clock: FixedClock) -> None:
    store = SnapshotStore()
    group = make_group(schedule=NIGHTLY, data_periods=T_MINUS_1)
    # Refreshed at 02:00 in Shanghai on 2024-09-02 (18:00 UTC), before that night's 02:30 fire.
    early = make_reading(refresh_time=datetime(2024, 9, 1, 18, 0, tzinfo=UTC))
    store.put(next_snapshot(GroupSnapshot(group), PollResult(early, None, 0.1), NOW))
    registry = _registry(store, clock)
    deadline = datetime(2024, 9, 1, 19, 30, tzinfo=UTC)  # 03:30 on 2024-09-02 in Shanghai

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, GROUP)

    assert value("aloudata_can_refresh_deadline_timestamp_seconds") == deadline.timestamp()
    assert value("aloudata_can_refresh_overdue_seconds") == (NOW - deadline).total_seconds()
    # The data of 2024-09-01 (08:00 in Shanghai) is what T-1 expects until midnight there.
    assert value("aloudata_can_data_lag_periods") == 0
    clock.at = datetime(2024, 9, 2, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    assert value("aloudata_can_data_lag_periods") == 0
    clock.at = datetime(2024, 9, 2, 16, 0, tzinfo=UTC)  # midnight: 2024-09-02's data is due
    assert value("aloudata_can_data_lag_periods") == 1
    # The next deadline passes: the series move on to it.
    clock.at = datetime(2024, 9, 2, 19, 30, tzinfo=UTC)
    assert value("aloudata_can_refresh_deadline_timestamp_seconds") == clock.at.timestamp()
    assert value("aloudata_can_refresh_overdue_seconds") == 0


def test_a_refresh_after_the_fire_is_on_time_and_none_is_overdue(clock: FixedClock) -> None:
    store = SnapshotStore()
    fire = datetime(2024, 9, 1, 18, 30, tzinfo=UTC)
    readings = {
        "after": make_reading(refresh_time=fire + timedelta(seconds=1)),
        "at": make_reading(refresh_time=fire),
        "never": make_reading(None, None, not_ready=True),
    }
    for name, reading in readings.items():
        group = make_group(name, schedule=NIGHTLY)
        store.put(next_snapshot(GroupSnapshot(group), PollResult(reading, None, 0.1), NOW))
    registry = _registry(store, clock)

    def overdue(name: str) -> float | None:
        labels = {"target": "prod", "group": name}
        return registry.get_sample_value("aloudata_can_refresh_overdue_seconds", labels)

    assert overdue("after") == 0
    # Ending at the fire itself is the previous run's refresh, not this one's.
    assert overdue("at") == 8.5 * 3600
    assert overdue("never") == 8.5 * 3600


def test_without_a_reading_only_the_deadline_is_exported(clock: FixedClock) -> None:
    store = SnapshotStore()
    group = make_group(schedule=NIGHTLY, data_periods=T_MINUS_1)
    store.put(next_snapshot(GroupSnapshot(group), _failed(FailureReason.TIMEOUT), NOW))
    registry = _registry(store, clock)

    assert registry.get_sample_value("aloudata_can_refresh_deadline_timestamp_seconds", GROUP)
    assert registry.get_sample_value("aloudata_can_refresh_overdue_seconds", GROUP) is None
    assert registry.get_sample_value("aloudata_can_data_lag_periods", GROUP) is None


def test_groups_without_a_schedule_export_no_schedule_series(clock: FixedClock) -> None:
    store = SnapshotStore()
    store.put(next_snapshot(GroupSnapshot(make_group()), _ok(), NOW))
    # A data granularity alone gives the periods, not the deadline.
    periods_only = make_group("periods", data_periods=T_MINUS_1)
    store.put(next_snapshot(GroupSnapshot(periods_only), _ok(), NOW))
    registry = _registry(store, clock)

    for name in (
        "aloudata_can_refresh_deadline_timestamp_seconds",
        "aloudata_can_refresh_overdue_seconds",
        "aloudata_can_data_lag_periods",
    ):
        assert registry.get_sample_value(name, GROUP) is None, name
    periods = {"target": "prod", "group": "periods"}
    assert registry.get_sample_value("aloudata_can_data_lag_periods", periods) == 0
    assert (
        registry.get_sample_value("aloudata_can_refresh_deadline_timestamp_seconds", periods)
        is None
    )


def test_output_matches_the_golden_file(clock: FixedClock) -> None:
    output = generate_latest(_registry(golden_store(), clock)).decode()
    assert output == GOLDEN.read_text(), "run `python -m tests.helpers.golden` to update"


def test_output_parses_and_every_family_has_help(clock: FixedClock) -> None:
    output = generate_latest(_registry(golden_store(), clock)).decode()
    families = list(text_string_to_metric_families(output))
    names = {family.name for family in families}
    assert "aloudata_can_poll_errors" in names
    assert all(family.documentation for family in families)
    assert all(family.name.startswith("aloudata_can_") for family in families)


def test_golden_file_passes_promtool_check_metrics() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=GOLDEN.read_bytes(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
