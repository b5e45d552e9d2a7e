"""Logging in logfmt or JSON, with every configured secret masked in the final line.

Call sites pass context as ``extra={...}`` fields (group, plan, reason, ...). The messages
never include secrets by design; the masking is a second guard.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from exporter.redact import ordered_secrets, redact

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("logfmt", "json")

# Attributes every LogRecord has; anything else came in through `extra`.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
_NEEDS_QUOTES = re.compile(r'[\s"=\\]')


class _Formatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": _level_name(record.levelno),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                fields[key] = value
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return self._redact(self.render(fields))

    def render(self, fields: dict[str, Any]) -> str:
        raise NotImplementedError

    def _redact(self, line: str) -> str:
        return redact(line, self.secrets)


class LogfmtFormatter(_Formatter):
    def render(self, fields: dict[str, Any]) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


class JsonFormatter(_Formatter):
    def render(self, fields: dict[str, Any]) -> str:
        return json.dumps(fields, ensure_ascii=False, default=str)


def _logfmt_value(value: object) -> str:
    text = "null" if value is None else str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _level_name(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class LogSetup:
    """The installed handler; ``mask(secrets)`` updates what is masked after a reload."""

    def __init__(self, formatter: _Formatter) -> None:
        self._formatter = formatter

    def mask(self, secrets: Iterable[str]) -> None:
        self._formatter.secrets = ordered_secrets(secrets)


def setup_logging(level: str, log_format: str, stream: TextIO | None = None) -> LogSetup:
    formatter: _Formatter = JsonFormatter() if log_format == "json" else LogfmtFormatter()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # httpx logs every request at INFO; APScheduler logs every run at INFO.
    for noisy in ("httpx", "httpcore", "apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return LogSetup(formatter)
