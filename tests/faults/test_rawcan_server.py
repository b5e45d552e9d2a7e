"""The raw fake CAN itself: it counts requests and never outlives stop()."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.faults.rawcan import RawCan

pytestmark = pytest.mark.integration

PATH = "/anymetrics/api/v1/accelerate/latestTime"


def _post(can: RawCan, plans: list[str], timeout: float = 5.0) -> httpx.Response:
    return httpx.post(can.url + PATH, json={"planIdList": plans}, timeout=timeout)


def test_stop_ends_hanging_handlers_at_once() -> None:
    can = RawCan().start()
    outcome: list[BaseException | httpx.Response] = []

    def hang() -> None:
        try:
            outcome.append(_post(can, ["hang_after_headers"], timeout=60))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    client = threading.Thread(target=hang)
    client.start()
    deadline = time.monotonic() + 5
    while can.active("hang_after_headers") < 1:
        assert time.monotonic() < deadline, "the hanging request never arrived"
        time.sleep(0.02)
    started = time.monotonic()
    can.stop()  # raises if a handler thread is still alive
    assert time.monotonic() - started < 2
    client.join(5)
    assert not client.is_alive()
    assert isinstance(outcome[0], httpx.HTTPError)  # cut off, not answered


def test_requests_are_counted_per_first_plan_and_flips_flip() -> None:
    with RawCan() as can:
        assert _post(can, ["flip_status_503", "other"]).status_code == 200
        assert _post(can, ["flip_status_503"]).status_code == 503
        assert _post(can, ["flip_status_503"]).status_code == 503
        assert _post(can, ["no_such_behaviour"]).status_code == 400
        assert can.count("flip_status_503") == 3
        assert can.count("other") == 0
        last = can.last("flip_status_503")
        assert last is not None
        assert last.plan_key == "planIdList"
