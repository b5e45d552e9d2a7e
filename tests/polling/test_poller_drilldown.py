"""per_plan: auto in the poller, against CAN faked at the HTTP layer, with a fixed clock."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pytest_httpx import HTTPXMock

from exporter.can.models import LATEST_TIME_PATH
from exporter.clock import FixedClock
from exporter.config.load import parse_config
from exporter.config.model import Config
from exporter.metrics.collector import CanCollector
from exporter.polling.poller import Poller
from exporter.state.snapshots import PlanSnapshot, SnapshotStore
from tests.helpers.builders import CAN_MISSING_BODY, NOW

URL = "http://can.test"
ENDPOINT = URL + LATEST_TIME_PATH
KEY = ("prod", "wide")
LABELS = {"target": "prod", "group": "wide"}
PLANS = [f"p{index:02d}" for index in range(1, 21)]
GONE = "p13"
MISSING_BODY = {**CAN_MISSING_BODY, "traceId": "trace-gone-13"}

Body = Mapping[str, object]


def _body(data: str = "2024-09-02 00:00:00", *, not_ready: bool = False) -> Body:
    """An answer whose data time is ``data``, refreshed an hour before NOW."""
    return {
        "data": {
            "hasNotReady": not_ready,
            "latestDateTime": data,
            "latestRefreshTime": "2024-09-02 03:00:00",
        },
        "success": True,
        "code": "200",
        "errorMsg": None,
        "traceId": "trace-ok",
    }


FRESH = _body()  # 4 h of lag at NOW: under the default 26 h warning threshold
LAGGING = _body("2024-08-30 00:00:00")  # 76 h: over it


def _config(
    group: str = "per_plan: auto", *, plans: list[str] = PLANS, concurrency: int = 8
) -> Config:
    return parse_config(_config_text(group, plans=plans, concurrency=concurrency), environ={})


def _config_text(
    group: str = "per_plan: auto",
    *,
    plans: list[str] = PLANS,
    concurrency: int = 8,
    apikey: str = "s3cret-value",
) -> str:
    return f"""
targets:
  - name: prod
    url: {URL}
    tenant_id: "10001"
    auth: {{type: APIKEY, value: {apikey}}}
    timezone: UTC
    max_concurrency: {concurrency}
groups:
  - {{name: wide, target: prod, plan_ids: {json.dumps(plans)}, {group}}}
"""


class FakeCan:
    """Answers the group request with ``group`` and each one-plan request from ``plans``
    (FRESH for a plan not listed); records the plan lists asked about."""

    def __init__(self, httpx_mock: HTTPXMock) -> None:
        self.group: Body = FRESH
        self.plans: dict[str, Body] = {}
        self.asked: list[list[str]] = []
        httpx_mock.add_callback(self._answer, url=ENDPOINT, is_reusable=True)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        plans: list[str] = json.loads(request.content)["planIdList"]
        self.asked.append(plans)
        if len(plans) > 1:
            return httpx.Response(200, json=self.group)
        return httpx.Response(200, json=self.plans.get(plans[0], FRESH))

    def take(self) -> list[list[str]]:
        asked, self.asked = self.asked, []
        return asked


@pytest.fixture
def can(httpx_mock: HTTPXMock) -> FakeCan:
    return FakeCan(httpx_mock)


def _plans(store: SnapshotStore) -> tuple[PlanSnapshot, ...]:
    snapshot = store.get(KEY)
    assert snapshot is not None
    return snapshot.plans


def _plan_series(store: SnapshotStore, clock: FixedClock) -> dict[str, dict[str, float]]:
    """Every plan-level sample the collector exports, by metric name then plan."""
    registry = CollectorRegistry()
    registry.register(CanCollector(store, clock))
    series: dict[str, dict[str, float]] = {}
    for family in registry.collect():
        for sample in family.samples:
            if "plan" in sample.labels:
                series.setdefault(sample.name, {})[sample.labels["plan"]] = sample.value
    return series


def _plan_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "plan poll failed"]


async def test_a_healthy_auto_group_is_one_request_and_no_plan_series(
    poller: Poller, store: SnapshotStore, clock: FixedClock, can: FakeCan
) -> None:
    poller.apply(_config())
    await poller.poll_group(KEY)
    assert can.take() == [PLANS]
    assert _plans(store) == ()
    assert _plan_series(store, clock) == {}


async def test_a_missing_plan_in_a_20_plan_group_is_named_and_logged_once(
    poller: Poller,
    store: SnapshotStore,
    clock: FixedClock,
    can: FakeCan,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.poller")
    can.group = MISSING_BODY
    can.plans[GONE] = MISSING_BODY
    poller.apply(_config())

    for _ in range(3):
        await poller.poll_group(KEY)
        asked = can.take()
        # The group, then each plan alone, every poll while the group is unhealthy.
        assert asked[0] == PLANS
        assert sorted(asked[1:]) == [[plan] for plan in PLANS]

    assert _plans(store) == (PlanSnapshot(GONE, None, poll_success=False, missing=True),)
    series = _plan_series(store, clock)
    assert series["aloudata_can_plan_missing"] == {GONE: 1.0}
    assert series["aloudata_can_plan_poll_success"] == {GONE: 0.0}
    snapshot = store.get(KEY)
    assert snapshot is not None
    assert snapshot.poll_success is False
    assert snapshot.last_reason == "plan_not_found"

    (warning,) = _plan_warnings(caplog)
    assert warning.levelno == logging.WARNING
    assert warning.__dict__["target"] == "prod"
    assert warning.__dict__["group"] == "wide"
    assert warning.__dict__["plan"] == GONE
    assert warning.__dict__["reason"] == "plan_not_found"
    assert warning.__dict__["error_msg"] == "Acceleration plan does not exist"
    assert warning.__dict__["trace_id"] == "trace-gone-13"


async def test_recovery_removes_the_plan_series(
    poller: Poller, store: SnapshotStore, clock: FixedClock, can: FakeCan
) -> None:
    can.group = MISSING_BODY
    can.plans[GONE] = MISSING_BODY
    poller.apply(_config())
    await poller.poll_group(KEY)
    assert "aloudata_can_plan_missing" in _plan_series(store, clock)

    can.group = FRESH
    can.plans.clear()
    can.take()
    await poller.poll_group(KEY)
    assert can.take() == [PLANS]
    assert _plans(store) == ()
    assert _plan_series(store, clock) == {}


async def test_a_lagging_group_exports_only_its_offending_plans(
    poller: Poller, store: SnapshotStore, clock: FixedClock, can: FakeCan
) -> None:
    can.group = _body("2024-08-30 00:00:00", not_ready=True)
    can.plans = {"p02": LAGGING, "p05": _body(not_ready=True), "p07": MISSING_BODY}
    poller.apply(_config())
    await poller.poll_group(KEY)

    series = _plan_series(store, clock)
    assert series["aloudata_can_plan_poll_success"] == {"p02": 1.0, "p05": 1.0, "p07": 0.0}
    assert series["aloudata_can_plan_not_ready"] == {"p02": 0.0, "p05": 1.0}
    assert series["aloudata_can_plan_data_lag_seconds"] == {"p02": 76 * 3600.0, "p05": 4 * 3600.0}
    assert series["aloudata_can_plan_missing"] == {"p07": 1.0}

    # The offending set follows CAN: p02 caught up, p09 fell behind.
    can.plans = {"p05": _body(not_ready=True), "p09": LAGGING}
    await poller.poll_group(KEY)
    assert [plan.plan for plan in _plans(store)] == ["p05", "p09"]
    assert "aloudata_can_plan_missing" not in _plan_series(store, clock)


async def test_the_threshold_is_the_groups_warning_at_poll_time(
    poller: Poller, store: SnapshotStore, clock: FixedClock, can: FakeCan
) -> None:
    # 28 h of lag: under a 30 h warning now, over it 2 h later.
    can.group = _body("2024-09-01 00:00:00")
    can.plans = {"p01": _body("2024-09-01 00:00:00")}
    poller.apply(
        _config("per_plan: auto, thresholds: {data_lag: {warning: 30h}}", plans=["p01", "p02"])
    )
    await poller.poll_group(KEY)
    assert can.take() == [["p01", "p02"]]

    clock.at = NOW.replace(hour=6, minute=0, second=1)
    await poller.poll_group(KEY)
    assert sorted(can.take()) == [["p01"], ["p01", "p02"], ["p02"]]
    assert [plan.plan for plan in _plans(store)] == ["p01"]


async def test_the_drilldown_is_bounded_by_drilldown_max_plans(
    poller: Poller,
    store: SnapshotStore,
    can: FakeCan,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.poller")
    can.group = LAGGING
    can.plans = {plan: LAGGING for plan in PLANS}
    poller.apply(_config("per_plan: auto, drilldown_max_plans: 5"))
    await poller.poll_group(KEY)
    await poller.poll_group(KEY)

    asked = can.take()
    assert [plans for plans in asked if len(plans) == 1] == [[p] for p in PLANS[:5]] * 2
    assert [plan.plan for plan in _plans(store)] == PLANS[:5]
    limited = [r for r in caplog.records if "drilldown_max_plans" in r.getMessage()]
    assert len(limited) == 1
    assert limited[0].levelno == logging.INFO
    assert limited[0].__dict__["plans"] == 20


async def test_the_drilldown_keeps_to_the_targets_concurrency(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    in_flight = 0
    most = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=LAGGING)

    httpx_mock.add_callback(answer, url=ENDPOINT, is_reusable=True)
    poller.apply(_config(concurrency=3))
    await poller.poll_group(KEY)
    assert len(httpx_mock.get_requests()) == 21
    assert most == 3
    assert len(_plans(store)) == 20


async def test_a_failure_that_says_nothing_about_plans_keeps_them(
    poller: Poller, store: SnapshotStore, can: FakeCan, httpx_mock: HTTPXMock
) -> None:
    can.group = MISSING_BODY
    can.plans[GONE] = MISSING_BODY
    poller.apply(_config())
    await poller.poll_group(KEY)
    can.take()

    can.group = {"success": False, "code": "500", "errorMsg": "internal", "data": None}
    await poller.poll_group(KEY)
    assert can.take() == [PLANS]  # no drilldown on an api_error
    assert _plans(store) == (PlanSnapshot(GONE, None, poll_success=False, missing=True),)


async def test_a_probe_never_drills_down(
    poller: Poller, store: SnapshotStore, can: FakeCan, clock: FixedClock
) -> None:
    poller.apply(_config())
    can.group = {"success": False, "code": "401", "errorMsg": "bad key", "data": None}
    await poller.poll_group(KEY)
    assert store.targets()[0].circuit_open
    can.take()

    # The probe (once the circuit lets it go) finds CAN up and a plan missing: it asks about
    # the group only.
    can.group = MISSING_BODY
    can.plans[GONE] = MISSING_BODY
    clock.at += timedelta(minutes=5)
    await poller.poll_group(KEY)
    assert can.take() == [PLANS]
    assert not store.targets()[0].circuit_open
    assert _plans(store) == ()

    await poller.poll_group(KEY)
    assert len(can.take()) == 21
    assert _plan_series(store, clock)["aloudata_can_plan_missing"] == {GONE: 1.0}


async def test_per_plan_true_is_unchanged_and_exports_plan_missing(
    poller: Poller,
    store: SnapshotStore,
    clock: FixedClock,
    can: FakeCan,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plans = ["p01", "p02", GONE]
    can.group = MISSING_BODY
    can.plans[GONE] = MISSING_BODY
    poller.apply(_config("per_plan: true", plans=plans))
    await poller.poll_group(KEY)
    await poller.poll_group(KEY)

    # Every plan, healthy ones included, on every poll.
    assert sorted(can.take()) == sorted([plans, ["p01"], ["p02"], [GONE]] * 2)
    series = _plan_series(store, clock)
    assert series["aloudata_can_plan_poll_success"] == {"p01": 1.0, "p02": 1.0, GONE: 0.0}
    assert series["aloudata_can_plan_missing"] == {GONE: 1.0}
    assert [r.__dict__["plan"] for r in _plan_warnings(caplog)] == [GONE]

    # Back in CAN: the series goes, and a plan that answers is not missing.
    can.group = FRESH
    can.plans.clear()
    await poller.poll_group(KEY)
    assert "aloudata_can_plan_missing" not in _plan_series(store, clock)
    assert [plan.plan for plan in _plans(store)] == plans


async def test_switching_per_plan_to_auto_by_reload_starts_afresh(
    poller: Poller, store: SnapshotStore, can: FakeCan
) -> None:
    poller.apply(_config("per_plan: true", plans=["p01", "p02"]))
    await poller.poll_group(KEY)
    assert len(_plans(store)) == 2
    poller.apply(_config(plans=["p01", "p02"]))
    assert _plans(store) == ()
    snapshot = store.get(KEY)
    assert snapshot is not None
    assert snapshot.group.drilldown


async def _reload_during_a_drilldown(
    poller: Poller, httpx_mock: HTTPXMock, group: Body, plans: Mapping[str, Body], reload: Config
) -> list[list[str]]:
    """Poll the 20-plan auto group (one request at a time) against a CAN answering ``group``
    for the whole group and ``plans`` (FRESH otherwise) for each plan, apply ``reload`` while
    the first plan's request is out, and return the plan lists CAN was asked about."""
    asked: list[list[str]] = []
    reloaded = asyncio.Event()
    plan_asked = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        plans_asked: list[str] = json.loads(request.content)["planIdList"]
        asked.append(plans_asked)
        if len(plans_asked) > 1:
            return httpx.Response(200, json=group)
        plan_asked.set()
        await reloaded.wait()
        return httpx.Response(200, json=plans.get(plans_asked[0], FRESH))

    httpx_mock.add_callback(answer, url=ENDPOINT, is_reusable=True)
    poller.apply(_config(concurrency=1))
    polling = asyncio.create_task(poller.poll_group(KEY))
    await asyncio.wait_for(plan_asked.wait(), 5)  # the group, then the first plan
    poller.apply(reload)
    reloaded.set()
    await asyncio.wait_for(polling, 5)
    return asked


async def test_a_reload_during_a_drilldown_stops_it_without_an_error(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    # New credentials: a new client; the old one is closed after its timeout.
    rotated = parse_config(_config_text(concurrency=1, apikey="rotated-secret"), environ={})
    # No "CanClient is closed" from the 18 plans left.
    asked = await _reload_during_a_drilldown(poller, httpx_mock, CAN_MISSING_BODY, {}, rotated)
    assert len(asked) == 2
    snapshot = store.get(KEY)
    assert snapshot is not None
    assert not snapshot.polled  # the stale result was dropped


@pytest.mark.parametrize("per_plan", ["per_plan: auto", "per_plan: true"])
async def test_a_one_plan_group_asks_can_once_per_poll(
    poller: Poller, store: SnapshotStore, clock: FixedClock, can: FakeCan, per_plan: str
) -> None:
    can.plans[GONE] = MISSING_BODY
    poller.apply(_config(per_plan, plans=[GONE]))
    await poller.poll_group(KEY)
    await poller.poll_group(KEY)

    # The group's request is the plan's own: asking it again would double CAN's load.
    assert can.take() == [[GONE], [GONE]]
    assert _plans(store) == (PlanSnapshot(GONE, None, poll_success=False, missing=True),)
    series = _plan_series(store, clock)
    assert series["aloudata_can_plan_missing"] == {GONE: 1.0}
    assert series["aloudata_can_plan_poll_success"] == {GONE: 0.0}

    can.plans[GONE] = LAGGING
    await poller.poll_group(KEY)
    assert can.take() == [[GONE]]
    series = _plan_series(store, clock)
    assert series["aloudata_can_plan_data_lag_seconds"] == {GONE: 76 * 3600.0}
    assert "aloudata_can_plan_missing" not in series


async def test_a_threshold_reload_during_a_drilldown_keeps_its_answer(
    poller: Poller, store: SnapshotStore, clock: FixedClock, httpx_mock: HTTPXMock
) -> None:
    # Only a threshold and a label change: CAN's answer to the same question still stands.
    reload = _config(
        "per_plan: auto, thresholds: {data_lag: {warning: 30h}}, labels: {team: x}", concurrency=1
    )
    asked = await _reload_during_a_drilldown(poller, httpx_mock, LAGGING, {"p02": LAGGING}, reload)

    assert len(asked) == 1 + len(PLANS)  # the drilldown went on to every plan
    snapshot = store.get(KEY)
    assert snapshot is not None
    assert snapshot.polled
    assert dict(snapshot.group.labels) == {"team": "x"}  # the reloaded group, not the polled one
    assert _plan_series(store, clock)["aloudata_can_plan_data_lag_seconds"] == {"p02": 76 * 3600.0}
