"""per_plan: auto's pure decisions: when to ask each plan, which plans to export."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from exporter.can.models import CanError, FailureReason, PollResult
from exporter.config.model import ThresholdValues
from exporter.polling.drilldown import Drilldown, decide, offending, plans_to_ask
from tests.helpers.builders import NOW, make_group, make_reading

HOUR = 3600.0
# Warning thresholds of 2h for both ages, critical ones far off.
GROUP = make_group(
    plans=("p1", "p2", "p3"),
    data_lag=ThresholdValues(2 * HOUR, 100 * HOUR),
    refresh_age=ThresholdValues(2 * HOUR, 100 * HOUR),
)


def _reading(
    lag: float | None = 60.0, age: float | None = 60.0, *, not_ready: bool = False
) -> PollResult:
    """A reading whose data lag and refresh age at NOW are ``lag`` and ``age`` seconds."""
    data = NOW - timedelta(seconds=lag) if lag is not None else None
    refresh = NOW - timedelta(seconds=age) if age is not None else None
    return PollResult(make_reading(data, refresh, not_ready=not_ready), None, 0.01)


def _failed(reason: FailureReason) -> PollResult:
    return PollResult(None, CanError(reason, "boom"), 0.01)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (_reading(), Drilldown.CLEAR),
        (_reading(None, None), Drilldown.CLEAR),
        # strictly over the warning threshold, as the alerts compare
        (_reading(lag=2 * HOUR), Drilldown.CLEAR),
        (_reading(lag=2 * HOUR + 1), Drilldown.ASK_PLANS),
        (_reading(age=2 * HOUR), Drilldown.CLEAR),
        (_reading(age=2 * HOUR + 1), Drilldown.ASK_PLANS),
        (_reading(not_ready=True), Drilldown.ASK_PLANS),
        (_reading(None, None, not_ready=True), Drilldown.ASK_PLANS),
        (_failed(FailureReason.PLAN_NOT_FOUND), Drilldown.ASK_PLANS),
        # failures that say nothing about a plan keep the plans as they were
        (_failed(FailureReason.TIMEOUT), Drilldown.KEEP),
        (_failed(FailureReason.CONNECTION), Drilldown.KEEP),
        (_failed(FailureReason.AUTH), Drilldown.KEEP),
        (_failed(FailureReason.API_ERROR), Drilldown.KEEP),
        (_failed(FailureReason.HTTP_STATUS), Drilldown.KEEP),
        (_failed(FailureReason.INVALID_RESPONSE), Drilldown.KEEP),
    ],
    ids=lambda value: value.value if isinstance(value, Drilldown) else "",
)
def test_decide(result: PollResult, expected: Drilldown) -> None:
    assert decide(GROUP, result, NOW) is expected


def test_ages_are_taken_at_the_poll_time() -> None:
    result = _reading(lag=HOUR)
    assert decide(GROUP, result, NOW) is Drilldown.CLEAR
    assert decide(GROUP, result, NOW + timedelta(hours=1, seconds=1)) is Drilldown.ASK_PLANS


def test_a_disabled_warning_threshold_never_asks() -> None:
    group = replace(GROUP, data_lag=ThresholdValues(None, 100 * HOUR))
    assert decide(group, _reading(lag=50 * HOUR), NOW) is Drilldown.CLEAR


def test_offending_plans_are_the_failed_and_the_unhealthy() -> None:
    results = {
        "fresh": _reading(),
        "gone": _failed(FailureReason.PLAN_NOT_FOUND),
        "slow": _failed(FailureReason.TIMEOUT),
        "lagging": _reading(lag=3 * HOUR),
        "stale": _reading(age=3 * HOUR),
        "not_ready": _reading(not_ready=True),
        "never": _reading(None, None),
    }
    assert list(offending(GROUP, results, NOW)) == ["gone", "slow", "lagging", "stale", "not_ready"]


def test_plans_to_ask_are_the_first_in_config_order() -> None:
    assert plans_to_ask(replace(GROUP, drilldown_max_plans=2)) == ("p1", "p2")
    assert plans_to_ask(replace(GROUP, drilldown_max_plans=50)) == ("p1", "p2", "p3")
