"""The pure reply computation, under a fixed clock."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter.simulator import Scenario, SimulatedReply, compute_reply

# 2024-09-02 04:30:00 in Asia/Shanghai: already the next day there, not yet in UTC.
NOW = datetime(2024, 9, 1, 20, 30, tzinfo=UTC)
TRACE_ID = "a70c0ebdc9d04ce585bc2a3c85bfd83a.773.17252483988090161"

DAILY = {
    "id": "d1",
    "name": "daily",
    "data_delay": "1d",
    "refresh_every": "1h",
    "refresh_offset": "5m",
}
SLOW_DAILY = {
    "id": "d3",
    "name": "slow_daily",
    "data_delay": "3d",
    "refresh_every": "1d",
    "refresh_offset": "2h",
}
HOURLY = {
    "id": "h1",
    "name": "hourly",
    "data_delay": "2h",
    "data_granularity": "hour",
    "refresh_every": "1h",
    "refresh_offset": "40m",
}
NEVER = {"id": "n1", "name": "never", "never_refreshed": True}

MakeScenario = Callable[..., Scenario]


def _ask(
    scenario: Scenario, headers: dict[str, str], payload: object, now: datetime = NOW
) -> SimulatedReply:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return compute_reply(scenario, headers=headers, body=body, now=now, trace_id=TRACE_ID)


def _data(reply: SimulatedReply) -> Any:
    assert reply.status == 200
    assert reply.content_type == "application/json"
    envelope = json.loads(reply.body)
    assert envelope["success"] is True
    assert envelope["code"] == "200"
    assert envelope["errorMsg"] is None
    return envelope["data"]


def test_success_has_the_full_can_envelope(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    reply = _ask(make_scenario(DAILY), auth_headers, {"planIdList": ["d1"]})

    assert reply.status == 200
    assert reply.delay == timedelta(0)
    assert json.loads(reply.body) == {
        "data": {
            "hasNotReady": False,
            "latestDateTime": "2024-09-01 00:00:00",
            "latestRefreshTime": "2024-09-02 04:05:00",
        },
        "success": True,
        "code": "200",
        "errorMsg": None,
        "detailErrorMsg": None,
        "traceId": TRACE_ID,
    }


def test_days_are_floored_in_the_scenario_zone(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    shanghai = _data(_ask(make_scenario(DAILY), auth_headers, {"planIdList": ["d1"]}))
    utc = _data(_ask(make_scenario(DAILY, timezone="UTC"), auth_headers, {"planIdList": ["d1"]}))

    assert shanghai["latestDateTime"] == "2024-09-01 00:00:00"
    assert utc["latestDateTime"] == "2024-08-31 00:00:00"
    assert shanghai["latestRefreshTime"] == "2024-09-02 04:05:00"
    assert utc["latestRefreshTime"] == "2024-09-01 20:05:00"


def test_hour_and_second_granularity(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    seconds = {"id": "s1", "name": "seconds", "data_delay": "90s", "data_granularity": "second"}
    scenario = make_scenario(HOURLY, seconds)
    now = NOW + timedelta(minutes=1, seconds=7, microseconds=750_000)

    hourly = _data(_ask(scenario, auth_headers, {"planIdList": ["h1"]}, now))
    by_second = _data(_ask(scenario, auth_headers, {"planIdList": ["s1"]}, now))

    assert hourly["latestDateTime"] == "2024-09-02 02:00:00"
    assert by_second["latestDateTime"] == "2024-09-02 04:29:37"


def test_refresh_before_the_offset_elapses_is_the_previous_run(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    just_after_the_hour = NOW - timedelta(minutes=27)  # 04:03, the 04:00 run ends at 04:05

    data = _data(
        _ask(make_scenario(DAILY), auth_headers, {"planIdList": ["d1"]}, just_after_the_hour)
    )

    assert data["latestRefreshTime"] == "2024-09-02 03:05:00"


def test_daily_refresh_starts_at_local_midnight(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    data = _data(_ask(make_scenario(SLOW_DAILY), auth_headers, {"planIdList": ["d3"]}))

    assert data == {
        "hasNotReady": False,
        "latestDateTime": "2024-08-30 00:00:00",
        "latestRefreshTime": "2024-09-02 02:00:00",
    }


def test_several_plans_report_the_oldest_data_and_the_newest_refresh(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    scenario = make_scenario(DAILY, SLOW_DAILY, HOURLY)

    data = _data(_ask(scenario, auth_headers, {"planIdList": ["h1", "d1", "d3"]}))

    assert data == {
        "hasNotReady": False,
        "latestDateTime": "2024-08-30 00:00:00",  # slow_daily
        "latestRefreshTime": "2024-09-02 04:05:00",  # daily
    }


def test_a_stalled_plan_reports_times_from_when_it_stopped(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    stalled = {**SLOW_DAILY, "data_delay": "1d", "stalled_for": "3d"}

    data = _data(_ask(make_scenario(stalled), auth_headers, {"planIdList": ["d3"]}))

    assert data["latestDateTime"] == "2024-08-29 00:00:00"
    assert data["latestRefreshTime"] == "2024-08-30 02:00:00"


def test_never_refreshed_plan_alone_has_no_times(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    data = _data(_ask(make_scenario(NEVER), auth_headers, {"planIdList": ["n1"]}))

    assert data == {"hasNotReady": True, "latestDateTime": None, "latestRefreshTime": None}


def test_never_refreshed_plan_does_not_hide_the_others_times(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    data = _data(_ask(make_scenario(DAILY, NEVER), auth_headers, {"planIdList": ["n1", "d1"]}))

    assert data == {
        "hasNotReady": True,
        "latestDateTime": "2024-09-01 00:00:00",
        "latestRefreshTime": "2024-09-02 04:05:00",
    }


def test_not_ready_plan_keeps_its_times(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    not_ready = {**DAILY, "not_ready": True}

    data = _data(_ask(make_scenario(not_ready), auth_headers, {"planIdList": ["d1"]}))

    assert data == {
        "hasNotReady": True,
        "latestDateTime": "2024-09-01 00:00:00",
        "latestRefreshTime": "2024-09-02 04:05:00",
    }


def test_plans_can_be_named_instead_of_identified(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    scenario = make_scenario(DAILY, SLOW_DAILY)

    by_name = _data(_ask(scenario, auth_headers, {"planNameList": ["daily", "slow_daily"]}))
    by_id = _data(_ask(scenario, auth_headers, {"planIdList": ["d1", "d3"]}))

    assert by_name == by_id
    assert by_name["latestDateTime"] == "2024-08-30 00:00:00"


@pytest.mark.parametrize(
    "payload",
    [
        {"planIdList": ["d1", "no-such-plan"]},
        {"planNameList": ["d1"]},  # an ID is not a name
        {"planIdList": ["daily"]},  # and a name is not an ID
    ],
)
def test_any_unknown_plan_gives_the_documented_failure(
    make_scenario: MakeScenario, auth_headers: dict[str, str], payload: object
) -> None:
    reply = _ask(make_scenario(DAILY), auth_headers, payload)

    assert reply.status == 200
    assert json.loads(reply.body) == {
        "data": None,
        "success": True,
        "code": "200",
        "errorMsg": "Acceleration plan does not exist",
        "detailErrorMsg": None,
        "traceId": TRACE_ID,
    }


def test_a_null_list_counts_as_absent(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    data = _data(
        _ask(make_scenario(DAILY), auth_headers, {"planIdList": ["d1"], "planNameList": None})
    )

    assert data["latestDateTime"] == "2024-09-01 00:00:00"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "exactly one of planIdList or planNameList is required"),
        (
            {"planIdList": ["d1"], "planNameList": ["daily"]},
            "exactly one of planIdList or planNameList is required",
        ),
        ({"planIdList": []}, "planIdList must be a non-empty list of strings"),
        ({"planIdList": "d1"}, "planIdList must be a non-empty list of strings"),
        ({"planNameList": ["daily", 7]}, "planNameList must be a non-empty list of strings"),
        (["d1"], "request body must be a JSON object"),
    ],
)
def test_bad_request_body_is_an_api_error(
    make_scenario: MakeScenario, auth_headers: dict[str, str], payload: object, message: str
) -> None:
    reply = _ask(make_scenario(DAILY), auth_headers, payload)

    assert reply.status == 200
    assert json.loads(reply.body) == {
        "data": None,
        "success": False,
        "code": "400",
        "errorMsg": message,
        "detailErrorMsg": None,
        "traceId": TRACE_ID,
    }


@pytest.mark.parametrize("body", [b"planIdList=d1", b"", b'{"planIdList": ["d1"]', b"\xff\xfe\xfd"])
def test_non_json_body_is_http_400(
    make_scenario: MakeScenario, auth_headers: dict[str, str], body: bytes
) -> None:
    reply = _ask(make_scenario(DAILY), auth_headers, body)

    assert reply.status == 400
    envelope = json.loads(reply.body)
    assert envelope["success"] is False
    assert envelope["code"] == "400"
    assert envelope["data"] is None


@pytest.mark.parametrize(
    "change",
    [
        {"tenant-id": None},
        {"auth-type": None},
        {"auth-value": None},
        {"tenant-id": "10002"},
        {"auth-type": "TOKEN"},
        {"auth-value": "demo-apikey "},
        {"auth-value": ""},
    ],
)
def test_wrong_credentials_are_http_401(
    make_scenario: MakeScenario, auth_headers: dict[str, str], change: dict[str, str | None]
) -> None:
    headers = {**auth_headers, **change}
    sent = {name: value for name, value in headers.items() if value is not None}

    reply = _ask(make_scenario(DAILY), sent, {"planIdList": ["d1"]})

    assert reply.status == 401
    assert json.loads(reply.body) == {
        "success": False,
        "code": "401",
        "errorMsg": "authentication failed",
        "detailErrorMsg": None,
        "traceId": TRACE_ID,
        "data": None,
    }


def test_header_names_are_case_insensitive(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    headers = {name.title(): value for name, value in auth_headers.items()}

    reply = _ask(make_scenario(DAILY), headers, {"planIdList": ["d1"]})

    assert reply.status == 200


def test_auth_is_checked_before_the_body(make_scenario: MakeScenario) -> None:
    reply = _ask(make_scenario(DAILY), {}, b"not json")

    assert reply.status == 401


FAULTY = {
    "latency": {"id": "lat", "name": "lat", "faults": {"latency": "2s"}},
    "short_latency": {"id": "lat2", "name": "lat2", "faults": {"latency": "500ms"}},
    "status": {"id": "503", "name": "503", "faults": {"http_status": 503}},
    "api": {"id": "api", "name": "api", "faults": {"api_error": "Internal error"}},
    "malformed": {"id": "bad", "name": "bad", "faults": {"malformed_json": True}},
}


@pytest.fixture
def faulty_scenario(make_scenario: MakeScenario) -> Scenario:
    return make_scenario(DAILY, *FAULTY.values())


def test_http_status_fault_is_a_short_plain_body(
    faulty_scenario: Scenario, auth_headers: dict[str, str]
) -> None:
    reply = _ask(faulty_scenario, auth_headers, {"planIdList": ["d1", "503"]})

    assert reply.status == 503
    assert reply.content_type == "text/plain"
    assert reply.body == b"503 Service Unavailable\n"


def test_api_error_fault_is_http_200_with_success_false(
    faulty_scenario: Scenario, auth_headers: dict[str, str]
) -> None:
    reply = _ask(faulty_scenario, auth_headers, {"planIdList": ["api"]})

    assert reply.status == 200
    assert json.loads(reply.body) == {
        "data": None,
        "success": False,
        "code": "500",
        "errorMsg": "Internal error",
        "detailErrorMsg": None,
        "traceId": TRACE_ID,
    }


def test_malformed_json_fault_truncates_the_body(
    faulty_scenario: Scenario, auth_headers: dict[str, str]
) -> None:
    reply = _ask(faulty_scenario, auth_headers, {"planIdList": ["d1", "bad"]})

    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert reply.body.startswith(b'{"data":{')
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.body)


@pytest.mark.parametrize(
    ("plans", "status"),
    [
        (["bad", "api", "503"], 503),
        (["bad", "api"], 200),
    ],
)
def test_fault_precedence(
    faulty_scenario: Scenario, auth_headers: dict[str, str], plans: list[str], status: int
) -> None:
    reply = _ask(faulty_scenario, auth_headers, {"planIdList": plans})

    assert reply.status == status
    if status == 200:
        assert json.loads(reply.body)["errorMsg"] == "Internal error"


def test_the_longest_latency_applies_to_the_reply(
    faulty_scenario: Scenario, auth_headers: dict[str, str]
) -> None:
    reply = _ask(faulty_scenario, auth_headers, {"planIdList": ["lat2", "d1", "lat"]})

    assert reply.delay == timedelta(seconds=2)
    assert _data(reply)["latestDateTime"] == "2024-09-01 00:00:00"


def test_faults_apply_even_with_an_unknown_plan(
    faulty_scenario: Scenario, auth_headers: dict[str, str]
) -> None:
    reply = _ask(faulty_scenario, auth_headers, {"planIdList": ["lat", "503", "nope"]})

    assert reply.status == 503
    assert reply.delay == timedelta(seconds=2)


def test_requests_without_faulty_plans_are_unaffected(
    faulty_scenario: Scenario, auth_headers: dict[str, str]
) -> None:
    reply = _ask(faulty_scenario, auth_headers, {"planIdList": ["d1"]})

    assert reply.delay == timedelta(0)
    assert _data(reply)["hasNotReady"] is False


def test_now_must_be_aware(make_scenario: MakeScenario, auth_headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="aware"):
        _ask(make_scenario(DAILY), auth_headers, {"planIdList": ["d1"]}, NOW.replace(tzinfo=None))


SECONDLY = {
    "id": "s1",
    "name": "secondly",
    "data_delay": "0s",
    "data_granularity": "second",
    "refresh_every": "1m",
}


def _ask_since(
    scenario: Scenario, headers: dict[str, str], started: datetime, now: datetime = NOW
) -> Any:
    body = json.dumps({"planIdList": [plan.id for plan in scenario.plans]}).encode()
    reply = compute_reply(
        scenario, headers=headers, body=body, now=now, trace_id=TRACE_ID, started=started
    )
    return _data(reply)


def test_a_frozen_plan_keeps_its_data_time_while_refreshes_go_on(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    scenario = make_scenario({**SECONDLY, "data_frozen_after": "10m"})
    started = NOW - timedelta(hours=1)

    # NOW is 04:30 in Shanghai; the data time stopped 10 minutes after the start, at 03:40.
    seen = [
        _ask_since(scenario, auth_headers, started, NOW + timedelta(minutes=minutes))
        for minutes in (0, 1, 2)
    ]
    assert [data["latestDateTime"] for data in seen] == ["2024-09-02 03:40:00"] * 3
    assert [data["latestRefreshTime"] for data in seen] == [
        "2024-09-02 04:30:00",
        "2024-09-02 04:31:00",
        "2024-09-02 04:32:00",
    ]


def test_a_plan_not_yet_frozen_advances(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    scenario = make_scenario({**SECONDLY, "data_frozen_after": "10m"})
    data = _ask_since(scenario, auth_headers, NOW - timedelta(minutes=10))
    assert data["latestDateTime"] == "2024-09-02 04:30:00"


@pytest.mark.parametrize(
    ("running_for", "expected"),
    [
        (timedelta(minutes=10) - timedelta(seconds=1), "2024-09-02 04:30:00"),
        (timedelta(minutes=10), "2024-09-01 04:30:00"),
        (timedelta(hours=5), "2024-09-01 04:30:00"),
    ],
)
def test_a_rollback_reports_the_data_time_earlier_from_its_moment(
    make_scenario: MakeScenario,
    auth_headers: dict[str, str],
    running_for: timedelta,
    expected: str,
) -> None:
    scenario = make_scenario({**SECONDLY, "data_rollback": {"after": "10m", "by": "1d"}})
    data = _ask_since(scenario, auth_headers, NOW - running_for)
    assert data["latestDateTime"] == expected
    assert data["latestRefreshTime"] == "2024-09-02 04:30:00"


def test_a_rollback_is_subtracted_before_flooring_to_the_granularity(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    # An hour back from 04:30 local on a daily plan with a day's delay: still 2024-09-01.
    small = make_scenario({**DAILY, "data_rollback": {"after": "0s", "by": "1h"}})
    assert _ask_since(small, auth_headers, NOW)["latestDateTime"] == "2024-09-01 00:00:00"
    # Five hours back crosses local midnight: a day earlier.
    large = make_scenario({**DAILY, "data_rollback": {"after": "0s", "by": "5h"}})
    assert _ask_since(large, auth_headers, NOW)["latestDateTime"] == "2024-08-31 00:00:00"


def test_without_a_start_time_the_simulator_has_just_started(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    scenario = make_scenario(
        {**SECONDLY, "data_rollback": {"after": "1s", "by": "1d"}},
        {**SECONDLY, "id": "s2", "name": "frozen", "data_frozen_after": "0s"},
    )
    data = _data(_ask(scenario, auth_headers, {"planIdList": ["s1", "s2"]}))
    assert data["latestDateTime"] == "2024-09-02 04:30:00"


def test_started_must_be_aware(make_scenario: MakeScenario, auth_headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="aware"):
        compute_reply(
            make_scenario(DAILY),
            headers=auth_headers,
            body=b'{"planIdList": ["d1"]}',
            now=NOW,
            trace_id=TRACE_ID,
            started=datetime(2024, 9, 1),  # noqa: DTZ001 - naive on purpose
        )
