"""exporter-toolkit's ``rate_limit`` in ``--web.config.file``: its settings and its token bucket.

``rate_limit: {interval: <duration>, burst: <int>}`` is, in exporter-toolkit,
``rate.NewLimiter(rate.Every(interval), burst)`` of golang.org/x/time/rate, asked ``Allow()``
by every request, on every path, before basic auth; a request it refuses gets 429 Too Many
Requests. ``TokenBucket`` is that limiter's ``Allow``, step for step:

- the bucket starts full, with ``burst`` tokens, and gains one token per ``interval`` (in
  fractions, continuously), never holding more than ``burst``;
- a request takes one token; a refused request takes none and changes nothing;
- ``interval`` 0, a missing ``interval`` or no ``rate_limit`` turns the limit off (``burst`` is
  then ignored); ``burst`` 0 with an interval refuses every request, as in Go (a warning here);
- there is one bucket for the whole server, not one per client.

Durations are Go's (``500ms``, ``1.5s``, ``1m30s``) or Prometheus' (``1d``). Two values Go
takes are errors here, as nobody means what Go makes of them: a negative interval (no limit in
Go) and a bare number other than 0 (nanoseconds in Go).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from exporter.config.durations import parse_duration

# Go's time.ParseDuration units, in nanoseconds; both spellings of micro (U+00B5, U+03BC).
_GO_UNIT_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_GO_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
# A Go duration is a signed 64-bit count of nanoseconds.
_MAX_NANOSECONDS = 2**63 - 1
# Longer text is no duration anyone wrote; refused before any arithmetic on its digits.
_MAX_DURATION_CHARACTERS = 64
_FORMS = "write it like 1s, 500ms or 1m30s (0 turns the limit off)"


def parse_go_duration(text: str) -> int:
    """Nanoseconds in a non-negative Go duration (``1h30m``, ``1.5s``, ``100us``, ``0``)."""
    stripped = text.strip().removeprefix("+")
    if stripped == "0":
        return 0
    if len(stripped) > _MAX_DURATION_CHARACTERS:
        raise ValueError(f"invalid duration: longer than {_MAX_DURATION_CHARACTERS} characters")
    position = 0
    nanoseconds = 0
    for match in _GO_PART.finditer(stripped):
        whole, fraction, unit = match.groups()
        if match.start() != position or not (whole or fraction):
            break
        scale = _GO_UNIT_NANOSECONDS[unit]
        # Digits below a nanosecond are dropped, as Go drops them.
        nanoseconds += int(whole or 0) * scale
        if fraction:
            nanoseconds += int(fraction) * scale // 10 ** len(fraction)
        position = match.end()
    if position == 0 or position != len(stripped):
        raise ValueError(f"invalid duration {text!r}: {_FORMS}")
    if nanoseconds > _MAX_NANOSECONDS:
        raise ValueError(f"invalid duration {text!r}: out of range (at most about 292 years)")
    return nanoseconds


def _interval_seconds(value: Any) -> float:
    """``interval`` as seconds: a Go or Prometheus duration, or the number 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return 0.0
    if not isinstance(value, str):
        raise ValueError(f"invalid duration: {_FORMS}")
    if value.strip().startswith("-"):
        raise ValueError("must not be negative; 0 turns the limit off")
    try:
        return parse_go_duration(value) / 1e9
    except ValueError as go_error:
        try:
            return parse_duration(value)  # Prometheus' units: 1d, 1w, 1y
        except ValueError:
            raise go_error from None


class RateLimitFile(BaseModel):
    """The ``rate_limit`` section as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    interval: Annotated[float, BeforeValidator(_interval_seconds)] = 0.0
    burst: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] = 0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A limit in force: ``burst`` requests at once, then one per ``interval`` seconds."""

    interval: float
    burst: int


def resolve_rate_limit(section: RateLimitFile | None) -> tuple[RateLimit | None, list[str]]:
    """The limit in force (None: no limit) and the warnings about it."""
    if section is None or section.interval == 0:
        return None, []
    warnings = []
    if section.burst == 0:
        warnings.append(
            "rate_limit.burst: 0 with an interval refuses every request with 429, "
            "as in exporter-toolkit; set burst to 1 or more"
        )
    return RateLimit(interval=section.interval, burst=section.burst), warnings


class TokenBucket:
    """golang.org/x/time/rate's ``Limiter.Allow`` for one ``RateLimit``; the caller gives the time.

    ``now`` is any monotonic clock in seconds. As in Go, a clock that steps back counts no
    elapsed time, and a request short of a whole token by less than a nanosecond's worth of
    refill is let through (Go rounds the wait down to whole nanoseconds).
    """

    def __init__(self, limit: RateLimit) -> None:
        self._per_second = 1.0 / limit.interval
        self._burst = limit.burst
        self._tokens = float(limit.burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        last = now if self._last is None else min(self._last, now)
        tokens = min(self._tokens + (now - last) * self._per_second, float(self._burst))
        tokens -= 1.0
        wait_nanoseconds = math.trunc(-tokens / self._per_second * 1e9) if tokens < 0 else 0
        if self._burst < 1 or wait_nanoseconds > 0:
            return False
        self._last = now
        self._tokens = tokens
        return True
