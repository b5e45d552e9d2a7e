"""Prometheus-style durations: ``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``."""

from __future__ import annotations

import re

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
# Units must appear from largest to smallest, each at most once, as in Prometheus.
_UNIT_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
# ASCII digits only: ``\d`` alone would also take other scripts' digits, such as "٣s".
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
# As in Prometheus, a duration must fit a signed 64-bit count of nanoseconds (about 292y).
_MAX_MILLISECONDS = (2**63 - 1) // 1_000_000


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise ValueError with a short reason otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: write it with a unit, like 30s or 5m")
    stripped = text.strip()
    if stripped == "0":
        return 0.0
    position = 0
    milliseconds = 0
    last_unit_rank = -1
    for match in _PART.finditer(stripped):
        if match.start() != position:
            break
        rank = _UNIT_ORDER.index(match.group(2))
        if rank <= last_unit_rank:
            raise ValueError(f"invalid duration {text!r}: units must go from largest to smallest")
        last_unit_rank = rank
        digits = match.group(1)
        # Counted in whole milliseconds, so the total is exact and bounded before any float.
        if len(digits.lstrip("0")) > len(str(_MAX_MILLISECONDS)):
            raise ValueError(f"invalid duration {text!r}: out of range (at most about 292y)")
        milliseconds += int(digits) * round(_UNIT_SECONDS[match.group(2)] * 1000)
        position = match.end()
    if position == 0 or position != len(stripped):
        raise ValueError(f"invalid duration {text!r}: expected a form like 30s, 5m, 1h30m or 2d")
    if milliseconds > _MAX_MILLISECONDS:
        raise ValueError(f"invalid duration {text!r}: out of range (at most about 292y)")
    return milliseconds / 1000


def format_duration(seconds: float) -> str:
    """Render seconds the way Prometheus does (``1h30m``, ``2d``, ``500ms``)."""
    if seconds == 0:
        return "0s"
    milliseconds = round(seconds * 1000)
    parts: list[str] = []
    for unit in _UNIT_ORDER:
        unit_ms = round(_UNIT_SECONDS[unit] * 1000)
        count, milliseconds = divmod(milliseconds, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
