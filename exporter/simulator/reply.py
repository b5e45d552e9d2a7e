"""The simulator's replies: what CAN would answer to one latestTime request at a given time.

Pure: nothing here touches the network or the clock. The server passes in the scenario, the
request's headers and body, the current time and a trace ID, and gets back the status, body and
delay to answer with (or a connection reset). Plan times are wall-clock times in the scenario's
zone, as CAN renders them; faults and flaps stand in front of the plan lookup.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus

from exporter.simulator.scenario import Flap, FlapMode, Granularity, Plan, Scenario

CAN_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PLAN_NOT_FOUND_MESSAGE = "Acceleration plan does not exist"

_JSON = "application/json"


# --- plan times ------------------------------------------------------------------------------
# All plan times are wall-clock times in the scenario zone, because that is what CAN renders.
# A stalled plan computes them as if it were still `stalled_for` ago.


def plan_data_time(
    plan: Plan, local_now: datetime, started: datetime | None = None
) -> datetime | None:
    """The plan's latest data time: `data_delay` before now, floored to its granularity.

    `started` is when the simulator started (None: now), which `data_frozen_after` and
    `data_rollback` count from.
    """
    if plan.never_refreshed:
        return None
    running_for = local_now - started if started is not None else timedelta(0)
    data_now = local_now
    frozen_after = plan.data_frozen_after
    if frozen_after is not None and running_for > frozen_after:
        data_now = local_now - (running_for - frozen_after)
    data_time = data_now - plan.stalled_for - plan.data_delay
    rollback = plan.data_rollback
    if rollback is not None and running_for >= rollback.after:
        data_time -= rollback.by
    if plan.data_granularity is Granularity.DAY:
        return data_time.replace(hour=0, minute=0, second=0, microsecond=0)
    if plan.data_granularity is Granularity.HOUR:
        return data_time.replace(minute=0, second=0, microsecond=0)
    return data_time.replace(microsecond=0)


def plan_refresh_time(plan: Plan, local_now: datetime) -> datetime | None:
    """The end of the plan's last refresh at or before now.

    Refreshes start every `refresh_every` counted from the Unix epoch in local wall time (so an
    hourly plan starts on the hour and a daily one at local midnight) and end `refresh_offset`
    later.
    """
    if plan.never_refreshed:
        return None
    epoch = datetime(1970, 1, 1, tzinfo=local_now.tzinfo)
    plan_now = local_now.replace(microsecond=0) - plan.stalled_for
    since_epoch = plan_now - plan.refresh_offset - epoch
    last_start = epoch + since_epoch // plan.refresh_every * plan.refresh_every
    return last_start + plan.refresh_offset


# --- replies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedReply:
    """What the server should answer, after waiting `delay`.

    With `reset` the server sends no answer at all but resets the connection; `status` is then 0
    and `body` empty.
    """

    status: int
    body: bytes
    content_type: str = _JSON
    delay: timedelta = timedelta(0)
    reset: bool = False


_RESET_REPLY = SimulatedReply(status=0, body=b"", content_type="text/plain", reset=True)


@dataclass(frozen=True)
class _Times:
    """The request's time, and when the simulator started."""

    now: datetime
    started: datetime


@dataclass(frozen=True)
class _Selection:
    by_name: bool
    keys: tuple[str, ...]


def compute_reply(
    scenario: Scenario,
    *,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    trace_id: str,
    started: datetime | None = None,
) -> SimulatedReply:
    """Answer one latestTime request the way CAN would at `now` (an aware datetime).

    `started` is when the simulator started serving (aware; None: now), for the plan keys that
    count from it.
    """
    if now.tzinfo is None or (started is not None and started.tzinfo is None):
        raise ValueError("now and started must be aware datetimes")
    times = _Times(now, now if started is None else started)
    if not _is_authorized(scenario, headers):
        return _error_reply(401, "401", "authentication failed", trace_id)
    try:
        payload = json.loads(body)
    except ValueError:
        return _error_reply(400, "400", "request body is not valid JSON", trace_id)
    selection = _parse_selection(payload)
    if isinstance(selection, str):
        return _error_reply(200, "400", selection, trace_id)

    requested = [_find_plan(scenario, selection, key) for key in selection.keys]
    known = [plan for plan in requested if plan is not None]
    down = [
        (flap, left)
        for plan in known
        if (flap := plan.faults.flap) is not None and (left := flap.down_left(now)) is not None
    ]
    # Faults stand for trouble in front of the plan lookup (gateway, overload), so they win.
    reply = _flap_reply(down, trace_id) or _fault_reply(known, scenario, times, trace_id)
    if reply is None:
        reply = (
            _plan_not_found_reply(trace_id)
            if len(known) < len(requested)
            else _success_reply(known, scenario, times, trace_id)
        )
    # A hanging flap holds the answer until its down window ends.
    hangs = [left for flap, left in down if flap.mode is FlapMode.HANG]
    delay = max([plan.faults.latency for plan in known] + hangs, default=timedelta(0))
    return dataclasses.replace(reply, delay=delay)


def _is_authorized(scenario: Scenario, headers: Mapping[str, str]) -> bool:
    lowered = {name.lower(): value for name, value in headers.items()}
    expected_value = scenario.auth.value.get_secret_value().encode()
    return (
        lowered.get("tenant-id") == scenario.tenant_id
        and lowered.get("auth-type") == scenario.auth.type.value
        and hmac.compare_digest(lowered.get("auth-value", "").encode(), expected_value)
    )


def _parse_selection(payload: object) -> _Selection | str:
    """The requested plans, or the error message for a malformed body."""
    if not isinstance(payload, dict):
        return "request body must be a JSON object"
    present = [field for field in ("planIdList", "planNameList") if payload.get(field) is not None]
    if len(present) != 1:
        return "exactly one of planIdList or planNameList is required"
    field = present[0]
    keys = payload[field]
    if not keys or not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        return f"{field} must be a non-empty list of strings"
    return _Selection(by_name=field == "planNameList", keys=tuple(keys))


def _find_plan(scenario: Scenario, selection: _Selection, key: str) -> Plan | None:
    for plan in scenario.plans:
        if (plan.name if selection.by_name else plan.id) == key:
            return plan
    return None


def _flap_reply(down: Sequence[tuple[Flap, timedelta]], trace_id: str) -> SimulatedReply | None:
    """The failure of the first flap that is down, unless it only hangs."""
    for flap, _ in down:
        if flap.mode is FlapMode.HTTP_STATUS:
            return _http_status_reply(flap.http_status)
        if flap.mode is FlapMode.RESET:
            return _RESET_REPLY
        if flap.mode is FlapMode.PLAN_NOT_FOUND:
            return _plan_not_found_reply(trace_id)
    return None


def _fault_reply(
    plans: Sequence[Plan], scenario: Scenario, times: _Times, trace_id: str
) -> SimulatedReply | None:
    for plan in plans:
        if plan.faults.http_status is not None:
            return _http_status_reply(plan.faults.http_status)
    for plan in plans:
        if plan.faults.api_error is not None:
            return _error_reply(200, "500", plan.faults.api_error, trace_id)
    if any(plan.faults.malformed_json for plan in plans):
        complete = _success_reply(plans, scenario, times, trace_id).body
        return SimulatedReply(status=200, body=complete[: len(complete) // 2])
    return None


def _http_status_reply(status: int) -> SimulatedReply:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return SimulatedReply(
        status=status, body=f"{status} {phrase}\n".encode(), content_type="text/plain"
    )


def _success_reply(
    plans: Sequence[Plan], scenario: Scenario, times: _Times, trace_id: str
) -> SimulatedReply:
    local_now = times.now.astimezone(scenario.zone)
    data_times = [
        t for plan in plans if (t := plan_data_time(plan, local_now, times.started)) is not None
    ]
    refresh_times = [t for plan in plans if (t := plan_refresh_time(plan, local_now)) is not None]
    data = {
        "hasNotReady": any(plan.not_ready or plan.never_refreshed for plan in plans),
        "latestDateTime": _format_time(min(data_times, default=None)),
        "latestRefreshTime": _format_time(max(refresh_times, default=None)),
    }
    return SimulatedReply(status=200, body=_envelope(data, True, "200", None, trace_id))


def _plan_not_found_reply(trace_id: str) -> SimulatedReply:
    return SimulatedReply(
        status=200, body=_envelope(None, True, "200", PLAN_NOT_FOUND_MESSAGE, trace_id)
    )


def _error_reply(status: int, code: str, message: str, trace_id: str) -> SimulatedReply:
    return SimulatedReply(status=status, body=_envelope(None, False, code, message, trace_id))


def _envelope(
    data: Mapping[str, object] | None, success: bool, code: str, error: str | None, trace_id: str
) -> bytes:
    envelope = {
        "data": data,
        "success": success,
        "code": code,
        "errorMsg": error,
        "detailErrorMsg": None,
        "traceId": trace_id,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _format_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime(CAN_TIME_FORMAT)
