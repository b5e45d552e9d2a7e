"""Scenario files for the CAN simulator, and the pure computation of its replies.

Nothing here touches the network or the clock: the server passes in the request, the current
time and a trace ID, and gets back the status, body and delay to answer with.
"""

import dataclasses
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from exporter.config.durations import parse_duration
from exporter.config.files import CONFIG_FILE_MAX_BYTES, FileReadError, read_regular_file
from exporter.config.model import AuthType
from exporter.config.yamlfile import YamlError, load_yaml, os_reason, validation_problems
from exporter.config.zones import load_zone

DEMO_SCENARIO_PATH = Path(__file__).parent / "scenarios" / "demo.yml"
CAN_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PLAN_NOT_FOUND_MESSAGE = "Acceleration plan does not exist"

_JSON = "application/json"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScenarioError(Exception):
    """A scenario file that cannot be used; one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# --- durations -------------------------------------------------------------------------------


def _to_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise PydanticCustomError("duration", "must not be negative")
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("duration", "must be a duration string such as 30s, 5m or 1h30m")
    try:
        return timedelta(seconds=parse_duration(value))
    except ValueError:
        raise PydanticCustomError(
            "duration", "invalid duration {duration}", {"duration": repr(value)}
        ) from None


def _require_positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise PydanticCustomError("duration", "must be longer than 0s")
    return value


Duration = Annotated[timedelta, BeforeValidator(_to_duration)]
PositiveDuration = Annotated[
    timedelta, BeforeValidator(_to_duration), AfterValidator(_require_positive)
]


# --- scenario models -------------------------------------------------------------------------

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Granularity(StrEnum):
    DAY = "day"
    HOUR = "hour"
    SECOND = "second"


class Auth(BaseModel):
    model_config = _MODEL_CONFIG

    type: AuthType
    value: SecretStr = Field(min_length=1)


class FlapMode(StrEnum):
    """How a flapping plan fails while it is down."""

    HTTP_STATUS = "http_status"
    HANG = "hang"
    RESET = "reset"
    PLAN_NOT_FOUND = "plan_not_found"


class Flap(BaseModel):
    """Down for the first `down` of every `period`, counted from the Unix epoch plus `offset`."""

    model_config = _MODEL_CONFIG

    period: PositiveDuration
    down: PositiveDuration
    offset: Duration = timedelta(0)
    mode: FlapMode = FlapMode.HTTP_STATUS
    http_status: int = Field(default=503, ge=400, le=599)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.down >= self.period:
            raise PydanticCustomError("flap", "down must be shorter than period")
        if "http_status" in self.model_fields_set and self.mode is not FlapMode.HTTP_STATUS:
            raise PydanticCustomError(
                "flap",
                "http_status only applies to mode http_status, not {mode}",
                {"mode": self.mode.value},
            )
        return self

    def down_left(self, now: datetime) -> timedelta | None:
        """How long the down window around `now` (aware) still lasts, or None while up."""
        phase = (now - _UNIX_EPOCH - self.offset) % self.period
        return self.down - phase if phase < self.down else None


class Faults(BaseModel):
    model_config = _MODEL_CONFIG

    latency: Duration = timedelta(0)
    http_status: int | None = Field(default=None, ge=400, le=599)
    malformed_json: bool = False
    api_error: str | None = Field(default=None, min_length=1)
    flap: Flap | None = None


class DataRollback(BaseModel):
    """From `after` after the simulator started, the plan's data time is reported `by` earlier."""

    model_config = _MODEL_CONFIG

    after: Duration
    by: PositiveDuration


class Plan(BaseModel):
    model_config = _MODEL_CONFIG

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    data_delay: Duration = timedelta(days=1)
    data_granularity: Granularity = Granularity.DAY
    refresh_every: PositiveDuration = timedelta(hours=1)
    refresh_offset: Duration = timedelta(0)
    not_ready: bool = False
    never_refreshed: bool = False
    stalled_for: Duration = timedelta(0)
    data_frozen_after: Duration | None = None
    data_rollback: DataRollback | None = None
    faults: Faults = Field(default_factory=Faults)

    @model_validator(mode="after")
    def _data_changes_need_data(self) -> Self:
        for key in ("data_frozen_after", "data_rollback"):
            if self.never_refreshed and getattr(self, key) is not None:
                raise PydanticCustomError(
                    "plan", "{key} has no effect on a never_refreshed plan", {"key": key}
                )
        return self


class Scenario(BaseModel):
    model_config = _MODEL_CONFIG

    tenant_id: str = Field(min_length=1)
    auth: Auth
    timezone: str
    plans: tuple[Plan, ...]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            load_zone(value)
        except ValueError:
            raise PydanticCustomError(
                "timezone", "unknown time zone {zone}", {"zone": repr(value)}
            ) from None
        return value

    @field_validator("plans")
    @classmethod
    def _some_plans(cls, plans: tuple[Plan, ...]) -> tuple[Plan, ...]:
        # Not `min_length`: on a tuple it also fires, confusingly, when an item fails to validate.
        if not plans:
            raise PydanticCustomError("no_plans", "must list at least one plan")
        return plans

    @model_validator(mode="after")
    def _unique_plans(self) -> Self:
        for field in ("id", "name"):
            first_index: dict[str, int] = {}
            for index, plan in enumerate(self.plans):
                key = getattr(plan, field)
                if key in first_index:
                    raise PydanticCustomError(
                        "duplicate_plan",
                        "plans[{index}].{field}: duplicate plan {field} {key} "
                        "(first at plans[{first}])",
                        {
                            "index": index,
                            "field": field,
                            "key": repr(key),
                            "first": first_index[key],
                        },
                    )
                first_index[key] = index
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# --- loading ---------------------------------------------------------------------------------


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file, raising `ScenarioError` with one line per problem."""
    try:
        text = read_regular_file(Path(path), CONFIG_FILE_MAX_BYTES).decode("utf-8")
    except FileReadError as exc:
        raise ScenarioError([f"{exc.describe('file')} (file={path})"]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"cannot read file: {os_reason(exc)} (file={path})"]) from None
    try:
        data = load_yaml(text)
    except YamlError as exc:
        raise ScenarioError([f"{exc} (file={path})"]) from None
    if not isinstance(data, dict):
        raise ScenarioError([f"top level: must be a mapping of keys (file={path})"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [f"{line} (file={path})" for line in validation_problems(exc)]
        ) from None


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
