"""Property tests of the pure latestTime parser: anything in, a Reading or a CanError out."""

from __future__ import annotations

import json
import string
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.can.models import CanError, FailureReason, Reading, parse_latest_time

# Bounded so the whole directory stays well under 20 s.
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ZONES: list[tzinfo | None] = [
    None,  # this machine's zone
    UTC,
    ZoneInfo("Asia/Shanghai"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Europe/London"),
    ZoneInfo("Australia/Lord_Howe"),  # a 30-minute DST shift
    ZoneInfo("Pacific/Chatham"),  # +12:45 / +13:45
    ZoneInfo("America/Sao_Paulo"),
    ZoneInfo("Asia/Kolkata"),
]
zones = st.sampled_from(ZONES)
# CAN's times are naive wall-clock times; far from year 1 and 9999 so every zone can convert.
EARLIEST = datetime(1900, 1, 2)  # noqa: DTZ001
LATEST = datetime(2200, 12, 30)  # noqa: DTZ001

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def date_like(draw: st.DrawFn) -> str:
    """Strings shaped like CAN's times, including impossible dates and foreign digits."""
    digits = st.text("0123456789", min_size=1, max_size=5)
    separator = st.sampled_from(["-", "/", ".", ""])
    time_separator = st.sampled_from([" ", "T", "  ", "t", ""])
    year, month, day = draw(digits), draw(digits), draw(digits)
    text = f"{year}{draw(separator)}{month}{draw(separator)}{day}"
    if draw(st.booleans()):
        hour, minute, second = draw(digits), draw(digits), draw(digits)
        text += f"{draw(time_separator)}{hour}:{minute}:{second}"
        if draw(st.booleans()):
            text += "." + draw(digits)
    return draw(
        st.sampled_from(
            [text, f" {text} ", text.replace("0", "\u0660"), text + "Z", text + "+08:00"]
        )
    )


time_values = (
    st.none()
    | date_like()
    | st.sampled_from(
        [
            "2024-08-23 00:00:00",
            "2024-08-23",
            "2024-13-45 99:00:00",
            "0000-00-00 00:00:00",
            "2024/08/23 10:00",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2024-02-30 00:00:00",
            "2023-03-26 02:30:00",  # Europe/London DST gap
        ]
    )
    | json_values
)


@st.composite
def near_valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Dicts with CAN's keys, each either absent, right, or of a random type."""

    def field(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return right | json_values

    data: dict[str, Any] = {}
    for key, strategy in (
        ("hasNotReady", field(st.booleans())),
        ("latestDateTime", time_values),
        ("latestRefreshTime", time_values),
    ):
        if draw(st.integers(0, 4)):
            data[key] = draw(strategy)
    payload: dict[str, Any] = {}
    for key, strategy in (
        ("success", field(st.just(True))),
        ("code", field(st.sampled_from(["200", 200, "401", "403", "500", 401]))),
        ("errorMsg", field(st.none() | st.sampled_from(["Acceleration plan does not exist", ""]))),
        ("detailErrorMsg", json_values),
        ("traceId", field(st.text(max_size=40))),
        ("data", field(st.just(data)) | st.just(data)),
    ):
        if draw(st.integers(0, 5)):
            payload[key] = draw(strategy)
    return payload


def _parse_or_error(body: bytes | str, zone: tzinfo | None) -> Reading | CanError:
    try:
        reading = parse_latest_time(body, zone)
    except CanError as caught:
        error = caught
    else:
        for moment in (reading.latest_data_time, reading.latest_refresh_time):
            assert moment is None or moment.utcoffset() == timedelta(0)
        return reading
    assert isinstance(error.reason, FailureReason)
    assert "\n" not in error.describe()
    return error


@FAST
@given(body=st.binary(max_size=200), zone=zones)
@example(body=b"", zone=UTC)
@example(body=b"\xff\xfe{\x00", zone=UTC)
@example(body=b"[" * 100_000, zone=UTC)
@example(body=b"1" * 5000, zone=UTC)
def test_arbitrary_bytes(body: bytes, zone: tzinfo | None) -> None:
    _parse_or_error(body, zone)


@FAST
@given(value=json_values, zone=zones, as_text=st.booleans())
def test_arbitrary_json(value: Any, zone: tzinfo | None, as_text: bool) -> None:
    text = json.dumps(value)
    _parse_or_error(text if as_text else text.encode(), zone)


@FAST
@given(payload=near_valid_payloads(), zone=zones)
def test_near_valid_payloads(payload: dict[str, Any], zone: tzinfo | None) -> None:
    _parse_or_error(json.dumps(payload, ensure_ascii=False).encode(), zone)


def _unambiguous(naive: datetime, zone: tzinfo) -> bool:
    """Not in a DST gap (the wall time does not exist) or fold (it exists twice)."""
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        return False
    return first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive


@FAST
@given(
    data_time=st.datetimes(min_value=EARLIEST, max_value=LATEST),
    refresh_time=st.datetimes(min_value=EARLIEST, max_value=LATEST),
    zone=st.sampled_from([z for z in ZONES if z is not None]),
    has_not_ready=st.booleans(),
    code=st.sampled_from(["200", 200]),
)
def test_valid_payload_round_trips(
    data_time: datetime,
    refresh_time: datetime,
    zone: tzinfo,
    has_not_ready: bool,
    code: str | int,
) -> None:
    data_time = data_time.replace(microsecond=0)
    refresh_time = refresh_time.replace(microsecond=0)
    payload = {
        "data": {
            "hasNotReady": has_not_ready,
            "latestDateTime": data_time.strftime("%Y-%m-%d %H:%M:%S"),
            "latestRefreshTime": refresh_time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "success": True,
        "code": code,
        "errorMsg": None,
        "detailErrorMsg": None,
        "traceId": "a70c0ebdc9d04ce585bc2a3c85bfd83a.773.17252483988090161",
    }
    reading = parse_latest_time(json.dumps(payload).encode(), zone)
    assert reading.has_not_ready is has_not_ready
    assert reading.trace_id == payload["traceId"]
    for naive, parsed in (
        (data_time, reading.latest_data_time),
        (refresh_time, reading.latest_refresh_time),
    ):
        assert parsed is not None
        assert parsed.tzinfo is UTC
        if _unambiguous(naive, zone):
            assert parsed.astimezone(zone).replace(tzinfo=None) == naive
            assert parsed == naive.replace(tzinfo=zone)


@FAST
@given(
    day=st.dates(min_value=EARLIEST.date(), max_value=LATEST.date()),
    zone=st.sampled_from([z for z in ZONES if z is not None]),
)
def test_date_only_is_the_start_of_that_day(day: date, zone: tzinfo) -> None:
    def body(latest: str) -> str:
        data = {"hasNotReady": False, "latestDateTime": latest}
        return json.dumps({"success": True, "code": "200", "data": data})

    reading = parse_latest_time(body(day.isoformat()), zone)
    full = parse_latest_time(body(f"{day} 00:00:00"), zone)
    assert reading.latest_data_time == full.latest_data_time


# Shaped like an API key: long enough not to occur in our own messages by chance.
secrets = st.text(string.ascii_letters + string.digits + "-_.", min_size=16, max_size=40)
PLANTABLE = ("errorMsg", "success", "code", "traceId", "hasNotReady", "latestDateTime")


@FAST
@given(
    secret=secrets,
    where=st.lists(st.sampled_from(PLANTABLE), min_size=1, unique=True),
    prefix=st.text(max_size=30),
    status_code=st.sampled_from(["200", "500", 200]),
)
def test_a_planted_secret_is_masked_in_every_error_text(
    secret: str, where: list[str], prefix: str, status_code: str | int
) -> None:
    """What the client does with an error (redact) leaves no credential in its texts."""
    planted = f"{prefix}{secret}"
    payload: dict[str, Any] = {"success": True, "code": status_code, "data": {}}
    for key in where:
        if key in ("hasNotReady", "latestDateTime"):
            payload["data"][key] = planted
        else:
            payload[key] = planted
    try:
        parse_latest_time(json.dumps(payload, ensure_ascii=False), UTC)
    except CanError as error:
        error.redact([secret])
        for text in (error.describe(), str(error), error.message, error.error_msg, error.trace_id):
            assert text is None or secret not in text
    else:
        pytest.fail("a planted string in those fields cannot make a valid reading")


# --- regressions found by the properties above -------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"success": true, "data": ' + b"[" * 100_000 + b"}",
    ],
)
def test_deeply_nested_json_is_an_invalid_response(body: bytes) -> None:
    with pytest.raises(CanError) as caught:
        parse_latest_time(body, UTC)
    assert caught.value.reason is FailureReason.INVALID_RESPONSE


def _deepest_accepted(key: str) -> int:
    low, high = 1, 10_000
    while low < high:
        middle = (low + high + 1) // 2
        try:
            json.loads(_nested(key, middle))
        except RecursionError:
            high = middle - 1
        else:
            low = middle
    return low


def _nested(key: str, depth: int) -> bytes:
    return b'{"%s": ' % key.encode() + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("key", ["success", "code", "errorMsg", "traceId"])
def test_a_value_nested_just_below_the_decoder_limit_is_an_error_not_a_crash(key: str) -> None:
    # Echoing such a value into the error message recursed past the limit (RecursionError).
    deepest = _deepest_accepted(key)
    for depth in range(deepest - 40, deepest + 2):
        with pytest.raises(CanError):
            parse_latest_time(_nested(key, depth), UTC)


@pytest.mark.parametrize(
    "text",
    [
        "\uff12\uff10\uff12\uff14-08-23 00:00:00",  # fullwidth digits
        "\u0662\u0660\u0662\u0664-08-23",  # Arabic-Indic digits
    ],
)
def test_only_ascii_digits_make_a_time(text: str) -> None:
    payload = {
        "success": True,
        "code": "200",
        "data": {"hasNotReady": False, "latestDateTime": text},
    }
    with pytest.raises(CanError) as caught:
        parse_latest_time(json.dumps(payload), UTC)
    assert caught.value.reason is FailureReason.INVALID_RESPONSE


def test_a_trace_id_with_a_line_break_keeps_describe_on_one_line() -> None:
    payload = {"success": False, "code": "500", "traceId": "abc\ninjected line"}
    with pytest.raises(CanError) as caught:
        parse_latest_time(json.dumps(payload), UTC)
    assert "\n" not in caught.value.describe()


def test_redact_masks_the_trace_id_too() -> None:
    payload = {"success": False, "code": "500", "traceId": "gw-echo-Sekr1t-Value-0042"}
    with pytest.raises(CanError) as caught:
        parse_latest_time(json.dumps(payload), UTC)
    caught.value.redact(["Sekr1t-Value-0042"])
    assert "Sekr1t" not in caught.value.describe()
