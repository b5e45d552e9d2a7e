"""Control characters in text from outside: escaped where text is shown, refused in headers.

CAN's errorMsg and traceId, plan names, config values and exception texts can hold any
character. Written raw to a terminal, an ESC starts a sequence the terminal obeys (colours,
cursor moves, a changed window title); a CR or LF forges a new log line; in an HTTP header a
CR LF starts a new header.
"""

from __future__ import annotations

import re

# C0, DEL and C1 (Unicode's "Cc"); the Unicode line and paragraph separators, which some
# viewers and JavaScript take for line breaks; the bidirectional controls, with which a
# terminal that lays out right-to-left text shows characters in another order than they are.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
# Characters a header value may hold: printable ASCII (httpx encodes header values as ASCII).
_HEADER_VALUE = re.compile("[\x20-\x7e]*")


def escape_controls(text: str) -> str:
    """``text`` with each control character written as ``\\u001b``: nothing a terminal acts on."""
    return _CONTROL.sub(_escape, text)


def has_controls(text: str) -> bool:
    return _CONTROL.search(text) is not None


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as an HTTP header value, or None. Never quotes it."""
    if _HEADER_VALUE.fullmatch(value):
        return None
    if has_controls(value):
        return "must not contain control characters such as CR or LF: it is sent as an HTTP header"
    return "must be ASCII: it is sent as an HTTP header"


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"
