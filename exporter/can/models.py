"""The latestTime API's response, parsed without any I/O.

``parse_latest_time`` turns a response body into a ``Reading`` or raises ``CanError`` with the
``reason`` the exporter counts. CAN can report failure inside an HTTP 200 with
``success: true`` (``data: null`` plus an ``errorMsg``), so every field is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any

from exporter.config.zones import local_zone
from exporter.redact import redact

LATEST_TIME_PATH = "/anymetrics/api/v1/accelerate/latestTime"


class FailureReason(StrEnum):
    """Why a poll gave no reading; the values are the `reason` label of the error counter."""

    PLAN_NOT_FOUND = "plan_not_found"
    AUTH = "auth"
    API_ERROR = "api_error"
    HTTP_STATUS = "http_status"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    INVALID_RESPONSE = "invalid_response"


class CanError(Exception):
    """A poll failed. ``error_msg`` and ``trace_id`` are CAN's, when it sent them."""

    def __init__(
        self,
        reason: FailureReason,
        message: str,
        *,
        error_msg: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.error_msg = error_msg
        self.trace_id = trace_id

    def redact(self, secrets: Sequence[str]) -> None:
        """Mask ``secrets`` in the texts that came from CAN."""
        self.message = redact(self.message, secrets)
        self.args = (self.message,)
        if self.error_msg is not None:
            self.error_msg = redact(self.error_msg, secrets)
        if self.trace_id is not None:
            self.trace_id = redact(self.trace_id, secrets)

    def describe(self) -> str:
        """One line for people: our message, then CAN's errorMsg and traceId when known."""
        parts = [self.message]
        if self.error_msg:
            parts.append(f"errorMsg={self.error_msg!r}")
        if self.trace_id:
            # Quoted when it holds a line break or other control character, to stay one line.
            trace_id = self.trace_id if self.trace_id.isprintable() else repr(self.trace_id)
            parts.append(f"traceId={trace_id}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Reading:
    """One valid answer for a set of plans; times are aware UTC datetimes or None."""

    has_not_ready: bool
    latest_data_time: datetime | None
    latest_refresh_time: datetime | None
    trace_id: str | None = None


_PLAN_MISSING = re.compile(r"plan.*(not exist|not found)|方案不存在", re.IGNORECASE)
_AUTH_CODES = frozenset({"401", "403"})
_CAN_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?)?",
    re.ASCII,  # 0-9 only; plain \d also matches other scripts' digits
)
# Bounds what we echo of a malformed value into a log line.
_ECHO_LIMIT = 64


def parse_latest_time(body: bytes | str, zone: tzinfo | None) -> Reading:
    """Parse a latestTime response body.

    ``zone`` is the zone of CAN's naive timestamps; None means this machine's local zone.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CanError(FailureReason.INVALID_RESPONSE, "response is not JSON") from None
    except RecursionError:
        # json's decoder recurses per nesting level: a 100 kB "[[[[..." body gets here.
        raise _nested_too_deeply() from None
    if not isinstance(payload, dict):
        raise CanError(FailureReason.INVALID_RESPONSE, "response is not a JSON object")
    try:
        return reading_from_payload(payload, zone)
    except RecursionError:
        # Echoing a value nested almost as deeply as the decoder allows can recurse further.
        raise _nested_too_deeply() from None


def _nested_too_deeply() -> CanError:
    return CanError(FailureReason.INVALID_RESPONSE, "response is nested too deeply")


def reading_from_payload(payload: dict[str, Any], zone: tzinfo | None) -> Reading:
    trace_id = _optional_text(payload.get("traceId"))
    error_msg = _optional_text(payload.get("errorMsg"))
    code = payload.get("code")
    success = payload.get("success")
    data = payload.get("data")

    def fail(reason: FailureReason, message: str) -> CanError:
        return CanError(reason, message, error_msg=error_msg, trace_id=trace_id)

    if error_msg and _PLAN_MISSING.search(error_msg):
        raise fail(FailureReason.PLAN_NOT_FOUND, "CAN says a plan does not exist")
    if str(code) in _AUTH_CODES:
        raise fail(FailureReason.AUTH, f"CAN refused the credentials (code {code})")
    if success is not True:
        raise fail(FailureReason.API_ERROR, f"CAN answered success={_echo(success)}")
    if code is None or str(code) != "200":
        raise fail(FailureReason.API_ERROR, f"CAN answered code {_echo(code)}")
    if error_msg:
        raise fail(FailureReason.API_ERROR, "CAN answered with an error message")
    if "data" not in payload:
        raise fail(FailureReason.INVALID_RESPONSE, "response has no data key")
    if data is None:
        raise fail(FailureReason.API_ERROR, "CAN answered without data")
    if not isinstance(data, dict):
        raise fail(FailureReason.INVALID_RESPONSE, "data is not an object")
    try:
        return Reading(
            has_not_ready=_has_not_ready(data.get("hasNotReady")),
            latest_data_time=parse_can_time(data.get("latestDateTime"), zone),
            latest_refresh_time=parse_can_time(data.get("latestRefreshTime"), zone),
            trace_id=trace_id,
        )
    except ValueError as exc:
        raise fail(FailureReason.INVALID_RESPONSE, str(exc)) from None


def _has_not_ready(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"data.hasNotReady is {_echo(value)}, not a boolean")
    return value


def parse_can_time(value: object, zone: tzinfo | None) -> datetime | None:
    """Parse CAN's naive ``YYYY-MM-DD HH:MM:SS`` (or date-only) string into aware UTC.

    A date without a time stands for the start of that day, as CAN writes a daily
    table's data time as ``YYYY-MM-DD 00:00:00``. A local time that falls in a DST gap
    or fold resolves with ``fold=0`` (the earlier offset).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp {_echo(value)} is not a string")
    match = _CAN_TIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"timestamp {_echo(value)} is not in the form YYYY-MM-DD HH:MM:SS")
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        # CAN's time is naive; the zone is attached next.
        naive = datetime(year, month, day, hour, minute, second)  # noqa: DTZ001
    except ValueError:
        raise ValueError(f"timestamp {_echo(value)} is not a real date and time") from None
    try:
        return naive.replace(tzinfo=zone or local_zone()).astimezone(UTC)
    except (OverflowError, OSError):
        raise ValueError(f"timestamp {_echo(value)} is out of range") from None


def _optional_text(value: object) -> str | None:
    if value is None:
        return None
    return str(value)[:512]


def _echo(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _ECHO_LIMIT else text[:_ECHO_LIMIT] + "…"


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one request gave: a reading or an error, and how long CAN took."""

    reading: Reading | None
    error: CanError | None
    duration_seconds: float
