"""Log formatting and the secret mask."""

from __future__ import annotations

import io
import json
import logging

import pytest

from exporter.logs import setup_logging
from exporter.redact import MASK

pytestmark = pytest.mark.usefixtures("restored_root_logger")


def test_logfmt_quotes_values_that_need_it() -> None:
    stream = io.StringIO()
    setup_logging("info", "logfmt", stream)
    logging.getLogger("exporter.test").warning(
        "poll failed", extra={"group": "sales", "error": 'HTTP 503 "x"', "trace_id": None}
    )
    line = stream.getvalue().strip()
    assert line.startswith("ts=")
    assert ' level=warn logger=exporter.test msg="poll failed" group=sales ' in line
    assert 'error="HTTP 503 \\"x\\""' in line
    assert line.endswith("trace_id=null")


def test_json_lines_parse() -> None:
    stream = io.StringIO()
    setup_logging("debug", "json", stream)
    logging.getLogger("exporter.test").debug("hello", extra={"group": "g", "count": 3})
    record = json.loads(stream.getvalue())
    assert record["level"] == "debug"
    assert record["msg"] == "hello"
    assert record["group"] == "g"
    assert record["count"] == 3
    assert record["ts"].endswith("Z")


def test_level_filters() -> None:
    stream = io.StringIO()
    setup_logging("warn", "logfmt", stream)
    logging.getLogger("exporter.test").info("hidden")
    logging.getLogger("exporter.test").error("shown")
    assert "hidden" not in stream.getvalue()
    assert "level=error" in stream.getvalue()


def test_secrets_are_masked_everywhere_in_the_line() -> None:
    stream = io.StringIO()
    setup = setup_logging("info", "json", stream)
    setup.mask(["abc", "abcdef-secret", ""])
    try:
        raise ValueError("token abcdef-secret rejected")
    except ValueError:
        logging.getLogger("exporter.test").exception(
            "leak abcdef-secret", extra={"header": "abcdef-secret"}
        )
    output = stream.getvalue()
    assert "abcdef-secret" not in output
    assert "abc" not in output.replace(MASK, "")
    assert json.loads(output)["header"] == MASK


def test_noisy_libraries_are_quieted() -> None:
    setup_logging("debug", "logfmt", io.StringIO())
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("apscheduler").level == logging.WARNING


# --- control characters from outside ---------------------------------------------------------

# C0 (ESC, CR, LF, BEL, NUL), DEL, C1 (CSI: a terminal takes \x9b for ESC [), line separators.
CONTROLS = "\x1b\r\n\x07\x00\x7f\x9b\x85\u2028\u2029"
HOSTILE = "plan\x1b]0;pwned\x07\x1b[2J\r\nts=forged level=error\x9b31m\x7f\u2028end"


def _raw_controls(text: str) -> list[str]:
    return [char for char in text if char in CONTROLS]


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_control_characters_from_outside_are_escaped(log_format: str) -> None:
    stream = io.StringIO()
    setup_logging("info", log_format, stream)
    try:
        raise RuntimeError(f"CAN said {HOSTILE}")
    except RuntimeError:
        logging.getLogger("exporter.test").exception(
            f"poll failed for {HOSTILE}", extra={"plan": HOSTILE, "error_msg": HOSTILE}
        )
    output = stream.getvalue()
    assert output.endswith("\n")
    line = output.removesuffix("\n")
    assert _raw_controls(line) == []
    assert "\\u001b]0;pwned\\u0007\\u001b[2J\\r\\nts=forged" in line
    assert "\\u009b31m\\u007f\\u2028end" in line


def test_json_lines_keep_the_values_as_they_were() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    logging.getLogger("exporter.test").warning("x", extra={"plan": HOSTILE})
    assert json.loads(stream.getvalue())["plan"] == HOSTILE


def test_logfmt_quotes_a_value_whose_only_oddity_is_a_control_character() -> None:
    stream = io.StringIO()
    setup_logging("info", "logfmt", stream)
    logging.getLogger("exporter.test").warning("x", extra={"trace_id": "t\x1b[31m", "n": "a\x9bb"})
    line = stream.getvalue()
    assert 'trace_id="t\\u001b[31m"' in line
    assert 'n="a\\u009bb"' in line


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_a_secret_that_quoting_would_escape_is_masked(log_format: str) -> None:
    secret = 'k3y"with\\quote'
    stream = io.StringIO()
    setup = setup_logging("info", log_format, stream)
    setup.mask([secret])
    logging.getLogger("exporter.test").warning(
        f"rejected {secret}", extra={"header": f"auth-value: {secret}"}
    )
    output = stream.getvalue()
    assert "k3y" not in output
    assert output.count(MASK) == 2
