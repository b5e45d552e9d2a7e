"""Parsing recorded latestTime responses into a Reading or a CanError, without I/O."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from exporter.can.models import (
    CanError,
    FailureReason,
    Reading,
    parse_can_time,
    parse_latest_time,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "can"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


def trace_of(name: str) -> str | None:
    payload = json.loads(fixture(name))
    return payload.get("traceId") if isinstance(payload, dict) else None


@dataclass(frozen=True)
class Failure:
    reason: FailureReason
    error_msg: str | None = None


# Every file in tests/fixtures/can/ and what it must parse to (zone: Asia/Shanghai).
EXPECTED: dict[str, Reading | Failure] = {
    "success.json": Reading(
        has_not_ready=False,
        latest_data_time=utc(2024, 8, 22, 16, 0, 0),
        latest_refresh_time=utc(2024, 9, 1, 10, 9, 16),
        trace_id="a70c0ebdc9d04ce585bc2a3c85bfd83a.773.17252483988090161",
    ),
    "null_times.json": Reading(
        has_not_ready=True,
        latest_data_time=None,
        latest_refresh_time=None,
        trace_id="5f0e3a1b9c7d4e2f8a6b1c0d9e8f7a6b.201.17252483988090177",
    ),
    "missing_times.json": Reading(
        has_not_ready=True,
        latest_data_time=None,
        latest_refresh_time=None,
        trace_id="6a1f4b2c0d8e5f3a9b7c2d1e0f9a8b7c.202.17252483988090178",
    ),
    "date_only.json": Reading(
        has_not_ready=False,
        latest_data_time=utc(2024, 8, 22, 16, 0, 0),  # start of the day in Shanghai
        latest_refresh_time=utc(2024, 9, 1, 10, 9, 16),
        trace_id="7b2a5c3d1e9f6a4b0c8d3e2f1a0b9c8d.203.17252483988090179",
    ),
    "plan_not_found.json": Failure(
        FailureReason.PLAN_NOT_FOUND, "Acceleration plan does not exist"
    ),
    "plan_not_found_zh.json": Failure(FailureReason.PLAN_NOT_FOUND, "加速方案不存在"),
    "code_401.json": Failure(FailureReason.AUTH, "authentication failed"),
    "code_403.json": Failure(FailureReason.AUTH, "no permission for tenant 10001"),
    "success_false.json": Failure(FailureReason.API_ERROR, "query engine busy, retry later"),
    "code_500.json": Failure(FailureReason.API_ERROR, "系统异常"),
    "code_500_success_true.json": Failure(FailureReason.API_ERROR),
    "code_missing.json": Failure(FailureReason.API_ERROR),
    "error_msg_data_null.json": Failure(FailureReason.API_ERROR, "Tenant does not exist"),
    "data_null_no_error.json": Failure(FailureReason.API_ERROR),
    "missing_data.json": Failure(FailureReason.INVALID_RESPONSE),
    "data_list.json": Failure(FailureReason.INVALID_RESPONSE),
    "data_string.json": Failure(FailureReason.INVALID_RESPONSE),
    "has_not_ready_string.json": Failure(FailureReason.INVALID_RESPONSE),
    "has_not_ready_missing.json": Failure(FailureReason.INVALID_RESPONSE),
    "latest_date_time_number.json": Failure(FailureReason.INVALID_RESPONSE),
    "latest_refresh_time_epoch_millis.json": Failure(FailureReason.INVALID_RESPONSE),
    "impossible_date.json": Failure(FailureReason.INVALID_RESPONSE),
    "zero_date.json": Failure(FailureReason.INVALID_RESPONSE),
    "unparseable_time.json": Failure(FailureReason.INVALID_RESPONSE),
    "array_body.json": Failure(FailureReason.INVALID_RESPONSE),
}


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize(
    "name", [n for n, e in EXPECTED.items() if isinstance(e, Reading)], ids=str
)
def test_fixture_parses_to_reading(name: str) -> None:
    reading = parse_latest_time(fixture(name), SHANGHAI)
    assert reading == EXPECTED[name]
    for moment in (reading.latest_data_time, reading.latest_refresh_time):
        assert moment is None or moment.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize(
    "name", [n for n, e in EXPECTED.items() if isinstance(e, Failure)], ids=str
)
def test_fixture_parses_to_error(name: str) -> None:
    expected = EXPECTED[name]
    assert isinstance(expected, Failure)
    with pytest.raises(CanError) as caught:
        parse_latest_time(fixture(name), SHANGHAI)
    error = caught.value
    assert error.reason is expected.reason
    assert error.error_msg == expected.error_msg
    assert error.trace_id == trace_of(name)
    assert error.message
    assert "\n" not in error.describe()


def test_body_may_be_text_or_bytes() -> None:
    body = fixture("success.json")
    assert parse_latest_time(body.decode(), SHANGHAI) == parse_latest_time(body, SHANGHAI)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<html><body>502 Bad Gateway</body></html>", id="html"),
        pytest.param(fixture("success.json")[:-20], id="truncated"),
        pytest.param(b"\x80\x81 not utf-8", id="not utf-8"),
        pytest.param(b"null", id="null"),
        pytest.param(b'"ok"', id="string"),
        pytest.param(b"200", id="number"),
        pytest.param(b"[]", id="empty array"),
        pytest.param(fixture("array_body.json"), id="array"),
    ],
)
def test_bodies_that_are_not_an_object(body: bytes) -> None:
    with pytest.raises(CanError) as caught:
        parse_latest_time(body, SHANGHAI)
    assert caught.value.reason is FailureReason.INVALID_RESPONSE
    assert caught.value.error_msg is None
    assert caught.value.trace_id is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("has_not_ready_string.json", 'data.hasNotReady is "yes", not a boolean'),
        ("has_not_ready_missing.json", "data.hasNotReady is null, not a boolean"),
        ("latest_date_time_number.json", "timestamp 12 is not a string"),
        ("impossible_date.json", 'timestamp "2024-13-45 99:00:00" is not a real date and time'),
        ("zero_date.json", 'timestamp "0000-00-00 00:00:00" is not a real date and time'),
        ("unparseable_time.json", 'timestamp "yesterday" is not in the form YYYY-MM-DD HH:MM:SS'),
        ("data_list.json", "data is not an object"),
        ("success_false.json", "CAN answered success=false"),
        ("code_500_success_true.json", 'CAN answered code "500"'),
        ("code_missing.json", "CAN answered code null"),
        ("data_null_no_error.json", "CAN answered without data"),
        ("code_401.json", "CAN refused the credentials (code 401)"),
    ],
)
def test_error_messages_name_the_problem(name: str, fragment: str) -> None:
    with pytest.raises(CanError) as caught:
        parse_latest_time(fixture(name), SHANGHAI)
    assert caught.value.message == fragment
    assert str(caught.value) == fragment


def test_describe_includes_error_msg_and_trace_id() -> None:
    with pytest.raises(CanError) as caught:
        parse_latest_time(fixture("plan_not_found.json"), SHANGHAI)
    assert caught.value.describe() == (
        "CAN says a plan does not exist errorMsg='Acceleration plan does not exist' "
        "traceId=e78bba97f56f45d3a95d928de2cc4473.144.17193886412950007"
    )


def test_describe_leaves_out_what_is_unknown() -> None:
    error = CanError(FailureReason.TIMEOUT, "no answer within 5s")
    assert error.describe() == "no answer within 5s"
    assert error.reason is FailureReason.TIMEOUT
    assert error.error_msg is None
    assert error.trace_id is None


def test_plan_missing_wins_over_other_signals() -> None:
    body = {
        "success": False,
        "code": "401",
        "errorMsg": "plan abc not found",
        "traceId": "t-1",
        "data": None,
    }
    with pytest.raises(CanError) as caught:
        parse_latest_time(json.dumps(body), SHANGHAI)
    assert caught.value.reason is FailureReason.PLAN_NOT_FOUND


def test_long_error_fields_are_capped() -> None:
    body = {
        "success": False,
        "code": "500",
        "errorMsg": "x" * 5000,
        "traceId": "t" * 5000,
        "data": None,
    }
    with pytest.raises(CanError) as caught:
        parse_latest_time(json.dumps(body), SHANGHAI)
    assert caught.value.error_msg == "x" * 512
    assert caught.value.trace_id == "t" * 512


def test_malformed_value_is_echoed_briefly() -> None:
    body = json.loads(fixture("unparseable_time.json"))
    body["data"]["latestDateTime"] = "y" * 1000
    with pytest.raises(CanError) as caught:
        parse_latest_time(json.dumps(body), SHANGHAI)
    assert caught.value.reason is FailureReason.INVALID_RESPONSE
    assert len(caught.value.message) < 200


def test_error_payload_needs_no_trace_id() -> None:
    body = {"success": True, "code": "200", "errorMsg": "Acceleration plan does not exist"}
    with pytest.raises(CanError) as caught:
        parse_latest_time(json.dumps(body), SHANGHAI)
    assert caught.value.reason is FailureReason.PLAN_NOT_FOUND
    assert caught.value.trace_id is None
    assert caught.value.describe() == (
        "CAN says a plan does not exist errorMsg='Acceleration plan does not exist'"
    )


# --- time zones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2024-08-23 00:00:00", SHANGHAI, utc(2024, 8, 22, 16, 0, 0)),
        ("2024-08-23 00:00:00", UTC, utc(2024, 8, 23, 0, 0, 0)),
        ("2024-08-23 00:00:00", ZoneInfo("UTC"), utc(2024, 8, 23, 0, 0, 0)),
        ("2024-08-23", SHANGHAI, utc(2024, 8, 22, 16, 0, 0)),
        ("2024-08-23", UTC, utc(2024, 8, 23, 0, 0, 0)),
        ("2024-08-23T00:00:00", SHANGHAI, utc(2024, 8, 22, 16, 0, 0)),
        ("2024-09-01 18:09:16.123", SHANGHAI, utc(2024, 9, 1, 10, 9, 16)),
        (" 2024-09-01 18:09:16 ", SHANGHAI, utc(2024, 9, 1, 10, 9, 16)),
        ("2024-02-29 12:00:00", ZoneInfo("Asia/Kolkata"), utc(2024, 2, 29, 6, 30, 0)),
        # America/New_York, spring forward on 2024-03-10 at 02:00 EST -> 03:00 EDT
        ("2024-03-10 01:30:00", NEW_YORK, utc(2024, 3, 10, 6, 30, 0)),
        ("2024-03-10 03:30:00", NEW_YORK, utc(2024, 3, 10, 7, 30, 0)),
        ("2024-03-10", NEW_YORK, utc(2024, 3, 10, 5, 0, 0)),
        ("2024-03-11", NEW_YORK, utc(2024, 3, 11, 4, 0, 0)),
        # a time in the gap resolves with fold=0: the offset before the change (EST)
        ("2024-03-10 02:30:00", NEW_YORK, utc(2024, 3, 10, 7, 30, 0)),
        # fall back on 2024-11-03 at 02:00 EDT -> 01:00 EST
        ("2024-11-03 00:30:00", NEW_YORK, utc(2024, 11, 3, 4, 30, 0)),
        ("2024-11-03 03:00:00", NEW_YORK, utc(2024, 11, 3, 8, 0, 0)),
        # an ambiguous time resolves with fold=0: the first occurrence (EDT)
        ("2024-11-03 01:30:00", NEW_YORK, utc(2024, 11, 3, 5, 30, 0)),
    ],
)
def test_parse_can_time(text: str, zone: tzinfo, expected: datetime) -> None:
    parsed = parse_can_time(text, zone)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


def test_fixture_in_utc_zone() -> None:
    reading = parse_latest_time(fixture("success.json"), UTC)
    assert reading.latest_data_time == utc(2024, 8, 23, 0, 0, 0)
    assert reading.latest_refresh_time == utc(2024, 9, 1, 18, 9, 16)


def test_fixture_in_new_york() -> None:
    reading = parse_latest_time(fixture("success.json"), NEW_YORK)
    assert reading.latest_data_time == utc(2024, 8, 23, 4, 0, 0)  # EDT, UTC-4
    assert reading.latest_refresh_time == utc(2024, 9, 1, 22, 9, 16)


def test_parse_can_time_none() -> None:
    assert parse_can_time(None, SHANGHAI) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (12, "timestamp 12 is not a string"),
        (1725185356000, "timestamp 1725185356000 is not a string"),
        (True, "timestamp true is not a string"),
        (["2024-08-23"], 'timestamp ["2024-08-23"] is not a string'),
        ("", 'timestamp "" is not in the form YYYY-MM-DD HH:MM:SS'),
        ("2024/08/23 00:00:00", "is not in the form YYYY-MM-DD HH:MM:SS"),
        ("2024-08-23 00:00", "is not in the form YYYY-MM-DD HH:MM:SS"),
        ("2024-8-23", "is not in the form YYYY-MM-DD HH:MM:SS"),
        ("23-08-2024", "is not in the form YYYY-MM-DD HH:MM:SS"),
        ("2024-08-23 00:00:00 extra", "is not in the form YYYY-MM-DD HH:MM:SS"),
        ("2024-13-45 99:00:00", "is not a real date and time"),
        ("0000-00-00 00:00:00", "is not a real date and time"),
        ("2023-02-29 00:00:00", "is not a real date and time"),
        ("2024-08-23 24:00:00", "is not a real date and time"),
        ("2024-08-23 23:59:60", "is not a real date and time"),
        # valid dates that move out of datetime's range once converted to UTC
        ("0001-01-01 00:00:00", "is out of range"),
        ("0001-01-01", "is out of range"),
    ],
)
def test_parse_can_time_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_can_time(value, SHANGHAI)


def test_parse_can_time_rejects_overflow_past_year_9999() -> None:
    with pytest.raises(ValueError, match="is out of range"):
        parse_can_time("9999-12-31 23:59:59", NEW_YORK)


def test_out_of_range_time_in_a_response_is_invalid() -> None:
    body = json.loads(fixture("success.json"))
    body["data"]["latestDateTime"] = "0001-01-01 00:00:00"
    with pytest.raises(CanError) as caught:
        parse_latest_time(json.dumps(body), SHANGHAI)
    assert caught.value.reason is FailureReason.INVALID_RESPONSE
    assert caught.value.trace_id == body["traceId"]


# --- zone=None: this machine's local zone ---------------------------------------------------


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set the process's local zone (TZ + tzset); the original comes back afterwards."""

    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("zone", "text", "expected"),
    [
        ("Asia/Tokyo", "2024-08-23 00:00:00", utc(2024, 8, 22, 15, 0, 0)),
        ("Asia/Shanghai", "2024-08-23", utc(2024, 8, 22, 16, 0, 0)),
        ("UTC", "2024-08-23 00:00:00", utc(2024, 8, 23, 0, 0, 0)),
        ("America/New_York", "2024-03-10 01:30:00", utc(2024, 3, 10, 6, 30, 0)),
        ("America/New_York", "2024-03-10 03:30:00", utc(2024, 3, 10, 7, 30, 0)),
        ("America/New_York", "2024-11-03 03:00:00", utc(2024, 11, 3, 8, 0, 0)),
    ],
)
def test_zone_none_uses_local_time(
    local_zone: Callable[[str], None], zone: str, text: str, expected: datetime
) -> None:
    local_zone(zone)
    parsed = parse_can_time(text, None)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("zone", "text"),
    [
        pytest.param("America/New_York", "2024-07-01 12:00:00", id="NY summer"),
        pytest.param("America/New_York", "2024-01-15 12:00:00", id="NY winter"),
        pytest.param("America/New_York", "2024-11-03 01:30:00", id="NY fold"),
        pytest.param("Europe/Berlin", "2024-10-27 02:30:00", id="Berlin fold"),
        pytest.param("America/New_York", "2024-03-10 02:30:00", id="NY gap"),
        pytest.param("Europe/Berlin", "2024-03-31 02:30:00", id="Berlin gap"),
    ],
)
def test_zone_none_agrees_with_the_same_explicit_zone(
    local_zone: Callable[[str], None], zone: str, text: str
) -> None:
    local_zone(zone)
    assert parse_can_time(text, None) == parse_can_time(text, ZoneInfo(zone))


def test_zone_none_in_a_response(local_zone: Callable[[str], None]) -> None:
    local_zone("Asia/Shanghai")
    assert parse_latest_time(fixture("success.json"), None) == EXPECTED["success.json"]
    local_zone("UTC")
    reading = parse_latest_time(fixture("success.json"), None)
    assert reading.latest_data_time == utc(2024, 8, 23, 0, 0, 0)


def test_failure_reason_values_are_the_label_values() -> None:
    assert [reason.value for reason in FailureReason] == [
        "plan_not_found",
        "auth",
        "api_error",
        "http_status",
        "timeout",
        "connection",
        "invalid_response",
    ]
