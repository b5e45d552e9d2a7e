"""The poller against CAN faked at the HTTP layer, with a fixed clock."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from pytest_httpx import HTTPXMock

from exporter.can.models import LATEST_TIME_PATH
from exporter.clock import FixedClock, SystemClock
from exporter.config.model import Config
from exporter.polling.poller import Poller, _spread_fraction
from exporter.state.snapshots import DataChanges, SnapshotStore
from tests.helpers.builders import CAN_MISSING_BODY, CAN_OK_BODY, NOW, config_for

URL = "http://can.test"
ENDPOINT = URL + LATEST_TIME_PATH
OK_BODY = CAN_OK_BODY
MISSING_BODY = CAN_MISSING_BODY
TWO_GROUPS = """
  - {name: a, target: prod, plan_ids: [p1]}
  - {name: b, target: prod, plan_ids: [p2]}
"""


def _config(groups: str = TWO_GROUPS, secret: str = "s3cret-value") -> Config:
    return config_for(URL, groups, secret=secret)


async def test_a_poll_stores_a_reading_and_readiness_waits_for_every_group(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p1"]}, json=OK_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p2"]}, json=OK_BODY)
    poller.apply(_config())
    assert poller.scheduled() == ["prod/a", "prod/b"]
    assert not poller.ready

    await poller.poll_group(("prod", "a"))
    snapshot = store.get(("prod", "a"))
    assert snapshot is not None
    assert snapshot.poll_success is True
    assert snapshot.reading is not None
    assert snapshot.reading.latest_data_time is not None
    assert snapshot.reading.latest_data_time.isoformat() == "2024-09-01T00:00:00+00:00"
    assert snapshot.last_success_time == NOW
    assert not poller.ready

    await poller.poll_group(("prod", "b"))
    assert poller.ready


async def test_failures_keep_the_reading_and_log_only_on_change(
    poller: Poller,
    store: SnapshotStore,
    httpx_mock: HTTPXMock,
    caplog: pytest.LogCaptureFixture,
    clock: FixedClock,
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.poller")
    httpx_mock.add_response(url=ENDPOINT, json=OK_BODY)
    httpx_mock.add_response(url=ENDPOINT, status_code=404, text="Not Found")
    httpx_mock.add_response(url=ENDPOINT, status_code=404, text="Not Found")
    httpx_mock.add_response(url=ENDPOINT, json=OK_BODY)
    poller.apply(_config("  - {name: a, target: prod, plan_ids: [p1]}\n"))
    key = ("prod", "a")

    await poller.poll_group(key)
    clock.at = NOW + timedelta(minutes=1)
    await poller.poll_group(key)
    # The target's only group failed: its circuit is open, the next probe after 2 intervals.
    clock.at += timedelta(minutes=2)
    await poller.poll_group(key)
    snapshot = store.get(key)
    assert snapshot is not None
    assert snapshot.poll_success is False
    assert snapshot.reading is not None  # the last good reading stays
    assert snapshot.last_success_time == NOW
    assert snapshot.error_count(snapshot.last_reason) == 2  # type: ignore[arg-type]

    failures = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG]
    assert failures[0].__dict__["reason"] == "http_status"

    clock.at += timedelta(minutes=4)
    await poller.poll_group(key)
    assert [r.getMessage() for r in caplog.records if "poll" in r.getMessage()][-1] == (
        "poll recovered"
    )


async def test_per_plan_groups_poll_each_plan(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=ENDPOINT, match_json={"planIdList": ["p1", "gone"]}, json=MISSING_BODY
    )
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p1"]}, json=OK_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["gone"]}, json=MISSING_BODY)
    poller.apply(_config("  - {name: a, target: prod, plan_ids: [p1, gone], per_plan: true}\n"))

    await poller.poll_group(("prod", "a"))
    snapshot = store.get(("prod", "a"))
    assert snapshot is not None
    assert snapshot.poll_success is False
    assert snapshot.last_reason == "plan_not_found"
    assert {plan.plan: plan.poll_success for plan in snapshot.plans} == {"p1": True, "gone": False}


async def test_reload_adds_removes_and_reschedules(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=OK_BODY, is_reusable=True)
    poller.apply(_config())
    await poller.poll_group(("prod", "a"))
    await poller.poll_group(("prod", "b"))

    poller.apply(
        _config(
            """
  - {name: a, target: prod, plan_ids: [p1], thresholds: {data_lag: {warning: 1h}}}
  - {name: b, target: prod, plan_ids: [p2, p3]}
  - {name: c, target: prod, plan_names: [n1]}
"""
        )
    )
    assert poller.scheduled() == ["prod/a", "prod/b", "prod/c"]
    a, b, c = (store.get(("prod", name)) for name in "abc")
    assert a is not None
    assert a.reading is not None  # only a threshold changed: the reading stays
    assert a.group.data_lag.warning == 3600
    assert b is not None
    assert b.reading is None  # other plans: the old reading says nothing about them
    assert c is not None
    assert not c.polled

    poller.apply(_config("  - {name: c, target: prod, plan_names: [n1]}\n"))
    assert poller.scheduled() == ["prod/c"]
    assert store.keys() == {("prod", "c")}


async def test_a_reload_polls_again_only_groups_whose_polling_changed(
    poller: Poller, clock: FixedClock
) -> None:
    poller.apply(_config())
    first = poller.next_run_time(("prod", "a"))
    assert first == NOW
    clock.at = NOW + timedelta(minutes=5)
    poller.apply(
        _config(
            """
  - {name: a, target: prod, plan_ids: [p1], timeout: 3s, labels: {team: t},
     thresholds: {data_lag: {warning: 1h}}}
  - {name: b, target: prod, plan_ids: [p2, p3]}
"""
        )
    )
    # Thresholds, labels and timeout are read at the next poll: a's schedule stands. New plans
    # are polled at once.
    assert poller.next_run_time(("prod", "a")) == first
    assert poller.next_run_time(("prod", "b")) == clock.at
    poller.apply(
        _config(
            """
  - {name: a, target: prod, plan_ids: [p1], interval: 2m}
  - {name: b, target: prod, plan_ids: [p2, p3]}
"""
        )
    )
    assert poller.next_run_time(("prod", "a")) == clock.at  # a new interval: a new schedule
    clock.at = NOW + timedelta(minutes=6)
    poller.apply(
        _config("  - {name: a, target: prod, plan_ids: [p1], interval: 2m}\n", secret="rotated-key")
    )
    assert poller.next_run_time(("prod", "a")) == clock.at  # new credentials: a new client


async def test_a_reload_that_adds_a_schedule_keeps_the_poll_and_takes_the_schedule(
    poller: Poller, store: SnapshotStore, clock: FixedClock
) -> None:
    poller.apply(_config())
    first = poller.next_run_time(("prod", "a"))
    clock.at = NOW + timedelta(minutes=5)
    poller.apply(
        _config(
            """
  - {name: a, target: prod, plan_ids: [p1], schedule: {refresh_cron: "30 2 * * *"},
     data_granularity: day}
  - {name: b, target: prod, plan_ids: [p2]}
"""
        )
    )
    # The schedule is read at scrape time from the stored group: no poll for it.
    assert poller.next_run_time(("prod", "a")) == first
    snapshot = store.get(("prod", "a"))
    assert snapshot is not None
    assert snapshot.group.schedule is not None
    assert snapshot.group.schedule.refresh_cron == "30 2 * * *"
    assert snapshot.group.data_periods is not None


async def test_change_detection_survives_a_threshold_reload_but_not_a_plan_change(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock, clock: FixedClock
) -> None:
    later = {**OK_BODY, "data": {**OK_BODY["data"], "latestRefreshTime": "2024-09-02 03:30:00"}}
    httpx_mock.add_response(url=ENDPOINT, json=OK_BODY)
    httpx_mock.add_response(url=ENDPOINT, json=later)
    key = ("prod", "a")
    poller.apply(_config("  - {name: a, target: prod, plan_ids: [p1]}\n"))
    await poller.poll_group(key)
    clock.at = NOW + timedelta(minutes=1)
    await poller.poll_group(key)

    poller.apply(
        _config(
            "  - {name: a, target: prod, plan_ids: [p1],"
            " thresholds: {refreshes_without_new_data: {warning: 5}}}\n"
        )
    )
    kept = store.get(key)
    assert kept is not None
    assert kept.group.refreshes_without_new_data.warning == 5
    assert kept.changes.refreshes_without_new_data == 1
    assert kept.changes.last_change_time == NOW

    # Other plans: the old data time is no baseline for theirs.
    poller.apply(_config("  - {name: a, target: prod, plan_ids: [p1, p2]}\n"))
    fresh = store.get(key)
    assert fresh is not None
    assert fresh.changes == DataChanges()


async def test_a_reload_that_changes_the_slo_judges_freshness_anew_from_the_reload(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock, clock: FixedClock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=OK_BODY)
    key = ("prod", "a")
    poller.apply(_config("  - {name: a, target: prod, plan_ids: [p1], slo: {objective: 0.99}}\n"))
    await poller.poll_group(key)
    clock.at = NOW + timedelta(hours=1)
    poller.apply(
        _config(
            "  - {name: a, target: prod, plan_ids: [p1], slo: {objective: 99.9%},"
            " thresholds: {data_lag: {critical: 20h}}}\n"
        )
    )
    snapshot = store.get(key)
    assert snapshot is not None
    assert snapshot.group.slo_objective == 0.999
    # Fresh under the 50h default for the hour before the reload, stale under 20h after it.
    assert snapshot.freshness.since == clock.at.timestamp()
    assert snapshot.freshness.is_fresh(clock.at.timestamp()) is False
    later = (NOW + timedelta(hours=2)).timestamp()
    assert snapshot.freshness.totals(later) == (3600.0, 7200.0)


async def test_a_target_change_replaces_its_client(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, match_headers={"auth-value": "new-secret"}, json=OK_BODY)
    poller.apply(_config(secret="old-secret"))
    poller.apply(_config(secret="new-secret"))
    await poller.poll_group(("prod", "a"))
    snapshot = store.get(("prod", "a"))
    assert snapshot is not None
    assert snapshot.poll_success is True


async def test_a_future_time_is_logged_once(
    poller: Poller, httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    data = {**OK_BODY["data"], "latestRefreshTime": "2024-09-02 12:00:00"}  # type: ignore[dict-item]
    future = {**OK_BODY, "data": data}
    httpx_mock.add_response(url=ENDPOINT, json=future, is_reusable=True)
    poller.apply(_config("  - {name: a, target: prod, plan_ids: [p1]}\n"))
    await poller.poll_group(("prod", "a"))
    await poller.poll_group(("prod", "a"))

    warnings = [r for r in caplog.records if "in the future" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].__dict__["field"] == "latestRefreshTime"


async def test_the_scheduler_polls_at_start_then_at_the_groups_slot_each_interval(
    store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    requests: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(time.time())
        return httpx.Response(200, json=OK_BODY)

    httpx_mock.add_callback(answer, url=ENDPOINT, is_reusable=True)
    poller = Poller(store, SystemClock())
    poller.apply(
        _config("  - {name: a, target: prod, plan_ids: [p1], interval: 1s, timeout: 1s}\n")
    )
    started = time.time()
    poller.start()
    try:
        for _ in range(80):
            if len(requests) >= 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await poller.stop(grace_seconds=1)
    assert len(requests) >= 3
    assert requests[0] - started < 0.5  # at once
    # Then in the group's slot of the interval (its stable spread, plus up to 5% jitter)...
    slot = started + _spread_fraction(("prod", "a")) * 1.0
    assert slot - 0.01 <= requests[1] <= slot + 0.05 + 0.2
    # ...and once an interval from there.
    assert 0.9 <= requests[2] - requests[1] <= 1.2


async def test_groups_are_spread_over_their_interval_after_the_first_poll(
    store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=OK_BODY, is_reusable=True)
    poller = Poller(store, SystemClock())
    names = [f"g{index}" for index in range(20)]
    groups = "".join(f"  - {{name: {name}, target: prod, plan_ids: [p1]}}\n" for name in names)
    poller.apply(_config(groups))
    started = datetime.now(UTC)
    poller.start()
    try:
        for _ in range(100):
            if poller.ready:
                break
            await asyncio.sleep(0.02)
        assert poller.ready
        offsets = {}
        for name in names:
            next_run = poller.next_run_time(("prod", name))
            assert next_run is not None
            offsets[name] = (next_run - started).total_seconds()
    finally:
        await poller.stop(grace_seconds=1)
    for name, offset in offsets.items():
        slot = _spread_fraction(("prod", name)) * 60
        assert slot - 0.5 <= offset <= slot + 3 + 0.5, name  # jitter: 5% of 60 s
    # Not all in one burst: the second polls cover most of the minute.
    assert max(offsets.values()) - min(offsets.values()) > 30


async def test_a_timezone_fix_on_reload_counts_no_data_time_regression(
    poller: Poller, store: SnapshotStore, clock: FixedClock, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=OK_BODY, is_reusable=True)
    key = ("prod", "a")
    poller.apply(config_for(URL, "  - {name: a, target: prod, plan_ids: [p1]}\n"))
    await poller.poll_group(key)
    # The same CAN text read in Shanghai instead of UTC is eight hours earlier.
    zoned = config_for(URL, "  - {name: a, target: prod, plan_ids: [p1]}\n")
    target = replace(zoned.targets["prod"], timezone=ZoneInfo("Asia/Shanghai"))
    poller.apply(replace(zoned, targets={"prod": target}))
    clock.at = NOW + timedelta(minutes=1)
    await poller.poll_group(key)
    snapshot = store.get(key)
    assert snapshot is not None
    assert snapshot.changes.regressions == 0
    assert snapshot.changes.data_time == datetime(2024, 8, 31, 16, tzinfo=UTC)
