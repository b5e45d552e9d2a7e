"""Scenario files for the CAN simulator: the models of the file, and loading one.

A scenario names the tenant and credentials CAN expects, its time zone, and each plan's data
delay, refresh schedule and faults. ``load_scenario`` reads and validates a file, raising
``ScenarioError`` with one line per problem. What CAN answers from a scenario is
exporter.simulator.reply's.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
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
from exporter.config.files import CONFIG_FILE_MAX_BYTES, FileReadError, read_text_file
from exporter.config.model import AuthType
from exporter.config.yamlfile import YamlError, load_yaml, validation_problems
from exporter.config.zones import load_zone

DEMO_SCENARIO_PATH = Path(__file__).parent / "scenarios" / "demo.yml"

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
        text = read_text_file(Path(path), CONFIG_FILE_MAX_BYTES)
    except FileReadError as exc:
        raise ScenarioError([f"{exc.describe('file')} (file={path})"]) from None
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
