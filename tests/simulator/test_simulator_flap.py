"""The flapping fault: its schedule at fixed times, its failure modes, and its validation."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporter.simulator import Scenario, ScenarioError, SimulatedReply, compute_reply, load_scenario
from exporter.simulator.scenario import Flap, FlapMode

# 1725222600 seconds after the Unix epoch: a whole number of 20 s, 30 s and 1 min cycles, so the
# cycles of a flap without offset start exactly here.
CYCLE_START = datetime(2024, 9, 1, 20, 30, tzinfo=UTC)
TRACE_ID = "a70c0ebdc9d04ce585bc2a3c85bfd83a.773.17252483988090161"
TICK = timedelta(microseconds=1)

HEALTHY = {"id": "ok", "name": "ok", "data_delay": "1d", "refresh_every": "1h"}
FLAP_503 = {"id": "f503", "name": "f503", "faults": {"flap": {"period": "20s", "down": "8s"}}}

MakeScenario = Callable[..., Scenario]


def _flapping(flap: dict[str, Any], **faults: Any) -> dict[str, Any]:
    return {"id": "flap", "name": "flap", "faults": {"flap": flap, **faults}}


def _ask(
    scenario: Scenario, headers: dict[str, str], plan_ids: list[str], now: datetime
) -> SimulatedReply:
    body = json.dumps({"planIdList": plan_ids}).encode()
    return compute_reply(scenario, headers=headers, body=body, now=now, trace_id=TRACE_ID)


def _at(seconds: float) -> datetime:
    return CYCLE_START + timedelta(seconds=seconds)


# --- schedule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (CYCLE_START - TICK, 200),  # the end of the previous cycle's up part
        (CYCLE_START, 503),  # a down window starts with its cycle
        (_at(4), 503),
        (_at(8) - TICK, 503),
        (_at(8), 200),  # and ends `down` later, exactly
        (_at(19), 200),
        (_at(20) - TICK, 200),
        (_at(20), 503),  # the next cycle
        (_at(20 * 1000 + 3), 503),
        (_at(20 * 1000 + 9), 200),
    ],
)
def test_down_for_the_first_part_of_every_period(
    make_scenario: MakeScenario, auth_headers: dict[str, str], now: datetime, status: int
) -> None:
    reply = _ask(make_scenario(HEALTHY, FLAP_503), auth_headers, ["f503"], now)

    assert reply.status == status


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (CYCLE_START, 200),
        (_at(5) - TICK, 200),
        (_at(5), 503),
        (_at(13) - TICK, 503),
        (_at(13), 200),
        (_at(25), 503),
    ],
)
def test_offset_starts_each_cycle_later(
    make_scenario: MakeScenario, auth_headers: dict[str, str], now: datetime, status: int
) -> None:
    flap = _flapping({"period": "20s", "down": "8s", "offset": "5s"})

    reply = _ask(make_scenario(flap), auth_headers, ["flap"], now)

    assert reply.status == status


def test_an_offset_of_a_whole_period_changes_nothing() -> None:
    plain = Flap.model_validate({"period": "20s", "down": "8s", "offset": "3s"})
    shifted = Flap.model_validate({"period": "20s", "down": "8s", "offset": "43s"})

    for second in range(60):
        assert plain.down_left(_at(second)) == shifted.down_left(_at(second))


def test_down_left_counts_down_to_the_end_of_the_window() -> None:
    flap = Flap.model_validate({"period": "20s", "down": "8s"})

    assert flap.down_left(CYCLE_START) == timedelta(seconds=8)
    assert flap.down_left(_at(6.5)) == timedelta(seconds=1.5)
    assert flap.down_left(_at(8) - TICK) == TICK
    assert flap.down_left(_at(8)) is None
    assert flap.down_left(_at(19.9)) is None


def test_the_schedule_follows_utc_not_the_zone_of_now() -> None:
    flap = Flap.model_validate({"period": "1h", "down": "10m"})
    utc = datetime(2024, 9, 1, 20, 1, tzinfo=UTC)  # one minute into an hour-long cycle
    in_shanghai = utc.astimezone(ZoneInfo("Asia/Shanghai"))
    in_kathmandu = utc.astimezone(ZoneInfo("Asia/Kathmandu"))  # UTC+05:45

    assert flap.down_left(in_shanghai) == flap.down_left(in_kathmandu) == timedelta(minutes=9)


def test_when_up_the_answer_is_the_normal_one(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    scenario = make_scenario(HEALTHY, {**FLAP_503, "data_delay": "1d", "refresh_every": "1h"})

    flapping = _ask(scenario, auth_headers, ["f503"], _at(10))
    healthy = _ask(scenario, auth_headers, ["ok"], _at(10))

    assert flapping == healthy
    assert flapping.delay == timedelta(0)
    assert json.loads(flapping.body)["data"]["latestDateTime"] == "2024-09-01 00:00:00"


def test_requests_that_do_not_name_the_flapping_plan_are_unaffected(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    reply = _ask(make_scenario(HEALTHY, FLAP_503), auth_headers, ["ok"], CYCLE_START)

    assert reply.status == 200
    assert json.loads(reply.body)["success"] is True


# --- modes -----------------------------------------------------------------------------------


def test_http_status_mode_is_a_short_plain_body(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    flap = _flapping({"period": "20s", "down": "8s", "http_status": 502})

    reply = _ask(make_scenario(HEALTHY, flap), auth_headers, ["ok", "flap"], _at(1))

    assert reply == SimulatedReply(status=502, body=b"502 Bad Gateway\n", content_type="text/plain")


def test_reset_mode_sends_no_answer(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    flap = _flapping({"period": "20s", "down": "8s", "mode": "reset"})

    reply = _ask(make_scenario(flap), auth_headers, ["flap"], _at(1))

    assert reply.reset
    assert reply.status == 0
    assert reply.body == b""
    assert reply.delay == timedelta(0)


def test_plan_not_found_mode_answers_as_if_the_plan_were_deleted(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    flap = _flapping({"period": "20s", "down": "8s", "mode": "plan_not_found"})

    reply = _ask(make_scenario(HEALTHY, flap), auth_headers, ["ok", "flap"], _at(1))

    assert reply.status == 200
    assert json.loads(reply.body) == {
        "data": None,
        "success": True,
        "code": "200",
        "errorMsg": "Acceleration plan does not exist",
        "detailErrorMsg": None,
        "traceId": TRACE_ID,
    }


def test_hang_mode_holds_the_normal_answer_until_the_window_ends(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    flap = _flapping({"period": "20s", "down": "8s", "mode": "hang"})
    scenario = make_scenario(HEALTHY, flap)

    hanging = _ask(scenario, auth_headers, ["ok", "flap"], _at(2.5))
    up = _ask(scenario, auth_headers, ["ok", "flap"], _at(8))

    assert hanging.delay == timedelta(seconds=5.5)
    assert hanging.status == 200
    assert json.loads(hanging.body)["success"] is True
    assert up.delay == timedelta(0)


@pytest.mark.parametrize(("latency", "delay"), [("2s", 5.5), ("7s", 7.0)])
def test_hang_and_latency_the_longer_wait_wins(
    make_scenario: MakeScenario, auth_headers: dict[str, str], latency: str, delay: float
) -> None:
    flap = _flapping({"period": "20s", "down": "8s", "mode": "hang"}, latency=latency)

    reply = _ask(make_scenario(flap), auth_headers, ["flap"], _at(2.5))

    assert reply.delay == timedelta(seconds=delay)


def test_latency_still_applies_to_a_flap_failure(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    flap = _flapping({"period": "20s", "down": "8s", "mode": "reset"}, latency="300ms")

    reply = _ask(make_scenario(flap), auth_headers, ["flap"], _at(1))

    assert reply.reset
    assert reply.delay == timedelta(milliseconds=300)


# --- precedence ------------------------------------------------------------------------------


@pytest.mark.parametrize(("now", "status"), [(_at(1), 502), (_at(10), 503)])
def test_a_flap_that_is_down_wins_over_the_other_faults(
    make_scenario: MakeScenario, auth_headers: dict[str, str], now: datetime, status: int
) -> None:
    static = {"id": "s503", "name": "s503", "faults": {"http_status": 503}}
    flap = _flapping({"period": "20s", "down": "8s", "http_status": 502}, api_error="boom")

    reply = _ask(make_scenario(static, flap), auth_headers, ["s503", "flap"], now)

    assert reply.status == status


def test_among_flaps_that_are_down_the_first_named_decides(
    make_scenario: MakeScenario, auth_headers: dict[str, str]
) -> None:
    reset = {
        "id": "r",
        "name": "r",
        "faults": {"flap": {"period": "20s", "down": "8s", "mode": "reset"}},
    }
    scenario = make_scenario(reset, FLAP_503)

    assert _ask(scenario, auth_headers, ["r", "f503"], _at(1)).reset
    assert _ask(scenario, auth_headers, ["f503", "r"], _at(1)).status == 503


@pytest.mark.parametrize(("now", "status"), [(_at(1), 503), (_at(10), 200)])
def test_a_flap_that_is_down_wins_over_an_unknown_plan(
    make_scenario: MakeScenario, auth_headers: dict[str, str], now: datetime, status: int
) -> None:
    reply = _ask(make_scenario(FLAP_503), auth_headers, ["f503", "nope"], now)

    assert reply.status == status
    if status == 200:
        assert json.loads(reply.body)["errorMsg"] == "Acceleration plan does not exist"


def test_wrong_credentials_are_rejected_even_while_down(make_scenario: MakeScenario) -> None:
    reply = _ask(make_scenario(FLAP_503), {}, ["f503"], _at(1))

    assert reply.status == 401


# --- validation ------------------------------------------------------------------------------

HEADER = 'tenant_id: "10001"\nauth: {type: APIKEY, value: k}\ntimezone: UTC\n'


def _load_flap(tmp_path: Path, flap: str) -> Path:
    path = tmp_path / "scenario.yml"
    path.write_text(HEADER + f"plans:\n  - {{id: a, name: b, faults: {{flap: {flap}}}}}\n")
    return path


def test_a_flap_with_every_key(tmp_path: Path) -> None:
    path = _load_flap(
        tmp_path, "{period: 1m, down: 10s, offset: 30s, mode: http_status, http_status: 502}"
    )

    assert load_scenario(path).plans[0].faults.flap == Flap(
        period=timedelta(minutes=1),
        down=timedelta(seconds=10),
        offset=timedelta(seconds=30),
        mode=FlapMode.HTTP_STATUS,
        http_status=502,
    )


def test_flap_defaults(tmp_path: Path) -> None:
    flap = load_scenario(_load_flap(tmp_path, "{period: 20s, down: 8s}")).plans[0].faults.flap

    assert flap is not None
    assert flap.offset == timedelta(0)
    assert flap.mode is FlapMode.HTTP_STATUS
    assert flap.http_status == 503


@pytest.mark.parametrize("mode", ["hang", "reset", "plan_not_found"])
def test_other_modes_need_no_status(tmp_path: Path, mode: str) -> None:
    flap = load_scenario(_load_flap(tmp_path, f"{{period: 20s, down: 8s, mode: {mode}}}"))

    assert flap.plans[0].faults.flap is not None
    assert flap.plans[0].faults.flap.mode == mode


@pytest.mark.parametrize(
    ("flap", "problem"),
    [
        ("{period: 20s, down: 20s}", "plans[0].faults.flap: down must be shorter than period"),
        ("{period: 20s, down: 1m}", "plans[0].faults.flap: down must be shorter than period"),
        ("{period: 0s, down: 1s}", "plans[0].faults.flap.period: must be longer than 0s"),
        ("{period: 20s, down: 0s}", "plans[0].faults.flap.down: must be longer than 0s"),
        ("{down: 8s}", "plans[0].faults.flap.period: required key is missing"),
        ("{period: 20s}", "plans[0].faults.flap.down: required key is missing"),
        ("{period: 20x, down: 8s}", "plans[0].faults.flap.period: invalid duration '20x'"),
        ("{period: 20s, down: 8s, offset: -1s}", "plans[0].faults.flap.offset: invalid duration"),
        (
            "{period: 20s, down: 8s, mode: flaky}",
            "plans[0].faults.flap.mode: Input should be 'http_status', 'hang', 'reset' or "
            "'plan_not_found'",
        ),
        ("{period: 20s, down: 8s, http_status: 200}", "plans[0].faults.flap.http_status: Input"),
        ("{period: 20s, down: 8s, http_status: 600}", "plans[0].faults.flap.http_status: Input"),
        (
            "{period: 20s, down: 8s, mode: reset, http_status: 503}",
            "plans[0].faults.flap: http_status only applies to mode http_status, not reset",
        ),
        ("{period: 20s, down: 8s, every: 1m}", "plans[0].faults.flap.every: unknown key"),
        ("20s", "plans[0].faults.flap: Input should be a valid dictionary"),
    ],
)
def test_invalid_flap_is_one_line_naming_the_key(tmp_path: Path, flap: str, problem: str) -> None:
    path = _load_flap(tmp_path, flap)

    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(problem)
    assert caught.value.problems[0].endswith(f"(file={path})")
