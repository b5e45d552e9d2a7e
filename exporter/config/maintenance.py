"""Maintenance windows: when a group's freshness is not judged.

``maintenance`` lists ``{start, end, reason}`` on a target (covering all its groups), in
``defaults`` and on a group (the group's list replaces defaults', ``[]`` clears it). Times are
ISO 8601 with a zone; a window lasts at most 14 days, so that none is forgotten. A window that
has ended when the config loads is ignored with a warning.

``MaintenanceWindow`` is the resolved window, pure data on Unix times; ``active`` and
``uncovered_seconds`` are what the metrics and the freshness ledger ask of a group's windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from exporter.textsafe import has_controls

# Long enough for a week's outage of several services; no window is forgotten for longer.
MAX_WINDOW_SECONDS = 14 * 86400.0
MAX_REASON_LENGTH = 200
_EXAMPLE = "2026-12-05T22:00:00+08:00 or 2026-12-05T14:00:00Z"


def _aware_time(value: Any) -> datetime:
    """An ISO 8601 time with its zone: a string, or the datetime YAML reads an unquoted one as."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"must be an ISO 8601 time with a zone, like {_EXAMPLE}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"must be an ISO 8601 time with a zone, like {_EXAMPLE}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"must carry a time zone (an offset or Z), like {_EXAMPLE}")
    return value


def _reason(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if has_controls(value):
        raise ValueError("must not contain control characters")
    return value


AwareTime = Annotated[datetime, BeforeValidator(_aware_time)]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH), AfterValidator(_reason)]


class MaintenanceSettings(BaseModel):
    """One item of a ``maintenance`` list, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    start: AwareTime
    end: AwareTime
    reason: Reason


# A bounded list; None (unset) inherits where inheritance applies.
MaintenanceList = Annotated[list[MaintenanceSettings], Field(max_length=100)]


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A resolved window, ``[start, end)`` in Unix seconds; ``from_target``: the target's own
    window (it covers every group of the target), else the group's or defaults'."""

    start: float
    end: float
    reason: str
    from_target: bool = False

    def covers(self, now: float) -> bool:
        return self.start <= now < self.end


def resolve_windows(
    items: Sequence[MaintenanceSettings] | None,
    where: str,
    now: float,
    problems: list[str],
    warnings: list[str],
    *,
    from_target: bool = False,
) -> tuple[MaintenanceWindow, ...]:
    """The windows of the ``maintenance`` list of ``where`` (``groups[2]``); its problems and
    warnings are appended, one line each naming the item's key path."""
    windows: list[MaintenanceWindow] = []
    for index, item in enumerate(items or ()):
        path = f"{where}.maintenance[{index}]"
        start, end = item.start.timestamp(), item.end.timestamp()
        if end <= start:
            problems.append(f"{path}.end: {_utc(end)} is not after start {_utc(start)}")
            continue
        if end - start > MAX_WINDOW_SECONDS:
            problems.append(
                f"{path}.end: the window lasts more than 14 days (from {_utc(start)} to "
                f"{_utc(end)}); split it, so that no window is forgotten"
            )
            continue
        if end <= now:
            warnings.append(f"{path}.end: the window ended at {_utc(end)}; it is ignored")
            continue
        windows.append(MaintenanceWindow(start, end, item.reason, from_target))
    return tuple(windows)


def active(windows: Iterable[MaintenanceWindow], now: float) -> list[MaintenanceWindow]:
    """The windows in force at ``now``."""
    return [window for window in windows if window.covers(now)]


def active_end(windows: Iterable[MaintenanceWindow], now: float) -> MaintenanceWindow | None:
    """The window in force at ``now`` that ends last, or None."""
    return max(active(windows, now), key=lambda window: window.end, default=None)


def uncovered_seconds(start: float, end: float, spans: Iterable[tuple[float, float]]) -> float:
    """Seconds of ``[start, end]`` outside every ``(start, end)`` span (spans may overlap)."""
    if end <= start:
        return 0.0
    covered = 0.0
    reached = start
    for span_start, span_end in sorted(spans):
        lo, hi = max(span_start, reached), min(span_end, end)
        if hi > lo:
            covered += hi - lo
            reached = hi
    return (end - start) - covered


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")
