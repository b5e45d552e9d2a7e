"""Maintenance windows in the freshness ledger: their time counts neither fresh nor observed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from exporter.can.models import PollResult
from exporter.config.maintenance import MaintenanceWindow
from exporter.config.model import Group, ThresholdValues
from exporter.state.snapshots import GroupSnapshot, next_snapshot, regrouped
from tests.helpers.builders import NOW, make_group, make_reading

HOUR = 3600.0
# Critical at 10h of data lag; the refresh age never matters here.
LAG = ThresholdValues(warning=None, critical=10 * HOUR)
AGE = ThresholdValues(warning=None, critical=None)


def _at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def _window(start: float, end: float, *, from_target: bool = False) -> MaintenanceWindow:
    """A window from NOW + ``start`` hours to NOW + ``end`` hours."""
    return MaintenanceWindow(_at(start).timestamp(), _at(end).timestamp(), "upgrade", from_target)


def _group(*windows: MaintenanceWindow) -> Group:
    return replace(make_group(data_lag=LAG, refresh_age=AGE), maintenance=windows)


def _polled(group: Group, data_age_hours: float, at: float = 0.0) -> GroupSnapshot:
    """The group after a poll at NOW + ``at`` hours reading data ``data_age_hours`` old."""
    reading = make_reading(_at(at - data_age_hours), _at(at))
    return next_snapshot(GroupSnapshot(group), PollResult(reading, None, 0.1), _at(at))


def _totals(snapshot: GroupSnapshot, hours: float) -> tuple[float, float]:
    return snapshot.freshness.totals(_at(hours).timestamp())


def _fresh(snapshot: GroupSnapshot, hours: float) -> bool | None:
    return snapshot.freshness.is_fresh(_at(hours).timestamp())


def test_a_window_between_two_scrapes_is_left_out_to_the_second() -> None:
    # Fresh all along (data 1h old); scrapes at NOW+30m and NOW+2h, the window 1:00-1:30.
    snapshot = _polled(_group(_window(1, 1.5)), 1)
    assert _totals(snapshot, 0.5) == (0.5 * HOUR, 0.5 * HOUR)
    assert _fresh(snapshot, 1.25) is None
    assert _totals(snapshot, 1.25) == (HOUR, HOUR)
    assert _fresh(snapshot, 1.5) is True  # the end is outside the window
    assert _totals(snapshot, 2) == (1.5 * HOUR, 1.5 * HOUR)


def test_overlapping_windows_count_their_union_once() -> None:
    snapshot = _polled(_group(_window(1, 2), _window(1.5, 3, from_target=True)), 1)
    assert _totals(snapshot, 4) == (2 * HOUR, 2 * HOUR)


def test_a_window_in_a_stale_stretch_takes_from_the_observed_seconds_only() -> None:
    # Data 8h old: stale from NOW+2h. The window 3:00-4:00 falls in the stale stretch.
    snapshot = _polled(_group(_window(3, 4)), 8)
    assert _fresh(snapshot, 2.5) is False
    assert _fresh(snapshot, 3.5) is None
    assert _totals(snapshot, 5) == (2 * HOUR, 4 * HOUR)


def test_a_window_across_the_crossing_takes_from_both() -> None:
    # Stale from NOW+2h; the window 1:30-2:30 covers half an hour of each.
    snapshot = _polled(_group(_window(1.5, 2.5)), 8)
    assert _totals(snapshot, 5) == (1.5 * HOUR, 4 * HOUR)


def test_a_poll_during_a_window_restarts_the_ledger_without_counting_it() -> None:
    group = _group(_window(1, 2))
    snapshot = _polled(group, 1)
    again = next_snapshot(
        snapshot, PollResult(make_reading(_at(0.5), _at(1.5)), None, 0.1), _at(1.5)
    )
    assert again.freshness.since == _at(1.5).timestamp()
    assert _totals(again, 3) == (2 * HOUR, 2 * HOUR)


def test_a_reload_that_adds_a_window_for_now_stops_the_count_from_the_reload() -> None:
    snapshot = _polled(_group(), 1)
    # At NOW+1h a reload adds a window that began at NOW+30m and ends at NOW+3h: the hour
    # before the reload stays counted as the config then judged it.
    reloaded = regrouped(snapshot, _group(_window(0.5, 3)), _at(1))
    assert _fresh(reloaded, 1) is None
    assert _totals(reloaded, 2) == (HOUR, HOUR)
    assert _totals(reloaded, 4) == (2 * HOUR, 2 * HOUR)
    assert _fresh(reloaded, 4) is True


def test_a_reload_that_removes_a_window_counts_again_from_the_reload() -> None:
    snapshot = _polled(_group(_window(0, 10)), 1)
    reloaded = regrouped(snapshot, _group(), _at(2))
    assert _totals(reloaded, 3) == (HOUR, HOUR)
