"""CanClient against pytest-httpx: requests, limits and failure classification."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock, IteratorStream

from exporter.can.client import MAX_ATTEMPTS, MAX_RESPONSE_BYTES, CanClient
from exporter.can.models import FailureReason, PollResult, Reading
from exporter.config.load import parse_config
from exporter.config.model import PlanKey, Target

FIXTURES = Path(__file__).parent.parent / "fixtures" / "can"
SECRET = "s3cr3t-Ap1Key-4b8d2e6f"
BASE_URL = "https://can.example.com"
ENDPOINT = f"{BASE_URL}/anymetrics/api/v1/accelerate/latestTime"
HEADERS = {"tenant-id": "10001", "auth-type": "APIKEY", "auth-value": SECRET}
PLANS = ["6665de58846daee543d5db415375d936", "e39daf5d7b8a7fd485177d4f1368971"]

SUCCESS_READING = Reading(
    has_not_ready=False,
    latest_data_time=datetime(2024, 8, 22, 16, 0, 0, tzinfo=UTC),
    latest_refresh_time=datetime(2024, 9, 1, 10, 9, 16, tzinfo=UTC),
    trace_id="a70c0ebdc9d04ce585bc2a3c85bfd83a.773.17252483988090161",
)


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_target(
    *,
    url: str = BASE_URL,
    max_concurrency: int = 8,
    timeout: str = "10s",
    timezone: str = "Asia/Shanghai",
    auth_type: str = "APIKEY",
    rate_limit: float | None = None,
) -> Target:
    text = f"""
targets:
  - name: prod
    url: "{url}"
    tenant_id: "10001"
    auth: {{type: {auth_type}, value: "${{CAN_APIKEY}}"}}
    timezone: {timezone}
    max_concurrency: {max_concurrency}
    timeout: {timeout}
    rate_limit: {"null" if rate_limit is None else rate_limit}
groups:
  - {{name: sales, target: prod, plan_ids: [p1]}}
"""
    return parse_config(text, environ={"CAN_APIKEY": SECRET}).targets["prod"]


ClientFactory = Callable[..., CanClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Build clients from ``make_target`` keywords; every one is closed after the test."""
    clients: list[CanClient] = []

    def make(**target_options: Any) -> CanClient:
        client = CanClient(make_target(**target_options), transport=httpx.AsyncHTTPTransport())
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(make_client: ClientFactory) -> CanClient:
    return make_client()


def assert_failed(result: PollResult, reason: FailureReason) -> None:
    assert result.reading is None
    assert result.error is not None
    assert result.error.reason is reason, result.error.describe()
    assert result.duration_seconds >= 0
    assert SECRET not in result.error.describe()


# --- requests and successful answers ----------------------------------------------------------


async def test_success_by_plan_ids(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        method="POST",
        match_json={"planIdList": PLANS},
        match_headers=HEADERS,
        json=fixture_json("success.json"),
    )
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert result.error is None
    assert result.reading == SUCCESS_READING
    assert result.duration_seconds >= 0


async def test_success_by_plan_names(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        method="POST",
        match_json={"planNameList": ["etstst", "v", "销售日报"]},
        match_headers=HEADERS,
        json=fixture_json("success.json"),
    )
    result = await client.poll(PlanKey.NAMES, ("etstst", "v", "销售日报"), 5.0)
    assert result.reading == SUCCESS_READING


async def test_request_headers_and_body(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        method="POST",
        match_content='{"planNameList": ["销售日报"]}'.encode(),
        json=fixture_json("success.json"),
    )
    await client.poll(PlanKey.NAMES, ["销售日报"], 5.0)
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["tenant-id"] == "10001"
    assert request.headers["auth-type"] == "APIKEY"
    assert request.headers["auth-value"] == SECRET
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["user-agent"].startswith("aloudata-can-exporter/")
    assert "authorization" not in request.headers


@pytest.mark.parametrize("auth_type", ["UID", "TOKEN", "ACCOUNT", "APIKEY"])
async def test_auth_type_header(
    make_client: ClientFactory, httpx_mock: HTTPXMock, auth_type: str
) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        match_headers={**HEADERS, "auth-type": auth_type},
        json=fixture_json("success.json"),
    )
    result = await make_client(auth_type=auth_type).poll(PlanKey.IDS, PLANS, 5.0)
    assert result.reading == SUCCESS_READING


async def test_url_with_a_path_prefix(make_client: ClientFactory, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url="http://gateway.internal:8080/can/anymetrics/api/v1/accelerate/latestTime",
        method="POST",
        match_json={"planIdList": ["p1"]},
        json=fixture_json("success.json"),
    )
    client = make_client(url="http://gateway.internal:8080/can/")
    result = await client.poll(PlanKey.IDS, ["p1"], 5.0)
    assert result.reading == SUCCESS_READING


async def test_empty_plan_list_is_sent_as_is(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        method="POST",
        match_json={"planIdList": []},
        json={
            "success": False,
            "code": "400",
            "errorMsg": "planIdList and planNameList are both empty",
            "traceId": "t-empty",
            "data": None,
        },
    )
    result = await client.poll(PlanKey.IDS, [], 5.0)
    assert_failed(result, FailureReason.API_ERROR)
    assert result.error is not None
    assert result.error.trace_id == "t-empty"


async def test_target_zone_is_used(make_client: ClientFactory, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("success.json"))
    result = await make_client(timezone="UTC").poll(PlanKey.IDS, PLANS, 5.0)
    assert result.reading is not None
    assert result.reading.latest_data_time == datetime(2024, 8, 23, 0, 0, tzinfo=UTC)


async def test_null_times(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("null_times.json"))
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert result.error is None
    assert result.reading is not None
    assert result.reading.has_not_ready is True
    assert result.reading.latest_data_time is None


# --- failures CAN reports inside HTTP 200 ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("plan_not_found.json", FailureReason.PLAN_NOT_FOUND),
        ("plan_not_found_zh.json", FailureReason.PLAN_NOT_FOUND),
        ("code_401.json", FailureReason.AUTH),
        ("code_403.json", FailureReason.AUTH),
        ("success_false.json", FailureReason.API_ERROR),
        ("code_500.json", FailureReason.API_ERROR),
        ("data_null_no_error.json", FailureReason.API_ERROR),
        ("has_not_ready_string.json", FailureReason.INVALID_RESPONSE),
        ("impossible_date.json", FailureReason.INVALID_RESPONSE),
        ("array_body.json", FailureReason.INVALID_RESPONSE),
    ],
)
async def test_api_level_failures(
    client: CanClient, httpx_mock: HTTPXMock, name: str, reason: FailureReason
) -> None:
    body = fixture_json(name)
    httpx_mock.add_response(url=ENDPOINT, method="POST", json=body)
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, reason)
    assert result.error is not None
    if isinstance(body, dict):
        assert result.error.trace_id == body["traceId"]
        assert result.error.error_msg == body.get("errorMsg")


async def test_documented_plan_missing_answer(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        method="POST",
        match_json={"planIdList": ["gone"]},
        match_headers=HEADERS,
        status_code=200,
        json=fixture_json("plan_not_found.json"),
    )
    result = await client.poll(PlanKey.IDS, ["gone"], 5.0)
    assert_failed(result, FailureReason.PLAN_NOT_FOUND)
    assert result.error is not None
    assert result.error.describe() == (
        "CAN says a plan does not exist errorMsg='Acceleration plan does not exist' "
        "traceId=e78bba97f56f45d3a95d928de2cc4473.144.17193886412950007"
    )


# --- HTTP status codes ---------------------------------------------------------------------------

ERROR_BODY = {
    "success": False,
    "code": "500",
    "errorMsg": "gateway says no",
    "traceId": "trace-http-1",
    "data": None,
}


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_status(client: CanClient, httpx_mock: HTTPXMock, status: int) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        method="POST",
        match_headers=HEADERS,
        status_code=status,
        json={"errorMsg": "invalid auth-value", "traceId": "trace-auth"},
    )
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.AUTH)
    assert result.error is not None
    assert result.error.message == f"HTTP {status}"
    assert result.error.error_msg == "invalid auth-value"
    assert result.error.trace_id == "trace-auth"


@pytest.mark.parametrize(
    ("status", "tries"),
    [
        (500, MAX_ATTEMPTS),
        (502, MAX_ATTEMPTS),
        (503, MAX_ATTEMPTS),
        (408, MAX_ATTEMPTS),
        (404, 1),
        (400, 1),
        (429, 1),
    ],
)
async def test_error_status(
    client: CanClient, httpx_mock: HTTPXMock, status: int, tries: int
) -> None:
    httpx_mock.add_response(
        url=ENDPOINT, method="POST", status_code=status, json=ERROR_BODY, is_reusable=True
    )
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.HTTP_STATUS)
    # 5xx and 408 are retried within the timeout; other 4xx never are.
    assert len(httpx_mock.get_requests()) == tries == client.requests_sent
    assert result.error is not None
    assert result.error.error_msg == "gateway says no"
    assert result.error.trace_id == "trace-http-1"
    assert result.error.describe() == (
        f"HTTP {status} errorMsg='gateway says no' traceId=trace-http-1"
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html><body>502 Bad Gateway</body></html>", id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(b'["not", "an", "object"]', id="array"),
        pytest.param(b'{"errorMsg": "cut off', id="truncated"),
    ],
)
async def test_error_status_without_json_details(
    client: CanClient, httpx_mock: HTTPXMock, body: bytes
) -> None:
    httpx_mock.add_response(url=ENDPOINT, status_code=502, content=body, is_reusable=True)
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.HTTP_STATUS)
    assert result.error is not None
    assert result.error.error_msg is None
    assert result.error.trace_id is None
    assert result.error.describe() == "HTTP 502"


async def test_redirect_is_not_followed(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=ENDPOINT, status_code=302, headers={"location": "https://sso.example.com/login"}
    )
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.HTTP_STATUS)
    assert len(httpx_mock.get_requests()) == 1


# --- transport failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exception",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.PoolTimeout("no free connection"),
    ],
    ids=type,
)
async def test_httpx_timeouts(
    client: CanClient, httpx_mock: HTTPXMock, exception: httpx.TimeoutException
) -> None:
    httpx_mock.add_exception(exception, url=ENDPOINT, method="POST")
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.TIMEOUT)
    assert result.error is not None
    assert result.error.describe() == f"{type(exception).__name__}: {exception}"


async def test_deadline_bounds_a_slow_answer(client: CanClient, httpx_mock: HTTPXMock) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=fixture_json("success.json"))

    httpx_mock.add_callback(slow, url=ENDPOINT, method="POST")
    result = await client.poll(PlanKey.IDS, PLANS, 0.02)
    assert_failed(result, FailureReason.TIMEOUT)
    assert result.error is not None
    assert result.error.message == "no answer within 0.02s"
    assert 0.015 <= result.duration_seconds < 2


async def test_deadline_bounds_a_trickling_body(client: CanClient, httpx_mock: HTTPXMock) -> None:
    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'{"success": true, '
            await asyncio.sleep(5)
            yield b'"code": "200"}'

    httpx_mock.add_response(url=ENDPOINT, stream=Trickle())
    result = await client.poll(PlanKey.IDS, PLANS, 0.02)
    assert_failed(result, FailureReason.TIMEOUT)


async def test_poll_timeout_sets_the_http_timeouts(
    make_client: ClientFactory, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("success.json"))
    client = make_client(timeout="10s")
    await client.poll(PlanKey.IDS, PLANS, 30.0)
    request = httpx_mock.get_request()
    assert request is not None
    assert request.extensions["timeout"] == {
        "connect": 30.0,
        "read": 30.0,
        "write": 30.0,
        "pool": 30.0,
    }


@pytest.mark.parametrize(
    ("exception", "name"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "ConnectError"),
        (httpx.ReadError("connection reset by peer"), "ReadError"),
        (httpx.RemoteProtocolError("server disconnected"), "RemoteProtocolError"),
        (httpx.ProxyError("proxy said no"), "ProxyError"),
    ],
)
async def test_connection_failures(
    client: CanClient, httpx_mock: HTTPXMock, exception: httpx.TransportError, name: str
) -> None:
    httpx_mock.add_exception(exception, url=ENDPOINT, is_reusable=True)
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.CONNECTION)
    assert result.error is not None
    assert result.error.describe() == f"{name}: {exception}"
    assert len(httpx_mock.get_requests()) == MAX_ATTEMPTS


async def test_exception_without_a_message(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError(""), url=ENDPOINT, is_reusable=True)
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.CONNECTION)
    assert result.error is not None
    assert result.error.describe() == "ConnectError"


# --- bodies that are not CAN's answer ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<!doctype html><html><body>Login</body></html>", id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"data": {"hasNotReady": fal', id="truncated"),
        pytest.param(b"\xff\xfe\x00garbage", id="binary"),
    ],
)
async def test_invalid_body(client: CanClient, httpx_mock: HTTPXMock, body: bytes) -> None:
    httpx_mock.add_response(url=ENDPOINT, content=body, headers={"content-type": "text/html"})
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.INVALID_RESPONSE)


async def test_body_over_the_limit_by_content_length(
    client: CanClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        content=b"{}",
        headers={"content-length": str(MAX_RESPONSE_BYTES + 1)},
    )
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.INVALID_RESPONSE)
    assert result.error is not None
    assert result.error.message == f"response of {MAX_RESPONSE_BYTES + 1} bytes is over the limit"


async def test_large_real_body_over_the_limit(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=ENDPOINT, content=b" " * (MAX_RESPONSE_BYTES + 1))
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.INVALID_RESPONSE)


async def test_streamed_body_over_the_limit(client: CanClient, httpx_mock: HTTPXMock) -> None:
    chunk = b" " * 65536
    chunks = [chunk] * (MAX_RESPONSE_BYTES // len(chunk)) + [b" "]
    httpx_mock.add_response(url=ENDPOINT, stream=IteratorStream(chunks))
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.INVALID_RESPONSE)
    assert result.error is not None
    assert result.error.message == f"response is over the limit of {MAX_RESPONSE_BYTES} bytes"


async def test_body_at_the_limit_is_read(client: CanClient, httpx_mock: HTTPXMock) -> None:
    body = json.dumps(fixture_json("success.json")).encode()
    padded = body + b" " * (MAX_RESPONSE_BYTES - len(body))
    assert len(padded) == MAX_RESPONSE_BYTES
    httpx_mock.add_response(url=ENDPOINT, stream=IteratorStream([padded[:1000], padded[1000:]]))
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert result.reading == SUCCESS_READING


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"content-encoding": "gzip"}, "gzip"),
        ({"content-encoding": "deflate"}, "deflate"),
        ({"content-encoding": "br"}, "br"),
        ({"content-encoding": "zstd"}, "zstd"),
        ({"content-encoding": "gzip, gzip"}, "gzip, gzip"),
        ([("content-encoding", "identity"), ("content-encoding", "GZIP")], "identity, GZIP"),
        ({"content-encoding": "x-" + "y" * 200}, "x-" + "y" * 62 + "…"),
    ],
)
async def test_a_content_coding_other_than_identity_is_refused_unread(
    client: CanClient, httpx_mock: HTTPXMock, headers: Any, named: str
) -> None:
    class Unreadable(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            raise AssertionError("the body was read")
            yield b""  # pragma: no cover

    httpx_mock.add_response(url=ENDPOINT, headers=headers, stream=Unreadable())
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.INVALID_RESPONSE)
    assert result.error is not None
    assert result.error.message == (
        f"CAN answered with Content-Encoding {named!r}; the exporter asks for identity"
    )
    assert client.requests_sent == 1  # not retried


@pytest.mark.parametrize("coding", ["identity", "Identity", ""])
async def test_identity_is_read(client: CanClient, httpx_mock: HTTPXMock, coding: str) -> None:
    httpx_mock.add_response(
        url=ENDPOINT, json=fixture_json("success.json"), headers={"content-encoding": coding}
    )
    assert (await client.poll(PlanKey.IDS, PLANS, 5.0)).reading == SUCCESS_READING


async def test_gzip_bytes_are_never_decoded(client: CanClient, httpx_mock: HTTPXMock) -> None:
    """No coding announced: the bytes are what they are, and gzip bytes are not JSON."""
    body = gzip.compress(json.dumps(fixture_json("success.json")).encode())
    httpx_mock.add_response(url=ENDPOINT, content=body)
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.INVALID_RESPONSE)
    assert result.error is not None
    assert result.error.message == "response is not JSON"


@pytest.mark.parametrize(("status", "reason"), [(503, "http_status"), (401, "auth")])
async def test_an_error_status_with_a_coding_keeps_its_reason(
    client: CanClient, httpx_mock: HTTPXMock, status: int, reason: str
) -> None:
    body = gzip.compress(json.dumps(ERROR_BODY).encode())
    httpx_mock.add_response(
        url=ENDPOINT,
        status_code=status,
        content=body,
        headers={"content-encoding": "gzip"},
        is_reusable=True,  # a 503 is retried
    )
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason(reason))
    assert result.error is not None
    assert result.error.message == f"HTTP {status}"
    assert result.error.error_msg is None  # its body was not decoded for the details


# --- secrets -------------------------------------------------------------------------------------


async def test_repr_hides_the_auth_value(client: CanClient) -> None:
    assert repr(client) == f"CanClient(target='prod', url='{BASE_URL}')"
    assert SECRET not in repr(client)
    assert SECRET not in repr(client.target)
    assert SECRET not in str(client.target)


async def test_describe_hides_an_echoed_auth_value(
    client: CanClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=ENDPOINT,
        status_code=401,
        json={"errorMsg": f"unknown apikey {SECRET}", "traceId": "trace-echo"},
    )
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert result.error is not None
    assert result.error.reason is FailureReason.AUTH
    assert SECRET not in result.error.describe()


# --- concurrency and lifecycle --------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "polls"), [(1, 4), (2, 6), (7, 12)])
async def test_max_concurrency_is_respected(
    make_client: ClientFactory, httpx_mock: HTTPXMock, limit: int, polls: int
) -> None:
    in_flight = 0
    peak = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.005)
        finally:
            in_flight -= 1
        return httpx.Response(200, json=fixture_json("success.json"))

    httpx_mock.add_callback(answer, url=ENDPOINT, method="POST", is_reusable=True)
    client = make_client(max_concurrency=limit)
    results = await asyncio.gather(
        *(client.poll(PlanKey.IDS, [f"p{i}"], 5.0) for i in range(polls))
    )
    assert peak == limit
    assert all(result.reading == SUCCESS_READING for result in results)
    bodies = sorted(json.loads(r.content)["planIdList"][0] for r in httpx_mock.get_requests())
    assert bodies == sorted(f"p{i}" for i in range(polls))


async def test_duration_excludes_the_wait_for_a_slot(
    make_client: ClientFactory, httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one slot, the second poll's duration starts when it gets the slot."""
    now = 0.0

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return now

    monkeypatch.setattr("exporter.can.client.time", FakeTime)
    release = asyncio.Event()

    async def first(request: httpx.Request) -> httpx.Response:
        nonlocal now
        now += 100.0
        await release.wait()
        return httpx.Response(200, json=fixture_json("success.json"))

    async def second(request: httpx.Request) -> httpx.Response:
        nonlocal now
        now += 1.0
        return httpx.Response(200, json=fixture_json("success.json"))

    httpx_mock.add_callback(first, match_json={"planIdList": ["first"]})
    httpx_mock.add_callback(second, match_json={"planIdList": ["second"]})
    client = make_client(max_concurrency=1)
    task_first = asyncio.create_task(client.poll(PlanKey.IDS, ["first"], 5.0))
    await asyncio.sleep(0)
    task_second = asyncio.create_task(client.poll(PlanKey.IDS, ["second"], 5.0))
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    first_result, second_result = await asyncio.gather(task_first, task_second)
    assert first_result.duration_seconds == 100.0
    assert second_result.duration_seconds == 1.0


@pytest.mark.parametrize("limit", [1, 5, 12])
async def test_aclose_closes_every_connection_pool(
    make_client: ClientFactory, httpx_mock: HTTPXMock, limit: int
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("success.json"))
    client = make_client(max_concurrency=limit)
    assert (await client.poll(PlanKey.IDS, PLANS, 5.0)).reading == SUCCESS_READING
    await client.aclose()
    # Requests rotate over the pools; none may send once closed.
    for _ in range(4):
        with pytest.raises(RuntimeError, match="closed"):
            await client.poll(PlanKey.IDS, PLANS, 5.0)
    await client.aclose()  # closing twice is harmless


async def test_poll_after_failure_still_works(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=ENDPOINT, status_code=404)
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("success.json"))
    first = await client.poll(PlanKey.IDS, PLANS, 5.0)
    second = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(first, FailureReason.HTTP_STATUS)
    assert second.reading == SUCCESS_READING


# --- retries and the rate limit -------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param({"status_code": 503, "json": ERROR_BODY}, id="503"),
        pytest.param({"status_code": 500, "content": b"<html>oops</html>"}, id="500-html"),
    ],
)
async def test_5xx_then_success_is_retried(
    client: CanClient, httpx_mock: HTTPXMock, failure: dict[str, Any]
) -> None:
    httpx_mock.add_response(url=ENDPOINT, **failure)
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("success.json"))
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert result.reading == SUCCESS_READING
    assert client.requests_sent == 2


async def test_connection_error_then_success_is_retried(
    client: CanClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=ENDPOINT)
    httpx_mock.add_exception(httpx.ReadError("reset"), url=ENDPOINT)
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("success.json"))
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert result.reading == SUCCESS_READING
    assert client.requests_sent == 3


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"status_code": 401}, id="401"),
        pytest.param(
            {
                "json": {
                    "success": True,
                    "code": "200",
                    "data": None,
                    "errorMsg": "Acceleration plan does not exist",
                }
            },
            id="plan-missing",
        ),
        pytest.param({"content": b"not json"}, id="invalid"),
    ],
)
async def test_4xx_api_and_invalid_answers_are_not_retried(
    client: CanClient, httpx_mock: HTTPXMock, answer: dict[str, Any]
) -> None:
    httpx_mock.add_response(url=ENDPOINT, is_reusable=True, **answer)
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert result.error is not None
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        pytest.param({"status_code": 503, "json": ERROR_BODY}, "http_status", id="503"),
        pytest.param({"exception": httpx.ConnectError("refused")}, "connection", id="refused"),
    ],
)
async def test_a_poll_without_retry_tries_once(
    client: CanClient, httpx_mock: HTTPXMock, failure: dict[str, Any], reason: str
) -> None:
    """A circuit's probe: one request, whatever the failure."""
    if "exception" in failure:
        httpx_mock.add_exception(failure["exception"], url=ENDPOINT, is_reusable=True)
    else:
        httpx_mock.add_response(url=ENDPOINT, is_reusable=True, **failure)
    result = await client.poll(PlanKey.IDS, PLANS, 5.0, retry=False)
    assert_failed(result, FailureReason(reason))
    assert len(httpx_mock.get_requests()) == 1 == client.requests_sent
    # The same failure, retried as usual.
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason(reason))
    assert client.requests_sent == 1 + MAX_ATTEMPTS


async def test_a_poll_without_retry_still_reads_an_answer(
    client: CanClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("success.json"))
    result = await client.poll(PlanKey.IDS, PLANS, 5.0, retry=False)
    assert result.reading == SUCCESS_READING


async def test_a_timeout_is_not_retried(client: CanClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=ENDPOINT, is_reusable=True)
    result = await client.poll(PlanKey.IDS, PLANS, 5.0)
    assert_failed(result, FailureReason.TIMEOUT)
    assert len(httpx_mock.get_requests()) == 1


async def test_retries_stay_within_the_poll_timeout(
    client: CanClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=ENDPOINT, status_code=503, is_reusable=True)
    # The pauses between tries (about 0.1 s, then 0.2 s) do not fit three tries into 0.25 s.
    result = await client.poll(PlanKey.IDS, PLANS, 0.25)
    assert_failed(result, FailureReason.HTTP_STATUS)
    assert result.duration_seconds < 0.25
    assert 1 <= len(httpx_mock.get_requests()) < MAX_ATTEMPTS


async def test_rate_limit_spaces_requests(
    make_client: ClientFactory, httpx_mock: HTTPXMock
) -> None:
    client = make_client(rate_limit=10)
    httpx_mock.add_response(url=ENDPOINT, json=fixture_json("success.json"), is_reusable=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    # A burst of 10 goes at once; the next 5 wait a tenth of a second each.
    results = await asyncio.gather(*(client.poll(PlanKey.IDS, PLANS, 5.0) for _ in range(15)))
    assert all(result.reading == SUCCESS_READING for result in results)
    assert loop.time() - started >= 0.45
    assert client.requests_sent == 15
