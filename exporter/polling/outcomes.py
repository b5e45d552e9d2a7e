"""What a poll's outcome is worth a log line: failures, recoveries, CAN times in the future.

Logs on state changes only, so a failing CAN does not flood the log: a warning when a group or
a plan starts failing, an info line when the group recovers, debug for repeats in between. A
circuit opening or closing is logged here too. Pure apart from the log: the poller passes the
group's previous snapshot, the new result and the poll time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from exporter.can.models import CanError, FailureReason, PollResult, Reading
from exporter.config.model import Group
from exporter.polling.resilience import Circuit, CircuitChange
from exporter.state.snapshots import GroupSnapshot

# The poller's logger: these lines are the poller's, whichever module writes them.
log = logging.getLogger("exporter.poller")

# How far a CAN time may be ahead of ours before it is reported as skew.
_FUTURE_TOLERANCE = timedelta(minutes=1)


def log_outcome(
    group: Group,
    previous: GroupSnapshot,
    result: PollResult,
    plan_results: Mapping[str, PollResult] | None,
    now: datetime,
) -> None:
    """Log on state changes only, so a failing CAN does not flood the log."""
    fields: dict[str, object] = {"target": group.target, "group": group.name}
    if result.error is not None:
        repeated = previous.last_reason == result.error.reason
        level = logging.DEBUG if repeated else logging.WARNING
        log.log(level, "poll failed", extra={**fields, **_error_fields(result.error)})
    elif previous.poll_success is False:
        log.info("poll recovered", extra=fields)
    if result.reading is not None:
        _warn_future_times(fields, result.reading, previous.reading, now)
    before = {p.plan: p for p in previous.plans}
    for plan, plan_result in (plan_results or {}).items():
        error = plan_result.error
        if error is None:
            continue
        last = before.get(plan)
        failed_before = last is not None and last.poll_success is False
        newly_missing = error.reason is FailureReason.PLAN_NOT_FOUND and not (last and last.missing)
        if not failed_before or newly_missing:
            log.warning("plan poll failed", extra={**fields, "plan": plan, **_error_fields(error)})


def log_circuit_change(target: str, change: CircuitChange, circuit: Circuit) -> None:
    """A target's circuit opened (every group failing) or closed (it answers again)."""
    if change is CircuitChange.OPENED:
        log.warning(
            "every group of the target is failing; circuit open, probing one request at a time",
            extra={"target": target, "groups": circuit.failing_groups},
        )
        return
    log.info("target answers again; circuit closed", extra={"target": target})


def _warn_future_times(
    fields: Mapping[str, object], reading: Reading, previous: Reading | None, now: datetime
) -> None:
    for can_field, attribute in (
        ("latestDateTime", "latest_data_time"),
        ("latestRefreshTime", "latest_refresh_time"),
    ):
        moment: datetime | None = getattr(reading, attribute)
        before: datetime | None = getattr(previous, attribute) if previous else None
        if moment is not None and _in_future(moment, now) and not _in_future(before, now):
            log.warning(
                "CAN time is in the future: check the target's timezone or clock skew",
                extra={**fields, "field": can_field, "value": moment.isoformat()},
            )


def _error_fields(error: CanError) -> dict[str, object]:
    return {
        "reason": error.reason.value,
        "error": error.message,
        "error_msg": error.error_msg,
        "trace_id": error.trace_id,
    }


def _in_future(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and moment - now > _FUTURE_TOLERANCE
