"""The shared escaping of control characters, and the config error lines a terminal shows."""

from __future__ import annotations

import pytest

from exporter.config.errors import ConfigError
from exporter.config.load import parse_config
from exporter.textsafe import escape_controls, has_controls, header_value_problem


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        (
            'plain text, quotes " and backslashes \\ stay',
            'plain text, quotes " and backslashes \\ stay',
        ),
        ("\x1b[31mred", "\\u001b[31mred"),
        ("a\r\nb\tc\x00", "a\\u000d\\u000ab\\u0009c\\u0000"),
        ("del\x7f csi\x9b nel\x85", "del\\u007f csi\\u009b nel\\u0085"),
        ("line\u2028paragraph\u2029", "line\\u2028paragraph\\u2029"),
        ("abc\u202edcba\u2066x\u2069", "abc\\u202edcba\\u2066x\\u2069"),
        ("方案不存在 é ü", "方案不存在 é ü"),
    ],
)
def test_escape_controls(text: str, escaped: str) -> None:
    assert escape_controls(text) == escaped
    assert has_controls(text) == (text != escaped)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("10001", None),
        ("a b~!", None),
        (
            "a\rb",
            "must not contain control characters such as CR or LF: it is sent as an HTTP header",
        ),
        (
            "a\x9bb",
            "must not contain control characters such as CR or LF: it is sent as an HTTP header",
        ),
        ("é", "must be ASCII: it is sent as an HTTP header"),
    ],
)
def test_header_value_problem(value: str, problem: str | None) -> None:
    assert header_value_problem(value) == problem


def test_config_error_lines_escape_what_the_file_holds() -> None:
    text = 'targets:\n  - {name: prod, "\\e]0;pwned\\a": 1}\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ={})
    error = ConfigError(caught.value.problems, "/etc/exporter\x1b[2J.yml")
    *_missing_keys, line = error.lines()
    assert line == (
        "config error: targets[0].\\u001b]0;pwned\\u0007: unknown key "
        "(file=/etc/exporter\\u001b[2J.yml)"
    )
