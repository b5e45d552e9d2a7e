"""Values the exporter sends as HTTP headers: no control characters, ASCII only, never echoed.

A CR LF in ``tenant_id`` or the auth value would start a header of its own in the request;
httpx passes it through. Non-ASCII fails in httpx on every poll.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config.errors import ConfigError
from exporter.config.load import parse_config

SECRET = "s3cr3t-Ap1Key-7f1e9c2b"
CONTROLS = "must not contain control characters such as CR or LF: it is sent as an HTTP header"
NOT_ASCII = "must be ASCII: it is sent as an HTTP header"


def config(tenant_id: str = '"10001"', auth: str = f'{{type: APIKEY, value: "{SECRET}"}}') -> str:
    return (
        "targets:\n"
        "  - name: prod\n"
        "    url: https://can.example.com\n"
        f"    tenant_id: {tenant_id}\n"
        f"    auth: {auth}\n"
    )


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ={})
    return caught.value.problems


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        pytest.param('"10001\\r\\nX-Injected: 1"', CONTROLS, id="CR LF"),
        pytest.param('"10001\\n"', CONTROLS, id="trailing LF"),
        pytest.param('"10\\t001"', CONTROLS, id="tab"),
        pytest.param('"10001\\e[31m"', CONTROLS, id="ESC"),
        pytest.param('"10001\\x7f"', CONTROLS, id="DEL"),
        pytest.param('"10001\\0"', CONTROLS, id="NUL"),
        pytest.param('"10001\\x85"', CONTROLS, id="C1 next line"),
        pytest.param('"租户"', NOT_ASCII, id="not ASCII"),
    ],
)
def test_tenant_id_must_be_a_header_value(written: str, problem: str) -> None:
    assert problems_of(config(tenant_id=written)) == [f"targets[0].tenant_id: {problem}"]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        pytest.param(f"{SECRET}\\r\\nX-Injected: 1", CONTROLS, id="CR LF"),
        pytest.param(f"{SECRET}\\n", CONTROLS, id="trailing LF"),
        pytest.param(f"{SECRET}\\e]0;title\\a", CONTROLS, id="ESC"),
        pytest.param(f"{SECRET}é", NOT_ASCII, id="not ASCII"),
    ],
)
def test_inline_auth_value_must_be_a_header_value(secret: str, problem: str) -> None:
    problems = problems_of(config(auth=f'{{type: APIKEY, value: "{secret}"}}'))
    assert problems == [f"targets[0].auth.value: {problem}"]
    assert SECRET not in "".join(problems)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(f"{SECRET}\r\nX-Injected: 1\n", CONTROLS, id="CR LF inside"),
        pytest.param(f"{SECRET}\x1b[2J\n", CONTROLS, id="ESC"),
        pytest.param(f"{SECRET}é\n", NOT_ASCII, id="not ASCII"),
    ],
)
def test_auth_value_from_a_file_must_be_a_header_value(
    tmp_path: Path, content: str, problem: str
) -> None:
    key = tmp_path / "apikey"
    key.write_text(content, encoding="utf-8")
    problems = problems_of(config(auth=f'{{type: APIKEY, value_file: "{key}"}}'))
    assert problems == [f"targets[0].auth.value_file: {key}: {problem}"]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "  \n"])
def test_the_line_ending_of_a_value_file_is_not_part_of_the_value(
    tmp_path: Path, ending: str
) -> None:
    key = tmp_path / "apikey"
    key.write_text(SECRET + ending, encoding="utf-8")
    parsed = parse_config(config(auth=f'{{type: APIKEY, value_file: "{key}"}}'), environ={})
    assert parsed.targets["prod"].auth_value.get_secret_value() == SECRET


def test_printable_ascii_is_accepted(tmp_path: Path) -> None:
    # Every character from space to ~, read from a file so that no YAML quoting is needed.
    value = "".join(chr(code) for code in range(0x20, 0x7F))
    key = tmp_path / "apikey"
    key.write_text(f"{value}~\n", encoding="utf-8")
    parsed = parse_config(
        config(tenant_id="'tenant 42'", auth=f'{{type: APIKEY, value_file: "{key}"}}'),
        environ={},
    )
    assert parsed.targets["prod"].tenant_id == "tenant 42"
    # Leading and trailing white space is stripped from a file, as before.
    assert parsed.targets["prod"].auth_value.get_secret_value() == f"{value.strip()}~"
