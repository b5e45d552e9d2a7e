"""The HTTP/1.1 a CAN client needs, as pure functions: a request's bytes, a response's head.

exporter.can.pool does the I/O. A poll is one small POST and one small JSON answer, so this
covers what a server may send back to a client (RFC 9112): the status line, header fields, and
which of the framings the body has (a Content-Length, chunked, or until the server closes).
Anything else is refused as a protocol error rather than guessed at: an ambiguous framing is
how one answer ends up read as the next.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

Header = tuple[bytes, bytes]

# RFC 9110 token characters, for field names.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# Field values (and reason phrases): tabs, spaces, visible ASCII and obs-text; no controls.
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# A request target: visible ASCII (httpx percent-encodes the rest).
_TARGET = re.compile(rb"[\x21-\x7e]+")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_DIGITS = re.compile(rb"[0-9]{1,18}")
# A chunk's size in hex; extensions after ";" are allowed and ignored. No space before the
# ";", which the RFC allows and h11 refuses: nobody sends it.
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[^\x00\r\n]*)?[ \t]*")


class ProtocolError(Exception):
    """What the server sent is not HTTP/1.1 this client can read unambiguously."""


class Framing(Enum):
    """How the body of a response ends."""

    NONE = "none"  # 1xx, 204, 304: no body
    LENGTH = "length"  # after Content-Length bytes
    CHUNKED = "chunked"  # at the zero-size chunk
    UNTIL_CLOSE = "until_close"  # when the server closes the connection


@dataclass(frozen=True, slots=True)
class ResponseHead:
    http_version: bytes  # b"HTTP/1.1"
    status: int
    reason: bytes
    headers: list[Header]
    framing: Framing
    content_length: int  # with Framing.LENGTH; 0 otherwise
    keep_alive: bool  # the connection may carry another request once the body is read


def request_bytes(method: bytes, target: bytes, headers: Sequence[Header], body: bytes) -> bytes:
    """A request's bytes; ``headers`` must frame ``body`` (httpx sets Content-Length)."""
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise ProtocolError(f"invalid request line: {method!r} {target!r}")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    chunked = False
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            # Never sent: a CR or LF in a value would start a header of the value's choosing.
            raise ProtocolError(f"invalid header field {name!r}")
        if name.lower() == b"transfer-encoding":
            chunked = value.strip().lower() == b"chunked"
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    if chunked:
        if body:
            lines += (b"%x\r\n" % len(body), body, b"\r\n")
        lines.append(b"0\r\n\r\n")
    else:
        lines.append(body)
    return b"".join(lines)


def parse_head(head: bytes) -> ResponseHead:
    """Parse a response's status line and header fields, ``head`` ending in CRLF CRLF."""
    if not head.endswith(b"\r\n\r\n"):
        raise ProtocolError("response head does not end with an empty line")
    lines = head[:-4].split(b"\r\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    minor, status, reason = status_line.groups()
    if status == b"101":
        raise ProtocolError("101 Switching Protocols to a request that asked for no upgrade")
    headers = [parse_field(line) for line in lines[1:]]
    framing, length = _framing(int(status), headers)
    keep_alive = minor == b"1" and framing is not Framing.UNTIL_CLOSE and not _closes(headers)
    return ResponseHead(
        b"HTTP/1." + minor, int(status), reason or b"", headers, framing, length, keep_alive
    )


def parse_chunk_size(line: bytes) -> int:
    """A chunk-size line's size, ``line`` without its CRLF."""
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"invalid chunk size line: {line[:40]!r}")
    return int(match.group(1), 16)


def parse_field(line: bytes) -> Header:
    """One header (or trailer) field line, without its CRLF."""
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.fullmatch(name):
        # Also a line folded onto the previous one (obs-fold), which starts with a space.
        raise ProtocolError(f"invalid header line: {line[:80]!r}")
    value = value.strip(b" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise ProtocolError(f"invalid value in header {name!r}")
    return name, value


def _values(headers: Sequence[Header], name: bytes) -> list[bytes]:
    """Every comma-separated element of the fields called ``name``, stripped and lower-cased."""
    return [
        element.strip(b" \t").lower()
        for field, value in headers
        if field.lower() == name
        for element in value.split(b",")
    ]


def _framing(status: int, headers: Sequence[Header]) -> tuple[Framing, int]:
    framing, length = _declared_framing(headers)
    # Bodiless whatever the headers say (RFC 9112 6.3), but the headers must still make sense.
    if status < 200 or status in (204, 304):
        return Framing.NONE, 0
    return framing, length


def _declared_framing(headers: Sequence[Header]) -> tuple[Framing, int]:
    codings = _values(headers, b"transfer-encoding")
    lengths = set(_values(headers, b"content-length"))
    if codings:
        if lengths:
            raise ProtocolError("response has both Transfer-Encoding and Content-Length")
        if codings[-1] == b"chunked":
            if codings.count(b"chunked") > 1:
                raise ProtocolError("response is chunked twice")
            return Framing.CHUNKED, 0
        if b"chunked" in codings:
            raise ProtocolError("chunked is not the last transfer coding")
        return Framing.UNTIL_CLOSE, 0
    if lengths:
        if len(lengths) > 1:
            raise ProtocolError("response has conflicting Content-Length values")
        (length,) = lengths
        if not _DIGITS.fullmatch(length):
            raise ProtocolError(f"invalid Content-Length: {length[:40]!r}")
        return Framing.LENGTH, int(length)
    return Framing.UNTIL_CLOSE, 0


def _closes(headers: Sequence[Header]) -> bool:
    return b"close" in _values(headers, b"connection")
