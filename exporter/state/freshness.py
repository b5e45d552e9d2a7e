"""What "fresh" means for a group, and exact accounting of the time it was.

A group is fresh at an instant when none of the shipped freshness alerts of its SLO's
severity holds on its last reading (``fresh_below``: ``critical`` counts the critical data lag
and refresh age; ``warning`` counts every freshness alert of warning severity or above: the
warning thresholds, not ready, a refresh overdue, data periods behind).

On one reading every one of those conditions, once true, stays true as time passes (ages
grow, deadlines and expected periods only move on), so a reading is fresh up to one instant
and stale after it: ``stale_from`` computes that instant from the reading (data time plus the
threshold, counted in business seconds for a group with a calendar; the deadline of the first
cron fire after the refresh; the start of the period the data falls behind in). The ledger
counts fresh and observed seconds between readings exactly, whether or not anyone scraped
when the threshold was crossed. Time in one of the group's maintenance windows counts neither
fresh nor observed, and the group is then neither fresh nor stale (``is_fresh`` is None, as
before the first reading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from exporter.can.models import Reading
from exporter.config.maintenance import MaintenanceWindow, uncovered_seconds
from exporter.config.model import FreshBelow, Group

_SEVERITIES = {
    FreshBelow.CRITICAL: ("critical",),
    FreshBelow.WARNING: ("warning", "critical"),
}


def stale_from(group: Group, reading: Reading) -> float:
    """The Unix time after which the group is not fresh on ``reading``: ``-inf`` when it is
    not fresh at all, ``inf`` when nothing on the reading ever makes it stale."""
    data = reading.latest_data_time.timestamp() if reading.latest_data_time else None
    refresh = reading.latest_refresh_time.timestamp() if reading.latest_refresh_time else None
    bounds: list[float] = []
    for severity in _SEVERITIES[group.fresh_below]:
        lag_threshold = getattr(group.data_lag, severity)
        if lag_threshold is not None and data is not None:
            bounds.append(_crossing(group, data, lag_threshold))
        age_threshold = getattr(group.refresh_age, severity)
        if age_threshold is not None and refresh is not None:
            bounds.append(_crossing(group, refresh, age_threshold))
    if group.fresh_below is FreshBelow.WARNING:
        if reading.has_not_ready:
            return -math.inf
        if group.schedule is not None:
            bounds.append(group.schedule.overdue_from(refresh))
        if group.data_periods is not None and data is not None:
            bounds.append(group.data_periods.behind_from(data))
    return min(bounds, default=math.inf)


def _crossing(group: Group, since: float, threshold: float) -> float:
    """When an age from ``since`` passes ``threshold``: in business seconds on the group's
    calendar (the alerts compare the business lag and age there), else on the wall clock."""
    if group.calendar is not None:
        return group.calendar.add_business_seconds(since, threshold)
    return since + threshold


@dataclass(frozen=True, slots=True)
class FreshnessLedger:
    """Seconds fresh and observed up to ``since``, and the current reading's verdict after it:
    fresh until ``stale_from``. Unix times; ``since`` is None until the first reading (unknown
    time counts neither way), and the time in the ``windows`` (maintenance) does not count."""

    fresh_seconds: float = 0.0
    observed_seconds: float = 0.0
    since: float | None = None
    stale_from: float = -math.inf
    windows: tuple[MaintenanceWindow, ...] = ()

    def is_fresh(self, now: float) -> bool | None:
        """Fresh at ``now``; None while unknown or in a maintenance window."""
        if self.since is None or any(window.covers(now) for window in self.windows):
            return None
        return now <= self.stale_from

    def totals(self, now: float) -> tuple[float, float]:
        """Seconds fresh and seconds observed up to ``now``, outside the windows."""
        if self.since is None:
            return self.fresh_seconds, self.observed_seconds
        if not self.windows:  # most groups, every scrape: no spans to sort
            elapsed = max(0.0, now - self.since)
            fresh = min(elapsed, max(0.0, self.stale_from - self.since))
            return self.fresh_seconds + fresh, self.observed_seconds + elapsed
        spans = [(window.start, window.end) for window in self.windows]
        observed = uncovered_seconds(self.since, now, spans)
        fresh = uncovered_seconds(self.since, min(now, self.stale_from), spans)
        return self.fresh_seconds + fresh, self.observed_seconds + observed

    def restarted(
        self, at: float, stale_from: float, windows: tuple[MaintenanceWindow, ...] | None = None
    ) -> FreshnessLedger:
        """The ledger from ``at`` on, under a new verdict (a new reading, or new thresholds)
        and, when given, new maintenance ``windows``: the time before stays as counted."""
        fresh, observed = self.totals(at)
        # A clock stepped back must not count the same seconds twice.
        since = at if self.since is None else max(at, self.since)
        kept = self.windows if windows is None else windows
        return FreshnessLedger(fresh, observed, since, stale_from, kept)


# A group before its first reading: nothing counted yet.
NOT_YET_KNOWN = FreshnessLedger()
