"""Logging in logfmt or JSON, with every configured secret masked in the final line.

Call sites pass context as ``extra={...}`` fields (group, plan, reason, ...). The messages
never include secrets by design; the masking is a second guard.

Values come from outside (CAN's errorMsg and traceId, plan names, config values, exception
texts): every control character in them is escaped (``\\u001b``) in both formats, so nothing
reaches a terminal raw and no value forges a line of its own.
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
from exporter.textsafe import escape_controls, has_controls

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
        # Masked value by value before quoting too: quoting escapes a `"` or `\` in a secret,
        # and the escaped form would no longer match.
        masked = {key: self._mask_value(value) for key, value in fields.items()}
        return self._redact(self.render(masked))

    def render(self, fields: dict[str, Any]) -> str:
        raise NotImplementedError

    def _redact(self, line: str) -> str:
        return redact(line, self.secrets)

    def _mask_value(self, value: object) -> object:
        if isinstance(value, str):
            return self._redact(value)
        if value is None or isinstance(value, bool | int | float | list | tuple | dict):
            return value  # as JSON renders them; the whole line is masked below
        return self._redact(str(value))


class LogfmtFormatter(_Formatter):
    def render(self, fields: dict[str, Any]) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


class JsonFormatter(_Formatter):
    def render(self, fields: dict[str, Any]) -> str:
        return _json_string(fields)


def _logfmt_value(value: object) -> str:
    text = "null" if value is None else str(value)
    if text == "" or _NEEDS_QUOTES.search(text) or has_controls(text):
        return _json_string(text)
    return text


def _json_string(value: object) -> str:
    """JSON with every control character escaped: json.dumps escapes C0 only, and keeps DEL,
    C1 (a terminal takes \\x9b for ESC [) and U+2028/2029 raw. They can only stand inside
    strings, where their escaped form is valid JSON."""
    return escape_controls(json.dumps(value, ensure_ascii=False, default=str))


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
