"""The poll-duration histogram a snapshot carries: counts per bucket, shared between groups."""

from __future__ import annotations

from exporter.state import snapshots
from exporter.state.snapshots import DURATION_BUCKETS, DurationHistogram


def test_observations_land_in_their_bucket_and_add_up() -> None:
    histogram = DurationHistogram().observe(0.02).observe(0.3).observe(100.0)
    assert histogram.count == 3
    assert histogram.total == 100.32
    cumulative = dict(histogram.cumulative())
    assert cumulative[0.05] == 1
    assert cumulative[0.5] == 2
    assert cumulative[DURATION_BUCKETS[-1]] == 2
    assert cumulative[float("inf")] == 3


def test_groups_polled_alike_share_one_counts_tuple() -> None:
    first = DurationHistogram().observe(0.02).observe(0.03)
    second = DurationHistogram().observe(0.04).observe(0.03)
    assert first.counts == second.counts
    assert first.counts is second.counts
    assert first.total != second.total
    other = DurationHistogram().observe(3.0)
    assert other.counts is not first.counts


def test_the_shared_tuples_are_bounded() -> None:
    for count in range(snapshots._MAX_SHARED_COUNTS + 10):
        histogram = DurationHistogram((count, *(0,) * len(DURATION_BUCKETS)))
        histogram.observe(100.0)
    assert len(snapshots._SHARED_COUNTS) <= snapshots._MAX_SHARED_COUNTS
