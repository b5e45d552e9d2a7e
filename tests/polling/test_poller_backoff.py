"""The poller's backoff and per-target circuit, against CAN faked at the HTTP layer."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

import httpx
import pytest
from pytest_httpx import HTTPXMock

from exporter.can.models import LATEST_TIME_PATH
from exporter.clock import FixedClock
from exporter.config.model import Config
from exporter.polling.poller import Poller
from exporter.state.snapshots import SnapshotStore
from tests.helpers.builders import CAN_MISSING_BODY, CAN_OK_BODY, NOW, config_for

URL = "http://can.test"
ENDPOINT = URL + LATEST_TIME_PATH
OK_BODY = CAN_OK_BODY
MISSING_BODY = CAN_MISSING_BODY
GROUPS = """
  - {name: a, target: prod, plan_ids: [p1], max_backoff: 5m}
  - {name: b, target: prod, plan_ids: [p2], max_backoff: 5m}
"""


class FixedDraw(random.Random):
    """Backoff jitter draws that are always 0: the delays are their nominal values."""

    def random(self) -> float:
        return 0.0


@pytest.fixture
def poller_rng() -> random.Random:
    return FixedDraw()


@pytest.fixture(autouse=True)
def _groups_applied(poller: Poller) -> None:
    poller.apply(_config())


def _config(groups: str = GROUPS) -> Config:
    return config_for(URL, groups)


def _next_in(store: SnapshotStore, key: tuple[str, str]) -> float:
    snapshot = store.get(key)
    assert snapshot is not None
    assert snapshot.next_poll_time is not None
    return (snapshot.next_poll_time - NOW).total_seconds()


async def test_a_failing_group_backs_off_and_recovers(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p1"]}, json=MISSING_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p1"]}, json=MISSING_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p1"]}, json=MISSING_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p1"]}, json=MISSING_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p1"]}, json=MISSING_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["p1"]}, json=OK_BODY)
    key = ("prod", "a")
    delays = []
    for _ in range(5):
        await poller.poll_group(key)
        delays.append(_next_in(store, key))
        # The job itself moved, not only the number on display.
        assert poller.next_run_time(key) == NOW + timedelta(seconds=delays[-1])
    # 60 s interval doubling per failure after the first, capped at max_backoff 5m.
    assert delays == [60.0, 120.0, 240.0, 300.0, 300.0]
    snapshot = store.get(key)
    assert snapshot is not None
    assert snapshot.consecutive_failures == 5

    await poller.poll_group(key)
    snapshot = store.get(key)
    assert snapshot is not None
    assert snapshot.consecutive_failures == 0
    assert _next_in(store, key) == 60.0


async def test_plan_errors_back_off_without_opening_the_circuit(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=MISSING_BODY, is_reusable=True)
    await poller.poll_group(("prod", "a"))
    await poller.poll_group(("prod", "b"))
    targets = store.targets()
    assert [(t.name, t.circuit_open, t.requests_sent) for t in targets] == [("prod", False, 2)]


async def test_a_target_failing_for_every_group_opens_its_circuit_and_probes_one_at_a_time(
    poller: Poller,
    store: SnapshotStore,
    httpx_mock: HTTPXMock,
    caplog: pytest.LogCaptureFixture,
    clock: FixedClock,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.poller")
    httpx_mock.add_response(url=ENDPOINT, status_code=401)
    httpx_mock.add_response(url=ENDPOINT, status_code=401)
    await poller.poll_group(("prod", "a"))
    assert not store.targets()[0].circuit_open  # b has not failed yet
    await poller.poll_group(("prod", "b"))
    assert store.targets()[0].circuit_open
    opened = [r for r in caplog.records if "circuit open" in r.getMessage()]
    assert len(opened) == 1
    assert opened[0].levelno == logging.WARNING

    # Not before two intervals: polls meanwhile are held back without a request.
    await poller.poll_group(("prod", "a"))
    assert len(httpx_mock.get_requests()) == 2
    assert _next_in(store, ("prod", "a")) == 120

    # The next poll is a probe; while it is out, the other group's poll is not sent.
    clock.at = NOW + timedelta(seconds=120)
    release = asyncio.Event()
    arrived = asyncio.Event()
    seen: list[httpx.Request] = []

    async def slow_answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        arrived.set()
        await release.wait()
        return httpx.Response(200, json=OK_BODY)

    httpx_mock.add_callback(slow_answer, url=ENDPOINT)
    probe = asyncio.create_task(poller.poll_group(("prod", "a")))
    await asyncio.wait_for(arrived.wait(), 5)
    await poller.poll_group(("prod", "b"))
    assert len(seen) == 1
    assert _next_in(store, ("prod", "b")) > 120  # held back, rescheduled
    snapshot_b = store.get(("prod", "b"))
    assert snapshot_b is not None
    assert snapshot_b.consecutive_failures == 1  # a skipped poll is not a failure

    release.set()
    await probe
    assert not store.targets()[0].circuit_open
    assert any("circuit closed" in r.getMessage() for r in caplog.records)
    # The held-back group is brought forward, within a minute.
    assert 120 <= _next_in(store, ("prod", "b")) <= 180
    assert store.targets()[0].requests_sent == 3


async def test_a_probe_of_a_per_plan_group_asks_about_the_group_only(
    store: SnapshotStore, clock: FixedClock, httpx_mock: HTTPXMock
) -> None:
    poller = Poller(store, clock, rng=FixedDraw())
    poller.apply(_config("  - {name: a, target: prod, plan_ids: [p1, p2], per_plan: true}\n"))
    try:
        httpx_mock.add_response(url=ENDPOINT, status_code=401, is_reusable=True)
        await poller.poll_group(("prod", "a"))  # the group and both plans: 3 requests
        assert store.targets()[0].circuit_open
        clock.at = NOW + timedelta(minutes=2)
        await poller.poll_group(("prod", "a"))  # the probe: 1 request
        assert len(httpx_mock.get_requests()) == 4
        snapshot = store.get(("prod", "a"))
        assert snapshot is not None
        assert [plan.plan for plan in snapshot.plans] == ["p1", "p2"]  # plan state kept
    finally:
        await poller.stop(grace_seconds=1)


async def test_a_changed_target_gets_a_closed_circuit(
    poller: Poller, store: SnapshotStore, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, status_code=401, is_reusable=True)
    await poller.poll_group(("prod", "a"))
    await poller.poll_group(("prod", "b"))
    assert store.targets()[0].circuit_open
    poller.apply(config_for(URL, GROUPS, secret="rotated-secret"))
    assert [(t.name, t.circuit_open) for t in store.targets()] == [("prod", False)]


DEAD_GROUPS = "".join(
    f"  - {{name: g{index}, target: prod, plan_ids: [p{index}], interval: 1s, timeout: 500ms}}\n"
    for index in range(5)
)


async def _drive(
    poller: Poller, store: SnapshotStore, clock: FixedClock, httpx_mock: HTTPXMock, seconds: float
) -> list[float]:
    """Run the groups as the scheduler would (each at its next poll time) for ``seconds`` of
    the fixed clock; the times (seconds after NOW) at which requests went out."""
    keys = [("prod", f"g{index}") for index in range(5)]
    sent: list[float] = []
    while clock.at < NOW + timedelta(seconds=seconds):
        for key in keys:
            snapshot = store.get(key)
            assert snapshot is not None
            due = snapshot.next_poll_time
            if due is None or due <= clock.at:
                before = len(httpx_mock.get_requests())
                await poller.poll_group(key)
                offset = (clock.at - NOW).total_seconds()
                sent += [offset] * (len(httpx_mock.get_requests()) - before)
        clock.at += timedelta(milliseconds=250)
    return sent


async def test_a_dead_targets_probes_back_off_and_are_never_retried(
    store: SnapshotStore, clock: FixedClock, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=ENDPOINT, is_reusable=True)
    poller = Poller(store, clock, rng=FixedDraw())
    poller.apply(_config(DEAD_GROUPS))
    try:
        sent = await _drive(poller, store, clock, httpx_mock, seconds=60)
    finally:
        await poller.stop(grace_seconds=1)
    assert store.targets()[0].circuit_open
    # Before the circuit opens, each group's first poll is tried up to three times; after,
    # one probe at a time, 2x, 4x, 8x, 16x the interval apart, each a single request.
    opening = [offset for offset in sent if offset == 0]
    assert len(opening) > 5
    assert [offset for offset in sent if offset > 0] == [2.0, 6.0, 14.0, 30.0]


async def test_probes_back_off_no_further_than_max_backoff(
    store: SnapshotStore, clock: FixedClock, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=ENDPOINT, is_reusable=True)
    poller = Poller(store, clock, rng=FixedDraw())
    poller.apply(_config(DEAD_GROUPS.replace("timeout: 500ms", "timeout: 500ms, max_backoff: 5s")))
    try:
        sent = await _drive(poller, store, clock, httpx_mock, seconds=30)
    finally:
        await poller.stop(grace_seconds=1)
    assert [offset for offset in sent if offset > 0] == [2.0, 6.0, 11.0, 16.0, 21.0, 26.0]
