"""The aiohttp server, started in-process on a free loopback port."""

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from exporter.simulator import (
    DEMO_SCENARIO_PATH,
    HEALTH_PATH,
    LATEST_TIME_PATH,
    STATS_PATH,
    RunningSimulator,
    Scenario,
    load_scenario,
    start_simulator,
)

NOW = datetime(2024, 9, 1, 10, 9, 16, tzinfo=UTC)  # 18:09:16 in Asia/Shanghai
TRACE_ID_RE = re.compile(r"[0-9a-f]{32}\.\d+\.\d+")

HEALTHY = "1e0a5c3b7d9f4e2a8c6b0d1f3a5e7c90"
SLOW = "2f1b6d4c8e0a5f3b9d7c1e2a4b6f8d01"
UNAVAILABLE = "3a2c7e5d9f1b6a4c0e8d2f3b5c7a9e12"
MALFORMED = "4b3d8f6e0a2c7b5d1f9e3a4c6d8b0f23"
API_ERROR = "5c4e9a7f1b3d8c6e2a0f4b5d7e9c1a34"
FLAPPING = "6d5f0b8a2c4e9d7f3b1a5c6e8f0d2b45"  # down for the first 20 s of every minute


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    scenario = load_scenario(DEMO_SCENARIO_PATH.with_name("faults.yml"))
    running = await start_simulator(scenario, now=lambda: NOW)
    yield running
    await running.close()


@pytest.fixture
async def client(
    simulator: RunningSimulator, auth_headers: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=simulator.base_url, headers=auth_headers, timeout=5.0
    ) as client:
        yield client


def _ids(*plan_ids: str) -> dict[str, list[str]]:
    return {"planIdList": list(plan_ids)}


async def test_binds_a_free_loopback_port(simulator: RunningSimulator) -> None:
    assert simulator.port > 0
    assert simulator.base_url == f"http://127.0.0.1:{simulator.port}"


async def test_healthy(client: httpx.AsyncClient) -> None:
    response = await client.get(HEALTH_PATH)

    assert response.status_code == 200
    assert response.text == "ok"


async def test_stats_count_latest_time_requests_and_their_connections(
    simulator: RunningSimulator, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    for _ in range(2):  # one kept-alive connection
        assert (await client.post(LATEST_TIME_PATH, json=_ids(HEALTHY))).status_code == 200
    await client.get(HEALTH_PATH)  # not a latestTime request
    async with httpx.AsyncClient(base_url=simulator.base_url, headers=auth_headers) as other:
        assert (await other.post(LATEST_TIME_PATH, json=_ids(HEALTHY))).status_code == 200
        stats = (await other.get(STATS_PATH)).json()
    assert stats == {"requests": 3, "connections": 2}


async def test_success(client: httpx.AsyncClient) -> None:
    response = await client.post(LATEST_TIME_PATH, json=_ids(HEALTHY))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is True
    assert body["data"] == {
        "hasNotReady": False,
        "latestDateTime": "2024-08-31 00:00:00",
        "latestRefreshTime": "2024-09-01 18:00:00",
    }
    assert TRACE_ID_RE.fullmatch(body["traceId"])


async def test_each_reply_has_a_fresh_trace_id(client: httpx.AsyncClient) -> None:
    first = await client.post(LATEST_TIME_PATH, json=_ids(HEALTHY))
    second = await client.post(LATEST_TIME_PATH, json=_ids("unknown"))

    assert first.json()["traceId"] != second.json()["traceId"]
    assert TRACE_ID_RE.fullmatch(second.json()["traceId"])


async def test_wrong_auth_value_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        LATEST_TIME_PATH, json=_ids(HEALTHY), headers={"auth-value": "guess"}
    )

    assert response.status_code == 401
    assert response.json()["errorMsg"] == "authentication failed"
    assert response.json()["data"] is None


async def test_non_json_body_is_http_400(client: httpx.AsyncClient) -> None:
    response = await client.post(LATEST_TIME_PATH, content=b"planIdList=x")

    assert response.status_code == 400
    assert response.json()["success"] is False


async def test_latest_time_only_accepts_post(client: httpx.AsyncClient) -> None:
    response = await client.get(LATEST_TIME_PATH)

    assert response.status_code == 405


async def test_http_status_fault(client: httpx.AsyncClient) -> None:
    response = await client.post(LATEST_TIME_PATH, json=_ids(HEALTHY, UNAVAILABLE))

    assert response.status_code == 503
    assert response.text == "503 Service Unavailable\n"


async def test_api_error_fault(client: httpx.AsyncClient) -> None:
    response = await client.post(LATEST_TIME_PATH, json=_ids(API_ERROR))

    assert response.status_code == 200
    assert response.json()["success"] is False
    assert response.json()["code"] == "500"
    assert response.json()["errorMsg"] == "Internal error"


async def test_malformed_json_fault(client: httpx.AsyncClient) -> None:
    response = await client.post(LATEST_TIME_PATH, json=_ids(MALFORMED))

    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_flapping_plan_is_down_at_second_16(client: httpx.AsyncClient) -> None:
    response = await client.post(LATEST_TIME_PATH, json=_ids(FLAPPING))

    assert response.status_code == 503
    assert response.text == "503 Service Unavailable\n"


async def test_flap_reset_drops_the_connection_then_recovers(
    make_scenario: Callable[..., Scenario],
    auth_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    flap = {"period": "1m", "down": "20s", "mode": "reset"}
    scenario = make_scenario({"id": "p", "name": "p", "faults": {"flap": flap}})
    clock = [NOW]  # second 16 of the minute: down

    async with (
        await start_simulator(scenario, now=lambda: clock[0]) as simulator,
        httpx.AsyncClient(base_url=simulator.base_url, headers=auth_headers) as client,
    ):
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await client.post(LATEST_TIME_PATH, json=_ids("p"))
        clock[0] = NOW + timedelta(seconds=4)  # second 20: up again
        response = await client.post(LATEST_TIME_PATH, json=_ids("p"))

    assert response.status_code == 200
    assert response.json()["success"] is True
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


async def test_data_changes_count_from_when_the_simulator_started(
    make_scenario: Callable[..., Scenario], auth_headers: dict[str, str]
) -> None:
    scenario = make_scenario(
        {
            "id": "p",
            "name": "p",
            "data_delay": "0s",
            "data_granularity": "second",
            "data_rollback": {"after": "30s", "by": "1h"},
        }
    )
    clock = [NOW]

    async with (
        await start_simulator(scenario, now=lambda: clock[0]) as simulator,
        httpx.AsyncClient(base_url=simulator.base_url, headers=auth_headers) as client,
    ):
        clock[0] = NOW + timedelta(seconds=29)
        before = (await client.post(LATEST_TIME_PATH, json=_ids("p"))).json()["data"]
        clock[0] = NOW + timedelta(seconds=30)
        after = (await client.post(LATEST_TIME_PATH, json=_ids("p"))).json()["data"]

    assert before["latestDateTime"] == "2024-09-01 18:09:45"
    assert after["latestDateTime"] == "2024-09-01 17:09:46"


async def test_flap_hang_answers_when_the_window_ends(
    make_scenario: Callable[..., Scenario], auth_headers: dict[str, str]
) -> None:
    flap = {"period": "1m", "down": "16300ms", "mode": "hang"}  # 300 ms left at NOW
    scenario = make_scenario({"id": "p", "name": "p", "faults": {"flap": flap}})

    async with (
        await start_simulator(scenario, now=lambda: NOW) as simulator,
        httpx.AsyncClient(base_url=simulator.base_url, headers=auth_headers) as client,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(LATEST_TIME_PATH, json=_ids("p"), timeout=0.1)
        started = time.monotonic()
        response = await client.post(LATEST_TIME_PATH, json=_ids("p"))
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["success"] is True
    assert 0.3 <= elapsed < 2


async def test_latency_fault_outlasts_a_client_timeout_and_close_is_prompt(
    simulator: RunningSimulator, client: httpx.AsyncClient
) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await client.post(LATEST_TIME_PATH, json=_ids(SLOW), timeout=0.3)
    timed_out_after = time.monotonic() - started

    await simulator.close()

    assert 0.3 <= timed_out_after < 2
    assert time.monotonic() - started < 3


async def test_latency_delays_the_answer(
    make_scenario: Callable[..., Scenario], auth_headers: dict[str, str]
) -> None:
    scenario = make_scenario({"id": "p", "name": "p", "faults": {"latency": "300ms"}})

    async with (
        await start_simulator(scenario, now=lambda: NOW) as simulator,
        httpx.AsyncClient(base_url=simulator.base_url, headers=auth_headers) as client,
    ):
        started = time.monotonic()
        response = await client.post(LATEST_TIME_PATH, json=_ids("p"))
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["data"]["latestDateTime"] == "2024-08-31 00:00:00"
    assert 0.3 <= elapsed < 2


async def test_closed_simulator_refuses_connections(
    simulator: RunningSimulator, client: httpx.AsyncClient
) -> None:
    assert (await client.get(HEALTH_PATH)).status_code == 200

    await simulator.close()

    with pytest.raises(httpx.ConnectError):
        await client.get(HEALTH_PATH)


async def test_port_in_use_raises_os_error(simulator: RunningSimulator) -> None:
    scenario = load_scenario(DEMO_SCENARIO_PATH)

    with pytest.raises(OSError, match=r"address already in use|Address in use"):
        await start_simulator(scenario, port=simulator.port)
