"""``per_plan: auto``: when to ask CAN about a group's plans one by one, and which to export.

An auto group is asked about as a whole, one request per poll. When that answer shows the group
unhealthy (CAN says a plan does not exist, a table is not ready, or the data lag or refresh age
is over the group's warning threshold), the poller also asks about each of its first
``drilldown_max_plans`` plans alone, and the group exports plan-level series for the plans that
are themselves unhealthy or could not be read. Once the group's answer is healthy again, the
plan series go. Everything here is pure: the poller passes the poll time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum

from exporter.can.models import FailureReason, PollResult, Reading
from exporter.config.model import Group, ThresholdValues


class Drilldown(Enum):
    """What an auto group's answer means for its plan-level series."""

    ASK_PLANS = "ask_plans"  # unhealthy: ask each plan alone and export the offending ones
    CLEAR = "clear"  # healthy: no plan series
    KEEP = "keep"  # the group's poll failed for another reason: the plans are unknown


def decide(group: Group, result: PollResult, now: datetime) -> Drilldown:
    """How the group's own answer at ``now`` bears on its plans.

    A failure other than a missing plan (a timeout, a 5xx, credentials refused) says nothing
    about any plan, and asking each plan would only add load to a CAN in trouble: the plan
    series stay as they were, as a failed poll keeps every last reading.
    """
    if result.error is not None:
        if result.error.reason is FailureReason.PLAN_NOT_FOUND:
            return Drilldown.ASK_PLANS
        return Drilldown.KEEP
    if result.reading is not None and unhealthy(group, result.reading, now):
        return Drilldown.ASK_PLANS
    return Drilldown.CLEAR


def unhealthy(group: Group, reading: Reading, now: datetime) -> bool:
    """Not ready, or a lag or age over the group's warning threshold, as the alerts compare
    them: strictly over, with the age computed as the collector computes it."""
    return (
        reading.has_not_ready
        or _over_warning(reading.latest_data_time, group.data_lag, now)
        or _over_warning(reading.latest_refresh_time, group.refresh_age, now)
    )


def plans_to_ask(group: Group) -> tuple[str, ...]:
    """The plans a drilldown asks about: the first ``drilldown_max_plans``, in config order."""
    return group.plans[: group.drilldown_max_plans]


def offending(
    group: Group, results: Mapping[str, PollResult], now: datetime
) -> dict[str, PollResult]:
    """The plans to export: those that failed (a missing plan included) or are unhealthy."""
    return {
        plan: result
        for plan, result in results.items()
        if result.reading is None or unhealthy(group, result.reading, now)
    }


def _over_warning(moment: datetime | None, threshold: ThresholdValues, now: datetime) -> bool:
    if moment is None or threshold.warning is None:
        return False
    return now.timestamp() - moment.timestamp() > threshold.warning
