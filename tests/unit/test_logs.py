"""Log formatting and the secret mask."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from exporter.logs import setup_logging
from exporter.redact import MASK


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
