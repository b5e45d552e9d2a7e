"""exporter-toolkit's rate_limit: Go durations, the settings, and the token bucket against Go's own.

The bucket's expected answers were recorded from golang.org/x/time/rate (rate.go at golang/time
commit 2b4e439, go1.19): for each schedule, ``rate.NewLimiter(rate.Every(interval), burst)``
asked ``AllowN(base.Add(offset), 1)`` at each offset in turn.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from exporter.config.yamlfile import validation_problems
from exporter.web.ratelimit import (
    RateLimit,
    RateLimitFile,
    TokenBucket,
    parse_go_duration,
    resolve_rate_limit,
)

# (name, interval in seconds, burst, [(offset in ms, allowed)]), as Go answered.
GO_RECORDINGS: list[tuple[str, float, int, list[tuple[int, bool]]]] = [
    (
        "burst 3, one per second",
        1.0,
        3,
        [
            (0, True), (0, True), (0, True), (0, False), (500, False), (999, False),
            (1000, True), (1000, False), (1500, False), (2000, True), (2500, False),
            (3000, True), (3000, False),
            (10000, True), (10000, True), (10000, True), (10000, False), (10000, False),
        ],
    ),
    (
        "refused requests take nothing",
        1.0,
        1,
        [
            (0, True), (300, False), (600, False), (900, False), (1000, True), (1100, False),
            (1900, False), (2000, True),
        ],
    ),
    (
        "100ms steps",
        0.1,
        1,
        [
            (0, True), (100, True), (150, False), (200, True), (300, True), (400, True),
            (500, True), (600, True), (700, True), (800, True), (900, True), (1000, True),
            (1000, False), (1100, True),
        ],
    ),
    (
        "333ms, burst 2",
        0.333,
        2,
        [
            (0, True), (0, True), (0, False), (333, True), (666, True), (998, False),
            (999, True), (1332, True), (1333, False), (1333, False), (1665, True), (1998, True),
        ],
    ),
    ("burst 0 refuses all", 1.0, 0, [(0, False), (1000, False), (100000, False)]),
    (
        "clock steps back",
        1.0,
        2,
        [
            (5000, True), (5000, True), (5000, False), (4000, False), (4500, False),
            (5500, False), (6000, True), (6000, False), (6500, False), (7000, True),
        ],
    ),
    (
        "1.5s",
        1.5,
        1,
        [(0, True), (1499, False), (1500, True), (2999, False), (3000, True), (3001, False)],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("interval", "burst", "schedule"),
    [
        pytest.param(interval, burst, schedule, id=name)
        for name, interval, burst, schedule in GO_RECORDINGS
    ],
)
def test_token_bucket_answers_as_golang_rate_limiter(
    interval: float, burst: int, schedule: list[tuple[int, bool]]
) -> None:
    bucket = TokenBucket(RateLimit(interval=interval, burst=burst))
    base = 12_345.0  # a monotonic clock starts anywhere
    answers = [(offset, bucket.allow(base + offset / 1000)) for offset, _ in schedule]
    assert answers == schedule


def test_a_long_run_lets_through_burst_plus_one_per_interval() -> None:
    bucket = TokenBucket(RateLimit(interval=0.25, burst=5))
    allowed = sum(bucket.allow(step / 1000) for step in range(10_001))  # every ms, 0 s to 10 s
    assert allowed == 5 + 40


# --- Go durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("0s", 0),
        ("1s", 1_000_000_000),
        ("+1s", 1_000_000_000),
        ("1.5s", 1_500_000_000),
        (".5s", 500_000_000),
        ("5.s", 5_000_000_000),
        ("300ms", 300_000_000),
        ("100us", 100_000),
        ("100\u00b5s", 100_000),
        ("100\u03bcs", 100_000),
        ("7ns", 7),
        ("1h30m", 5_400_000_000_000),
        ("2h45m0.5s", 9_900_500_000_000),
        ("1s1m", 61_000_000_000),  # Go takes units in any order
        ("0.0000000015s", 1),  # below a nanosecond is dropped
        ("2562047h47m16.854775807s", 2**63 - 1),
    ],
)
def test_parse_go_duration(text: str, nanoseconds: int) -> None:
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid duration ''"),
        ("1", "invalid duration '1'"),
        ("s", "invalid duration 's'"),
        (".s", "invalid duration '.s'"),
        ("1d", "invalid duration '1d'"),
        ("1.2.3s", "invalid duration '1.2.3s'"),
        ("-1s", "invalid duration '-1s'"),
        ("1 s", "invalid duration '1 s'"),
        ("2562047h47m16.854775808s", "out of range"),
        ("9" * 65 + "s", "longer than 64 characters"),
    ],
)
def test_parse_go_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_go_duration(text)


# --- the rate_limit section ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "interval", "burst"),
    [
        ({"interval": "1s", "burst": 10}, 1.0, 10),
        ({"interval": "500ms", "burst": 1}, 0.5, 1),
        ({"interval": "1.5s", "burst": 2}, 1.5, 2),
        ({"interval": "1m30s", "burst": 2}, 90.0, 2),
        ({"interval": "1d", "burst": 2}, 86400.0, 2),  # Prometheus' units too
        ({"interval": "100us", "burst": 2}, 0.0001, 2),
    ],
)
def test_a_section_resolves_to_a_limit(
    section: dict[str, object], interval: float, burst: int
) -> None:
    limit, warnings = resolve_rate_limit(RateLimitFile.model_validate(section))
    assert limit == RateLimit(interval=interval, burst=burst)
    assert warnings == []


@pytest.mark.parametrize(
    "section",
    [
        pytest.param({}, id="empty"),
        pytest.param({"interval": 0, "burst": 5}, id="interval 0"),
        pytest.param({"interval": "0", "burst": 5}, id="interval '0'"),
        pytest.param({"interval": "0s"}, id="interval 0s"),
        pytest.param({"burst": 5}, id="no interval"),
    ],
)
def test_no_interval_means_no_limit(section: dict[str, object]) -> None:
    assert resolve_rate_limit(RateLimitFile.model_validate(section)) == (None, [])
    assert resolve_rate_limit(None) == (None, [])


def test_burst_0_with_an_interval_refuses_everything_and_says_so() -> None:
    limit, warnings = resolve_rate_limit(RateLimitFile.model_validate({"interval": "1s"}))
    assert limit == RateLimit(interval=1.0, burst=0)
    assert warnings == [
        "rate_limit.burst: 0 with an interval refuses every request with 429, "
        "as in exporter-toolkit; set burst to 1 or more"
    ]
    bucket = TokenBucket(limit)
    assert not any(bucket.allow(float(second)) for second in range(100))


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            {"interval": "-1s", "burst": 1},
            "interval: must not be negative; 0 turns the limit off",
        ),
        (
            {"interval": 5, "burst": 1},
            "interval: invalid duration: write it like 1s, 500ms or 1m30s (0 turns the limit off)",
        ),
        (
            {"interval": 1.5, "burst": 1},
            "interval: invalid duration: write it like 1s, 500ms or 1m30s (0 turns the limit off)",
        ),
        (
            {"interval": True, "burst": 1},
            "interval: invalid duration: write it like 1s, 500ms or 1m30s (0 turns the limit off)",
        ),
        (
            {"interval": "fast", "burst": 1},
            "interval: invalid duration 'fast': write it like 1s, 500ms or 1m30s "
            "(0 turns the limit off)",
        ),
        ({"interval": "1s", "burst": -1}, "burst: Input should be greater than or equal to 0"),
        ({"interval": "1s", "burst": "3"}, "burst: Input should be a valid integer"),
        ({"interval": "1s", "burst": 2**63}, "burst: Input should be less than or equal to"),
        ({"interval": "1s", "brust": 3}, "brust: unknown key"),
    ],
)
def test_bad_sections_give_one_line_each(section: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RateLimitFile.model_validate(section)
    problems = list(validation_problems(caught.value))
    assert len(problems) == 1
    assert problems[0].startswith(problem)
