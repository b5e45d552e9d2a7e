"""Spacing of the requests to one CAN target (its ``rate_limit``), retries included."""

from __future__ import annotations

import math


class RateLimiter:
    """Spaces request starts to at most ``rate`` per second, allowing a burst of ``burst``.

    The generic cell rate algorithm: each request reserves the next slot, and ``reserve``
    says how long to wait for it, so concurrent callers queue up in order.
    """

    def __init__(self, rate: float, burst: int | None = None) -> None:
        self._spacing = 1.0 / rate
        burst = burst if burst is not None else max(1, math.floor(rate))
        self._tolerance = (burst - 1) * self._spacing
        self._theoretical_arrival = -math.inf

    def reserve(self, now: float) -> float:
        arrival = max(self._theoretical_arrival, now)
        self._theoretical_arrival = arrival + self._spacing
        return max(0.0, arrival - self._tolerance - now)
