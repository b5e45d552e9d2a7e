"""`--check-config --live`: the plans asked, what each answer means, the table and exit code."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from exporter.can.models import LATEST_TIME_PATH, CanError, FailureReason, PollResult, Reading
from exporter.cli import main
from exporter.config.model import PlanKey, Target
from exporter.config.sharding import shard_of
from exporter.daemon.livecheck import (
    PROBES,
    ClientSetupError,
    PlanCheck,
    PlanOutcome,
    PlanStatus,
    check_plans,
    distinct_plans,
    exit_code,
    outcome_of,
    render_problems,
    summary,
)
from tests.helpers.builders import (
    CAN_MISSING_BODY,
    CAN_OK_BODY,
    config_for,
    make_group,
    make_reading,
)

pytestmark = pytest.mark.usefixtures("restored_root_logger")

SECRET = "live-check-s3cret"
URL = "http://can.test:8080"
ENDPOINT = URL + LATEST_TIME_PATH
NOT_READY_BODY = {
    **CAN_OK_BODY,
    "data": {"hasNotReady": True, "latestDateTime": None, "latestRefreshTime": None},
}


def _check(
    plan: str = "p1", target: str = "prod", groups: tuple[str, ...] = ("sales",)
) -> PlanCheck:
    return PlanCheck(target, PlanKey.IDS, plan, groups, 10.0)


def _failed(reason: FailureReason, message: str = "HTTP 503", **can: str) -> PollResult:
    return PollResult(None, CanError(reason, message, **can), 0.1)


# --- which plans are asked ---------------------------------------------------------------------


def test_a_plan_in_two_groups_is_asked_once_naming_both() -> None:
    sales = make_group("sales", plans=("p1", "p2"))
    finance = replace(make_group("finance", plans=("p2", "p3")), timeout=20.0)
    checks = distinct_plans([sales, finance])
    assert [(c.plan, c.groups) for c in checks] == [
        ("p1", ("sales",)),
        ("p2", ("sales", "finance")),
        ("p3", ("finance",)),
    ]
    # The longest timeout of its groups, so no group's own poll would have waited longer.
    assert [c.timeout for c in checks] == [10.0, 20.0, 20.0]


def test_the_same_text_as_id_and_as_name_or_on_two_targets_are_different_plans() -> None:
    by_id = make_group("a", plans=("x",))
    by_name = replace(make_group("b", plans=("x",)), plan_key=PlanKey.NAMES)
    elsewhere = make_group("c", target="staging", plans=("x",))
    checks = distinct_plans([by_id, by_name, elsewhere])
    assert [(c.target, c.plan_key, c.groups) for c in checks] == [
        ("prod", PlanKey.IDS, ("a",)),
        ("prod", PlanKey.NAMES, ("b",)),
        ("staging", PlanKey.IDS, ("c",)),
    ]


# --- what an answer means --------------------------------------------------------------------


def test_outcomes_of_each_kind_of_answer() -> None:
    check = _check()
    assert outcome_of(check, PollResult(make_reading(), None, 0.1)).status is PlanStatus.OK

    missing = outcome_of(
        check,
        _failed(
            FailureReason.PLAN_NOT_FOUND,
            "CAN says a plan does not exist",
            error_msg="Acceleration plan does not exist",
            trace_id="e78b.144",
        ),
    )
    assert (missing.status, missing.label) == (PlanStatus.MISSING, "missing")
    assert missing.detail == "errorMsg='Acceleration plan does not exist' traceId=e78b.144"

    failed = outcome_of(check, _failed(FailureReason.TIMEOUT, "no answer within 10s"))
    assert (failed.status, failed.label) == (PlanStatus.FAILED, "failed: timeout")
    assert failed.detail == "no answer within 10s"

    never = outcome_of(check, PollResult(make_reading(None, None, not_ready=True), None, 0.1))
    assert (never.status, never.detail) == (PlanStatus.NOT_READY, "never refreshed; traceId=t-1")
    partial = outcome_of(check, PollResult(make_reading(not_ready=True), None, 0.1))
    assert partial.status is PlanStatus.NOT_READY
    assert partial.detail.startswith("a table has empty partitions or was never refreshed")


def _outcomes(*statuses: PlanStatus) -> list[PlanOutcome]:
    return [PlanOutcome(_check(f"p{i}"), status) for i, status in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ((), 0),
        ((PlanStatus.OK, PlanStatus.OK), 0),
        ((PlanStatus.OK, PlanStatus.NOT_READY), 0),
        ((PlanStatus.OK, PlanStatus.MISSING), 1),
        ((PlanStatus.NOT_READY, PlanStatus.FAILED), 1),
        ((PlanStatus.OK, PlanStatus.NOT_CHECKED), 1),
    ],
)
def test_exit_code_fails_on_missing_or_incomplete_but_not_on_not_ready(
    statuses: tuple[PlanStatus, ...], code: int
) -> None:
    assert exit_code(_outcomes(*statuses)) == code


def test_summary_counts_each_status_and_leaves_out_zeros() -> None:
    assert summary(_outcomes(PlanStatus.OK)) == "live check: 1 plan, 1 ok"
    assert summary([]) == "live check: 0 plans, 0 ok"
    assert (
        summary(_outcomes(PlanStatus.NOT_READY, PlanStatus.OK, PlanStatus.MISSING, PlanStatus.OK))
        == "live check: 4 plans, 2 ok, 1 missing, 1 not ready"
    )
    assert (
        summary(_outcomes(PlanStatus.FAILED, PlanStatus.NOT_CHECKED, PlanStatus.NOT_CHECKED))
        == "live check: 3 plans, 0 ok, 1 failed, 2 not checked"
    )


# --- the table -----------------------------------------------------------------------------


def test_table_lists_the_problems_failures_first_and_leaves_out_ok_plans() -> None:
    outcomes = [
        PlanOutcome(_check("fine"), PlanStatus.OK),
        PlanOutcome(_check("empty", groups=("a", "b")), PlanStatus.NOT_READY, detail="never"),
        PlanOutcome(
            _check("gone"), PlanStatus.MISSING, FailureReason.PLAN_NOT_FOUND, "traceId=t-9"
        ),
        PlanOutcome(_check("slow"), PlanStatus.FAILED, FailureReason.TIMEOUT, "no answer"),
    ]
    assert render_problems(outcomes).splitlines() == [
        "TARGET  PLAN   BY  STATUS           GROUPS  DETAIL",
        "prod    gone   id  missing          sales   traceId=t-9",
        "prod    slow   id  failed: timeout  sales   no answer",
        "prod    empty  id  not ready        a,b     never",
    ]
    assert render_problems(outcomes[:1]) == ""


def test_table_keeps_one_line_per_plan_whatever_the_plan_holds() -> None:
    check = replace(_check("bad\nplan"), plan_key=PlanKey.NAMES)
    table = render_problems([PlanOutcome(check, PlanStatus.MISSING)])
    _header, row = table.splitlines()
    assert row.split() == ["prod", "bad\\u000aplan", "name", "missing", "sales", "-"]


def test_table_lets_no_control_character_from_can_or_the_config_reach_the_terminal() -> None:
    hostile = "x\x1b]0;pwned\x07\x9b2J\x7f\u2028\u202e"
    check = replace(_check(f"plan{hostile}"), groups=(f"group{hostile}",))
    outcomes = [
        PlanOutcome(check, PlanStatus.FAILED, FailureReason.API_ERROR, f"errorMsg={hostile}"),
        outcome_of(
            replace(check, plan="p2"),
            PollResult(Reading(True, None, None, trace_id=f"t{hostile}"), None, 0.1),
        ),
    ]
    table = render_problems(outcomes)
    assert table.isascii()
    assert all(char.isprintable() for line in table.splitlines() for char in line)
    escaped = "x\\u001b]0;pwned\\u0007\\u009b2J\\u007f\\u2028\\u202e"
    assert f"plan{escaped}" in table
    assert f"group{escaped}" in table
    assert f"errorMsg={escaped}" in table
    assert f"traceId=t{escaped}" in table


# --- asking CAN, with a fake client ------------------------------------------------------------


class FakeClient:
    """Answers from a table by plan; unknown plans time out. Records what was asked."""

    def __init__(self, answers: dict[str, PollResult], asked: list[str]) -> None:
        self.answers = answers
        self.asked = asked
        self.closed = False

    async def poll(self, plan_key: PlanKey, plans: Sequence[str], timeout: float) -> PollResult:
        assert len(plans) == 1, "one plan per request"
        self.asked.append(plans[0])
        await asyncio.sleep(0)
        return self.answers.get(plans[0], _failed(FailureReason.TIMEOUT, "no answer"))

    async def aclose(self) -> None:
        self.closed = True


def _target() -> Target:
    return config_for(URL, "  - {name: g, target: prod, plan_ids: [p]}").targets["prod"]


async def _run_fake(
    checks: list[PlanCheck], answers: dict[str, PollResult]
) -> tuple[list[PlanOutcome], list[str], list[FakeClient]]:
    asked: list[str] = []
    clients: list[FakeClient] = []

    def factory(target: Target) -> FakeClient:
        clients.append(FakeClient(answers, asked))
        return clients[-1]

    outcomes = await check_plans({"prod": _target()}, checks, factory)
    return outcomes, asked, clients


async def test_an_unreachable_target_costs_a_few_probes_not_one_request_per_plan() -> None:
    checks = [_check(f"p{i}") for i in range(10)]
    outcomes, asked, clients = await _run_fake(checks, {})
    assert asked == [f"p{i}" for i in range(PROBES)]  # one at a time, in order, then stop
    assert [o.status for o in outcomes] == [PlanStatus.FAILED] * PROBES + [
        PlanStatus.NOT_CHECKED
    ] * (10 - PROBES)
    assert (
        outcomes[-1].detail == f"not asked: the target's first {PROBES} plans could not be checked"
    )
    assert exit_code(outcomes) == 1
    assert [client.closed for client in clients] == [True]


async def test_once_can_answers_about_one_plan_every_plan_is_asked() -> None:
    # A hanging first plan and a deleted second one: CAN is up, so the rest are asked too.
    checks = [_check(f"p{i}") for i in range(6)]
    answers = {
        "p1": _failed(FailureReason.PLAN_NOT_FOUND, "gone"),
        **{f"p{i}": PollResult(make_reading(), None, 0.1) for i in range(2, 6)},
    }
    outcomes, asked, _ = await _run_fake(checks, answers)
    assert sorted(asked) == [f"p{i}" for i in range(6)]
    assert [o.check.plan for o in outcomes] == [f"p{i}" for i in range(6)]  # config order
    assert [o.status for o in outcomes] == [
        PlanStatus.FAILED,
        PlanStatus.MISSING,
        *[PlanStatus.OK] * 4,
    ]


async def test_a_target_whose_client_cannot_be_built_is_a_one_line_error() -> None:
    def factory(target: Target) -> FakeClient:
        raise ssl.SSLError("[X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found")

    with pytest.raises(ClientSetupError, match=r"^target 'prod': cannot set up TLS: .*X509"):
        await check_plans({"prod": _target()}, [_check()], factory)


# --- the command line, against a CAN faked by pytest-httpx ------------------------------------


def _write_config(tmp_path: Path, groups: str, *, target: str = "") -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(
        f"""
defaults: {{timeout: 2s}}
targets:
  - name: prod
    url: {URL}
    tenant_id: "10001"
    auth: {{type: APIKEY, value: "{SECRET}"}}
    timezone: UTC
{target}
groups:
{groups}
"""
    )
    return path


def _live(path: Path, *extra: str) -> int:
    return main(["--config.file", str(path), "--check-config", "--live", *extra])


def _asked(httpx_mock: HTTPXMock) -> list[dict[str, Any]]:
    return [json.loads(request.content) for request in httpx_mock.get_requests()]


def test_a_typo_in_a_plan_id_is_reported_missing_and_exits_1(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    good, typo = "6665de58846daee543d5db415375d936", "6665de58846daee543d5db415375d93"
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": [good]}, json=CAN_OK_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": [typo]}, json=CAN_MISSING_BODY)
    path = _write_config(tmp_path, f"  - {{name: sales, target: prod, plan_ids: [{good}, {typo}]}}")
    assert _live(path) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "config ok: 1 targets, 1 groups",
        "TARGET  PLAN                             BY  STATUS   GROUPS  DETAIL",
        f"prod    {typo}  id  missing  sales   errorMsg='Acceleration plan does not exist' "
        "traceId=trace-missing",
        "live check: 2 plans, 1 ok, 1 missing",
    ]
    for request in httpx_mock.get_requests():
        assert request.headers["tenant-id"] == "10001"
        assert request.headers["auth-value"] == SECRET


def test_a_plan_in_two_groups_is_asked_once(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    shared_id = {"planIdList": ["shared"]}
    httpx_mock.add_response(url=ENDPOINT, match_json=shared_id, json=CAN_MISSING_BODY)
    httpx_mock.add_response(url=ENDPOINT, json=CAN_OK_BODY, is_reusable=True)
    path = _write_config(
        tmp_path,
        "  - {name: sales, target: prod, plan_ids: [shared, a]}\n"
        "  - {name: finance, target: prod, plan_ids: [b, shared]}\n"
        "  - {name: by_name, target: prod, plan_names: [shared]}",
    )
    assert _live(path) == 1
    first, *rest = _asked(httpx_mock)
    assert first == shared_id  # asked alone, before the others
    assert sorted(rest, key=json.dumps) == [
        {"planIdList": ["a"]},
        {"planIdList": ["b"]},
        {"planNameList": ["shared"]},  # a name is not an ID: asked separately
    ]
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].split()[:5] == ["prod", "shared", "id", "missing", "sales,finance"]
    assert rows[-1] == "live check: 4 plans, 3 ok, 1 missing"


def test_not_ready_is_listed_but_exits_0(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["a"]}, json=CAN_OK_BODY)
    httpx_mock.add_response(url=ENDPOINT, match_json={"planIdList": ["b"]}, json=NOT_READY_BODY)
    path = _write_config(tmp_path, "  - {name: sales, target: prod, plan_ids: [a, b]}")
    assert _live(path) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].split()[:6] == ["prod", "b", "id", "not", "ready", "sales"]
    assert rows[-1] == "live check: 2 plans, 1 ok, 1 not ready"


def test_every_plan_ok_prints_only_the_summary(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    httpx_mock.add_response(url=ENDPOINT, json=CAN_OK_BODY, is_reusable=True)
    path = _write_config(tmp_path, "  - {name: sales, target: prod, plan_ids: [a, b, c]}")
    assert _live(path) == 0
    assert capsys.readouterr().out == "config ok: 1 targets, 1 groups\nlive check: 3 plans, 3 ok\n"


def test_a_connection_failure_exits_1(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    httpx_mock.add_exception(httpx.ConnectError("Connection refused"), is_reusable=True)
    path = _write_config(tmp_path, "  - {name: sales, target: prod, plan_ids: [a]}")
    assert _live(path) == 1
    captured = capsys.readouterr()
    assert "prod    a     id  failed: connection  sales   ConnectError: Connection refused" in (
        captured.out
    )
    assert captured.out.endswith("live check: 1 plan, 0 ok, 1 failed\n")
    assert "Traceback" not in captured.err


def test_the_auth_value_is_never_printed_even_when_can_echoes_it(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"success": False, "code": "401", "errorMsg": f"bad auth {SECRET}", "traceId": "t-401"}
    httpx_mock.add_response(url=ENDPOINT, status_code=401, json=body, is_reusable=True)
    path = _write_config(tmp_path, "  - {name: sales, target: prod, plan_ids: [a]}")
    assert _live(path, "--log.level", "debug") == 1
    captured = capsys.readouterr()
    assert "failed: auth" in captured.out
    assert "traceId=t-401" in captured.out
    assert SECRET not in captured.out + captured.err


def test_live_without_check_config_is_flag_misuse(
    httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["--live"], ["--live", "--once"], ["--live", "--demo"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == (
            "aloudata-can-exporter: error: argument --live: only valid with --check-config"
        )
    assert httpx_mock.get_requests() == []


def test_a_config_error_exits_1_before_any_request(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path, "  - {name: sales, target: nope, plan_ids: [a]}")
    assert _live(path) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"config error: groups[0].target: unknown target 'nope' (file={path})"
    )
    assert httpx_mock.get_requests() == []


def test_at_most_max_concurrency_requests_at_once(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    in_flight = peak = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, json=CAN_OK_BODY)

    httpx_mock.add_callback(answer, url=ENDPOINT, is_reusable=True)
    plans = ", ".join(f"p{i}" for i in range(12))
    path = _write_config(
        tmp_path,
        f"  - {{name: sales, target: prod, plan_ids: [{plans}]}}",
        target="    max_concurrency: 3",
    )
    assert _live(path) == 0
    assert len(httpx_mock.get_requests()) == 12
    assert peak == 3


def test_a_shard_checks_only_its_own_groups_plans(
    tmp_path: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"g{i}" for i in range(6)]
    mine = [name for name in names if shard_of("prod", name, 2) == 1]
    assert 0 < len(mine) < len(names)
    httpx_mock.add_response(url=ENDPOINT, json=CAN_OK_BODY, is_reusable=True)
    groups = "\n".join(f"  - {{name: {n}, target: prod, plan_ids: [plan_{n}]}}" for n in names)
    path = _write_config(tmp_path, groups)
    assert _live(path, "--shard.index", "1", "--shard.total", "2") == 0
    assert _asked(httpx_mock) == [{"planIdList": [f"plan_{n}"]} for n in mine]
    assert capsys.readouterr().out.splitlines() == [
        f"config ok: 1 targets, 6 groups (shard 1 of 2: {len(mine)} groups)",
        f"live check: {len(mine)} plan{'s' if len(mine) > 1 else ''}, {len(mine)} ok",
    ]
