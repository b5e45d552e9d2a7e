"""Change detection in next_snapshot: regressions, refreshes without new data, last change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.can.models import CanError, FailureReason, PollResult
from exporter.state.snapshots import DataChanges, GroupSnapshot, next_snapshot
from tests.helpers.builders import NOW, make_group, make_reading

DAY = datetime(2024, 9, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _reading(data_hour: int | None, refresh_hour: int | None) -> PollResult:
    """A successful poll whose times are hours after DAY (None: CAN sent null)."""
    reading = make_reading(
        None if data_hour is None else DAY + timedelta(hours=data_hour),
        None if refresh_hour is None else DAY + timedelta(hours=refresh_hour),
    )
    return PollResult(reading, None, 0.1)


def _failed() -> PollResult:
    return PollResult(None, CanError(FailureReason.TIMEOUT, "boom"), 10.0)


def _run(*results: PollResult) -> list[DataChanges]:
    """Poll once a minute from NOW; the changes after each poll."""
    snapshot = GroupSnapshot(make_group())
    seen = []
    for index, result in enumerate(results):
        snapshot = next_snapshot(snapshot, result, NOW + index * MINUTE)
        seen.append(snapshot.changes)
    return seen


def _counts(changes: list[DataChanges]) -> list[tuple[int, int]]:
    return [(c.regressions, c.refreshes_without_new_data) for c in changes]


def test_nothing_before_the_first_poll() -> None:
    changes = GroupSnapshot(make_group()).changes
    assert changes == DataChanges()
    assert changes.last_change_time is None


def test_the_first_reading_counts_as_a_change() -> None:
    (first,) = _run(_reading(0, 1))
    assert first.last_change_time == NOW
    assert (first.regressions, first.refreshes_without_new_data) == (0, 0)


def test_refreshes_without_new_data_count_up_and_reset_when_data_advances() -> None:
    changes = _run(
        _reading(0, 1),
        _reading(0, 2),  # refreshed, same data
        _reading(0, 3),
        _reading(0, 3),  # no new refresh either: the count stays
        _reading(0, 4),
        _reading(1, 5),  # new data
        _reading(1, 6),
    )
    assert [c.refreshes_without_new_data for c in changes] == [0, 1, 2, 2, 3, 0, 1]
    assert [c.regressions for c in changes] == [0] * 7
    # The data time changed at the first poll and at the sixth only.
    assert [c.last_change_time for c in changes] == [NOW] * 5 + [NOW + 5 * MINUTE] * 2


def test_a_regression_is_counted_once_and_becomes_the_new_baseline() -> None:
    changes = _run(
        _reading(12, 13),
        _reading(0, 14),  # back 12 hours
        _reading(0, 15),  # same (rolled back) data: no second regression
        _reading(1, 16),  # advancing from the rolled-back time is new data
        _reading(0, 17),  # back again
    )
    assert _counts(changes) == [(0, 0), (1, 0), (1, 1), (1, 0), (2, 0)]
    assert [c.last_change_time for c in changes] == [
        NOW,
        NOW + MINUTE,
        NOW + MINUTE,
        NOW + 3 * MINUTE,
        NOW + 4 * MINUTE,
    ]


def test_a_regression_ends_the_streak_of_refreshes_without_new_data() -> None:
    changes = _run(_reading(5, 6), _reading(5, 7), _reading(5, 8), _reading(4, 9))
    assert _counts(changes) == [(0, 0), (0, 1), (0, 2), (1, 0)]


def test_a_failed_poll_changes_nothing() -> None:
    changes = _run(_reading(0, 1), _reading(0, 2), _failed(), _failed(), _reading(0, 3))
    assert changes[2] == changes[3] == changes[1]
    # The refresh after the outage is compared with the last good reading's.
    assert [c.refreshes_without_new_data for c in changes] == [0, 1, 1, 1, 2]


def test_a_failed_first_poll_leaves_no_last_change() -> None:
    (after,) = _run(_failed())
    assert after == DataChanges()


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        # A null data time is neither a change nor a regression, and is not "the same data".
        ([_reading(5, 1), _reading(None, 2), _reading(5, 3)], [(0, 0), (0, 0), (0, 1)]),
        # The data time after a null is compared with the last one that was not null.
        ([_reading(5, 1), _reading(None, 2), _reading(4, 3)], [(0, 0), (0, 0), (1, 0)]),
        # A null refresh time is no refresh, and keeps the refresh baseline.
        ([_reading(5, 1), _reading(5, None), _reading(5, 1)], [(0, 0), (0, 0), (0, 0)]),
        ([_reading(5, 1), _reading(5, None), _reading(5, 2)], [(0, 0), (0, 0), (0, 1)]),
        # Never any data: nothing to compare.
        ([_reading(None, 1), _reading(None, 2)], [(0, 0), (0, 0)]),
    ],
)
def test_null_times(results: list[PollResult], expected: list[tuple[int, int]]) -> None:
    assert _counts(_run(*results)) == expected


def test_the_first_data_time_after_nulls_is_the_first_change() -> None:
    changes = _run(_reading(None, 1), _reading(None, 2), _reading(3, 3))
    assert [c.last_change_time for c in changes] == [None, None, NOW + 2 * MINUTE]


def test_a_null_data_time_keeps_the_last_change_time() -> None:
    changes = _run(_reading(5, 1), _reading(None, 2))
    assert changes[1].last_change_time == NOW
    assert changes[1].data_time == DAY + timedelta(hours=5)
