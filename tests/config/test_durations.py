"""Prometheus-style durations: parsing, rejection and rendering."""

from __future__ import annotations

import pytest

from exporter.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1y", 31536000.0),
        ("500ms", 0.5),
        ("1s500ms", 1.5),
        ("1w2d3h4m5s", 604800.0 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("90m", 5400.0),
        ("0", 0.0),
        ("0s", 0.0),
        (" 5m ", 300.0),
    ],
)
def test_parse_duration_accepts(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("5", "expected a form like 30s"),
        ("-5m", "expected a form like 30s"),
        ("5x", "expected a form like 30s"),
        ("m5", "expected a form like 30s"),
        ("", "expected a form like 30s"),
        ("   ", "expected a form like 30s"),
        ("5m ago", "expected a form like 30s"),
        ("1.5h", "expected a form like 30s"),
        ("00", "expected a form like 30s"),
        ("5M", "expected a form like 30s"),
        ("1m1h", "units must go from largest to smallest"),
        ("1ms1s", "units must go from largest to smallest"),
        ("1m1m", "units must go from largest to smallest"),
    ],
)
def test_parse_duration_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("value", [5, 5.0, None, True, ["5m"], b"5m"])
def test_parse_duration_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="write it with a unit"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (30, "30s"),
        (300, "5m"),
        (5400, "1h30m"),
        (86400, "1d"),
        (172800, "2d"),
        (604800, "1w"),
        (691200, "1w1d"),
        (31536000, "1y"),
        (93600, "1d2h"),
        (90061.5, "1d1h1m1s500ms"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "text",
    ["30s", "5m", "1h30m", "2d", "1w", "500ms", "1y2w3d4h5m6s7ms", "26h", "49h", "1h0m"],
)
def test_format_duration_round_trips(text: str) -> None:
    seconds = parse_duration(text)
    rendered = format_duration(seconds)
    assert parse_duration(rendered) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30s", "5m", "1h30m", "2d", "1w", "500ms", "1d1h1m1s1ms"])
def test_canonical_text_survives_parse_and_format(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
