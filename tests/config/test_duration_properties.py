"""Property tests of Prometheus-style durations: any text parses or raises ValueError."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter.config.durations import format_duration, parse_duration

FAST = settings(max_examples=400, deadline=None)

UNITS = ("y", "w", "d", "h", "m", "s", "ms")
UNIT_MS = {"y": 31_536_000_000, "w": 604_800_000, "d": 86_400_000, "h": 3_600_000}
UNIT_MS |= {"m": 60_000, "s": 1000, "ms": 1}
# Prometheus' limit: a signed 64-bit count of nanoseconds.
MAX_MS = (2**63 - 1) // 1_000_000

duration_pieces = st.sampled_from([*"0123456789ymwdhs .-+:_", "ms", "\u0663", "\uff15", "\t"])


@FAST
@given(text=st.text(max_size=30) | st.lists(duration_pieces, max_size=12).map("".join))
@example(text="1" + "0" * 400 + "s")  # was OverflowError: int too large to convert to float
@example(text="1" + "0" * 305 + "y")  # was inf, which format_duration cannot render
@example(text="9" * 5000 + "ms")  # was Python's own 4300-digit ValueError
@example(text="\u0663s")  # Arabic-Indic 3: was accepted as 3 seconds
def test_any_text_is_a_finite_duration_or_a_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith("invalid duration ")
        assert "\n" not in message
        return
    assert isinstance(seconds, float)
    assert math.isfinite(seconds)
    assert 0 <= seconds <= MAX_MS / 1000
    # Only "0" and all-zero counts are zero; the config rejects those where it wants > 0.
    assert seconds > 0 or not any(c in "123456789" for c in text)
    assert text.strip().isascii()


@st.composite
def valid_durations(draw: st.DrawFn) -> tuple[str, int]:
    """A duration in canonical unit order and its exact length in milliseconds."""
    units = draw(st.lists(st.sampled_from(UNITS), min_size=1, max_size=7, unique=True))
    units.sort(key=UNITS.index)
    text, total = "", 0
    for unit in units:
        count = draw(st.integers(min_value=0, max_value=MAX_MS // UNIT_MS[unit] // len(units)))
        text += f"{count}{unit}"
        total += count * UNIT_MS[unit]
    return text, total


@FAST
@given(duration=valid_durations())
@example(duration=("1h30m", 5_400_000))
@example(duration=("999ms", 999))
@example(duration=("292y", 292 * UNIT_MS["y"]))
def test_valid_durations_parse_exactly_and_round_trip(duration: tuple[str, int]) -> None:
    text, milliseconds = duration
    seconds = parse_duration(text)
    assert seconds == milliseconds / 1000
    rendered = format_duration(seconds)
    assert parse_duration(rendered) == seconds
    # Rendering is canonical: rendering the re-parsed text gives the same text.
    assert format_duration(parse_duration(rendered)) == rendered


@FAST
@given(milliseconds=st.integers(min_value=0, max_value=MAX_MS))
def test_format_then_parse_is_the_identity(milliseconds: int) -> None:
    assert parse_duration(format_duration(milliseconds / 1000)) == milliseconds / 1000


@pytest.mark.parametrize(
    "text",
    ["293y", "106752d", "1" + "0" * 20 + "ms", "1" + "0" * 400 + "s", "292y52w"],
)
def test_durations_past_prometheus_range_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_duration(text)


def test_leading_zeros_do_not_count_against_the_range() -> None:
    assert parse_duration("0" * 30 + "5s") == 5.0
