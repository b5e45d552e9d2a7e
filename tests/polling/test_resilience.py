"""Backoff delays, the rate limiter and the circuit: pure arithmetic and state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.can.models import FailureReason
from exporter.can.ratelimit import RateLimiter
from exporter.polling.resilience import TARGET_FAILURES, Circuit, CircuitChange, backoff_delay

NOW = datetime(2024, 9, 2, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 60.0), (1, 60.0), (2, 120.0), (3, 240.0), (4, 480.0), (5, 600.0), (50, 600.0)],
)
def test_backoff_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff_delay(60.0, failures, 600.0, draw=0.0) == expected


def test_backoff_jitter_shortens_by_at_most_a_tenth() -> None:
    assert backoff_delay(60.0, 3, 600.0, draw=0.999999) == pytest.approx(240.0 * 0.9, rel=1e-5)
    assert backoff_delay(60.0, 10, 600.0, draw=0.5) == pytest.approx(570.0)


def test_backoff_never_below_the_interval() -> None:
    # A cap below the interval means no backoff, never a faster poll.
    assert backoff_delay(3600.0, 5, 600.0, draw=0.99) == 3600.0
    assert backoff_delay(60.0, 2, 600.0, draw=0.99) >= 60.0


def test_backoff_survives_a_group_failing_for_months() -> None:
    assert backoff_delay(60.0, 10**9, 600.0, draw=0.0) == 600.0


def test_rate_limiter_allows_a_burst_then_spaces() -> None:
    limiter = RateLimiter(rate=4.0)  # burst of 4
    waits = [limiter.reserve(now=100.0) for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 0.0, 0.25, 0.5]


def test_rate_limiter_refills_with_time() -> None:
    limiter = RateLimiter(rate=2.0, burst=1)
    assert limiter.reserve(now=0.0) == 0.0
    assert limiter.reserve(now=0.0) == 0.5
    # One second later both slots have passed: no wait.
    assert limiter.reserve(now=1.5) == 0.0
    assert limiter.reserve(now=1.5) == pytest.approx(0.5)


def test_rate_limiter_below_one_per_second() -> None:
    limiter = RateLimiter(rate=0.5)
    assert limiter.reserve(now=0.0) == 0.0
    assert limiter.reserve(now=0.0) == 2.0


GROUPS = {"a", "b"}


def test_circuit_opens_only_when_every_group_fails_at_the_target_level() -> None:
    circuit = Circuit()
    assert circuit.record("a", FailureReason.TIMEOUT, GROUPS) is None
    assert not circuit.is_open
    assert circuit.record("b", FailureReason.CONNECTION, GROUPS) is CircuitChange.OPENED
    assert circuit.is_open
    assert circuit.failing_groups == 2


@pytest.mark.parametrize("reason", [FailureReason.PLAN_NOT_FOUND, FailureReason.API_ERROR])
def test_answers_about_plans_do_not_open_the_circuit(reason: FailureReason) -> None:
    assert reason not in TARGET_FAILURES
    circuit = Circuit()
    circuit.record("a", FailureReason.TIMEOUT, GROUPS)
    assert circuit.record("b", reason, GROUPS) is None
    assert not circuit.is_open


def test_a_success_in_between_keeps_it_closed() -> None:
    circuit = Circuit()
    circuit.record("a", FailureReason.HTTP_STATUS, GROUPS)
    circuit.record("a", None, GROUPS)
    assert circuit.record("b", FailureReason.HTTP_STATUS, GROUPS) is None


def test_an_answer_closes_an_open_circuit() -> None:
    circuit = Circuit()
    circuit.record("a", FailureReason.AUTH, GROUPS)
    circuit.record("b", FailureReason.AUTH, GROUPS)
    assert circuit.record("a", FailureReason.AUTH, GROUPS) is None  # still open
    assert circuit.record("a", FailureReason.PLAN_NOT_FOUND, GROUPS) is CircuitChange.CLOSED
    assert not circuit.is_open


def test_removed_groups_are_forgotten() -> None:
    circuit = Circuit()
    circuit.record("gone", FailureReason.TIMEOUT, {"gone", "a"})
    circuit.forget("gone")  # it left the config; "a" failing alone is every group now
    assert circuit.record("a", FailureReason.TIMEOUT, {"a"}) is CircuitChange.OPENED
    assert circuit.failing_groups == 1


def test_a_group_not_of_the_target_is_not_counted() -> None:
    circuit = Circuit()
    circuit.record("stray", FailureReason.TIMEOUT, {"a", "b"})
    assert circuit.failing_groups == 0


def test_one_probe_at_a_time() -> None:
    circuit = Circuit()
    assert circuit.start_probe(NOW)
    assert not circuit.start_probe(NOW)
    circuit.end_probe()
    assert circuit.start_probe(NOW)


def _opened() -> Circuit:
    circuit = Circuit()
    circuit.record("a", FailureReason.CONNECTION, GROUPS)
    assert circuit.record("b", FailureReason.CONNECTION, GROUPS) is CircuitChange.OPENED
    return circuit


def test_probes_back_off_like_a_failing_group() -> None:
    circuit = _opened()
    now = NOW
    waits = []
    for _ in range(5):
        circuit.hold_probes(now, interval=60, max_backoff=600, draw=0.0)
        assert circuit.next_probe is not None
        waits.append((circuit.next_probe - now).total_seconds())
        assert not circuit.start_probe(circuit.next_probe - timedelta(seconds=1))
        now = circuit.next_probe
        assert circuit.start_probe(now)
        circuit.end_probe()
        assert circuit.record("a", FailureReason.TIMEOUT, GROUPS) is None  # the probe failed
    assert waits == [120, 240, 480, 600, 600]


def test_an_answer_lifts_the_hold() -> None:
    circuit = _opened()
    circuit.hold_probes(NOW, interval=60, max_backoff=600, draw=0.0)
    assert circuit.record("a", None, GROUPS) is CircuitChange.CLOSED
    assert circuit.next_probe is None
    assert circuit.start_probe(NOW)
    # Opened again later, the backoff starts over.
    circuit.end_probe()
    assert circuit.record("a", FailureReason.TIMEOUT, GROUPS) is CircuitChange.OPENED  # b still
    circuit.hold_probes(NOW, interval=60, max_backoff=600, draw=0.0)
    assert circuit.next_probe == NOW + timedelta(seconds=120)
