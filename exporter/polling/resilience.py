"""What keeps a failing CAN from being hammered: backoff delays, a request-rate limiter and a
per-target circuit. Pure state and arithmetic; the caller supplies the time and the randomness.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from enum import Enum

from exporter.can.models import FailureReason

# Failures that say the target as a whole is unwell. plan_not_found and api_error are answers
# from a working CAN about one group's plans.
TARGET_FAILURES = frozenset(
    {
        FailureReason.TIMEOUT,
        FailureReason.CONNECTION,
        FailureReason.HTTP_STATUS,
        FailureReason.AUTH,
        FailureReason.INVALID_RESPONSE,
    }
)
# The backoff delay is drawn from [1 - _JITTER, 1] of its nominal value, so groups that
# started failing together drift apart.
_JITTER = 0.1


def backoff_delay(
    interval: float, consecutive_failures: int, max_backoff: float, draw: float
) -> float:
    """Seconds until the next poll of a group after ``consecutive_failures`` failed polls.

    The interval doubles with every failure after the first, up to ``max_backoff``; it is never
    shorter than the interval itself. ``draw`` is a uniform random number in [0, 1).
    """
    if consecutive_failures <= 1:
        return interval
    cap = max(interval, max_backoff)
    # min() before the power would overflow for a group that has failed for weeks.
    exponent = min(consecutive_failures - 1, 64)
    nominal = min(interval * 2.0**exponent, cap)
    return max(interval, nominal * (1.0 - _JITTER * draw))


class CircuitChange(Enum):
    OPENED = "opened"
    CLOSED = "closed"


class Circuit:
    """One target's circuit: open while every one of its groups fails at the target level.

    While open, polls are not sent except one probe at a time, and probes back off as a
    failing group's polls do: the opening failure counts as the first, so the first probe
    may go after twice the interval, the next after four times, up to ``max_backoff``. The
    first probe that CAN answers (even with an error about a plan) closes it.
    """

    def __init__(self) -> None:
        self.is_open = False
        self._failing: set[str] = set()
        self._probing = False
        # Target-level failures since the circuit opened (the opening one included).
        self._open_failures = 0
        self._next_probe: datetime | None = None

    def record(
        self, group: str, reason: FailureReason | None, groups: Collection[str]
    ) -> CircuitChange | None:
        """Note a group's poll outcome (``reason`` None for success); say if the state flipped.

        ``groups`` are the target's groups now; a group that left them must be ``forget``-ed,
        which keeps this O(1) per poll however many groups the target has.
        """
        answered = reason is None or reason not in TARGET_FAILURES
        if answered:
            self._failing.discard(group)
        elif group in groups:
            self._failing.add(group)
        if self.is_open and answered:
            self.is_open = False
            self._open_failures = 0
            self._next_probe = None
            return CircuitChange.CLOSED
        if self.is_open:
            self._open_failures += 1
            return None
        if groups and len(self._failing) >= len(groups):
            self.is_open = True
            self._open_failures = 1
            return CircuitChange.OPENED
        return None

    def forget(self, group: str) -> None:
        """The group left the target's configuration."""
        self._failing.discard(group)

    def hold_probes(self, now: datetime, interval: float, max_backoff: float, draw: float) -> None:
        """After the circuit opened or a probe failed: no probe before the backed-off delay.

        ``interval`` and ``max_backoff`` are those of the group whose poll just failed;
        ``draw`` is a uniform random number in [0, 1), as for ``backoff_delay``.
        """
        delay = backoff_delay(interval, self._open_failures + 1, max_backoff, draw)
        self._next_probe = now + timedelta(seconds=delay)

    @property
    def next_probe(self) -> datetime | None:
        """While open: the earliest time the next probe may go (None: at once)."""
        return self._next_probe if self.is_open else None

    def start_probe(self, now: datetime) -> bool:
        """While open: True if the caller may send the one probe (and must call end_probe)."""
        if self._probing or (self._next_probe is not None and now < self._next_probe):
            return False
        self._probing = True
        return True

    def end_probe(self) -> None:
        self._probing = False

    @property
    def failing_groups(self) -> int:
        return len(self._failing)
