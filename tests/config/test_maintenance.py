"""maintenance lists (exporter/config/maintenance.py): parsing, checks, inheritance, warnings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exporter.config.errors import ConfigError
from exporter.config.load import parse_config
from exporter.config.maintenance import MaintenanceWindow, active_end, uncovered_seconds
from tests.helpers.configs import ENV, doc, group, target

# 2026-12-05 12:00 UTC: the config loads then.
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC).timestamp()
T22 = datetime(2026, 12, 5, 14, 0, tzinfo=UTC).timestamp()  # 22:00 in Shanghai
T_END = datetime(2026, 12, 6, 2, 0, tzinfo=UTC).timestamp()


def _item(
    start: str = "2026-12-05T22:00:00+08:00",
    end: str = "2026-12-06T02:00:00Z",
    reason: str = "CAN upgrade",
) -> str:
    return f'      - {{start: {start}, end: {end}, reason: "{reason}"}}\n'


def _group(items: str, **kwargs: str) -> str:
    return group("    maintenance:\n" + items if items else "    maintenance: []\n", **kwargs)


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ=ENV, now=NOW)
    return caught.value.problems


def test_a_group_window_resolves_to_unix_times() -> None:
    config = parse_config(doc(groups=_group(_item())), environ=ENV, now=NOW)
    (sales,) = config.groups
    assert sales.maintenance == (MaintenanceWindow(T22, T_END, "CAN upgrade", from_target=False),)
    assert config.warnings == ()


def test_quoted_and_unquoted_times_are_the_same() -> None:
    quoted = _item('"2026-12-05T22:00:00+08:00"', '"2026-12-06T02:00:00Z"')
    config = parse_config(doc(groups=_group(quoted)), environ=ENV, now=NOW)
    assert config.groups[0].maintenance[0].start == T22
    assert config.groups[0].maintenance[0].end == T_END


def test_inheritance_target_always_group_replaces_defaults() -> None:
    head = "defaults:\n  maintenance:\n" + _item(reason="defaults").replace("      -", "    -")
    targets = target("    maintenance:\n" + _item(reason="target"))
    groups = (
        group(name="inherits")
        + _group(_item(reason="own"), name="own")
        + _group("", name="cleared")
    )
    config = parse_config(doc(targets, groups, head), environ=ENV, now=NOW)
    reasons = {g.name: [(w.reason, w.from_target) for w in g.maintenance] for g in config.groups}
    assert reasons == {
        "inherits": [("target", True), ("defaults", False)],
        "own": [("target", True), ("own", False)],
        "cleared": [("target", True)],
    }
    # The target's own windows, for aloudata_can_target_maintenance.
    assert [w.reason for w in config.target_maintenance["prod"]] == ["target"]


def test_a_window_that_has_ended_is_ignored_with_a_warning() -> None:
    ended = _item("2026-12-01T00:00:00Z", "2026-12-05T12:00:00Z")
    targets = target("    maintenance:\n" + ended)
    config = parse_config(doc(targets, _group(ended + _item())), environ=ENV, now=NOW)
    assert [w.reason for w in config.groups[0].maintenance] == ["CAN upgrade"]
    assert config.warnings == (
        "targets[0].maintenance[0].end: the window ended at 2026-12-05T12:00:00Z; it is ignored",
        "groups[0].maintenance[0].end: the window ended at 2026-12-05T12:00:00Z; it is ignored",
    )


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (
            _item(start="2026-12-05T22:00:00"),
            "groups[0].maintenance[0].start: must carry a time zone (an offset or Z), like "
            "2026-12-05T22:00:00+08:00 or 2026-12-05T14:00:00Z",
        ),
        (
            _item(end='"tomorrow"'),
            "groups[0].maintenance[0].end: must be an ISO 8601 time with a zone, like "
            "2026-12-05T22:00:00+08:00 or 2026-12-05T14:00:00Z",
        ),
        (
            _item(end="1796522400"),
            "groups[0].maintenance[0].end: must be an ISO 8601 time with a zone, like "
            "2026-12-05T22:00:00+08:00 or 2026-12-05T14:00:00Z",
        ),
        (
            _item(end="2026-12-05T14:00:00Z"),
            "groups[0].maintenance[0].end: 2026-12-05T14:00:00Z is not after start "
            "2026-12-05T14:00:00Z",
        ),
        (
            _item(end="2026-12-19T14:00:01Z"),
            "groups[0].maintenance[0].end: the window lasts more than 14 days (from "
            "2026-12-05T14:00:00Z to 2026-12-19T14:00:01Z); split it, so that no window is "
            "forgotten",
        ),
        (_item(reason=" "), "groups[0].maintenance[0].reason: must not be blank"),
        (
            _item(reason=""),
            "groups[0].maintenance[0].reason: String should have at least 1 character",
        ),
        (
            _item(reason="x" * 201),
            "groups[0].maintenance[0].reason: String should have at most 200 characters",
        ),
        (
            _item(reason="a\\x1b[31mb"),
            "groups[0].maintenance[0].reason: must not contain control characters",
        ),
        (
            "      - {start: 2026-12-05T22:00:00Z, end: 2026-12-06T02:00:00Z}\n",
            "groups[0].maintenance[0].reason: required key is missing",
        ),
        (
            "      - {start: 2026-12-05T22:00:00Z, end: 2026-12-06T02:00:00Z, reason: x, why: y}\n",
            "groups[0].maintenance[0].why: unknown key",
        ),
    ],
)
def test_bad_windows_are_one_line_naming_the_key(item: str, problem: str) -> None:
    assert _problems(doc(groups=_group(item))) == [problem]


def test_exactly_14_days_is_allowed() -> None:
    item = _item("2026-12-05T14:00:00Z", "2026-12-19T14:00:00Z")
    assert parse_config(doc(groups=_group(item)), environ=ENV, now=NOW).groups[0].maintenance


def test_defaults_and_target_problems_name_their_keys() -> None:
    head = "defaults:\n  maintenance:\n" + _item(start="2026-12-05").replace("      -", "    -")
    targets = target("    maintenance:\n" + _item(end="2026-12-05T13:00:00Z"))
    assert _problems(doc(targets, group(), head)) == [
        # A date alone is no time.
        "defaults.maintenance[0].start: must be an ISO 8601 time with a zone, like "
        "2026-12-05T22:00:00+08:00 or 2026-12-05T14:00:00Z",
    ]
    assert _problems(doc(targets, group())) == [
        "targets[0].maintenance[0].end: 2026-12-05T13:00:00Z is not after start "
        "2026-12-05T14:00:00Z",
    ]


def test_active_end_is_the_latest_end_among_the_active_windows() -> None:
    windows = (
        MaintenanceWindow(0.0, 100.0, "a"),
        MaintenanceWindow(50.0, 200.0, "b"),
        MaintenanceWindow(300.0, 400.0, "c"),
    )
    assert active_end(windows, 60.0) == windows[1]
    assert active_end(windows, 10.0) == windows[0]
    assert active_end(windows, 200.0) is None  # the end is not in the window
    assert active_end(windows, 300.0) == windows[2]


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ((), 100.0),
        (((10.0, 20.0),), 90.0),
        (((10.0, 30.0), (20.0, 40.0)), 70.0),  # overlapping
        (((-50.0, 10.0), (90.0, 500.0)), 80.0),  # clipped at both ends
        (((20.0, 30.0), (0.0, 100.0)), 0.0),  # one inside another
        (((200.0, 300.0),), 100.0),
    ],
)
def test_uncovered_seconds(spans: tuple[tuple[float, float], ...], expected: float) -> None:
    assert uncovered_seconds(0.0, 100.0, spans) == expected
