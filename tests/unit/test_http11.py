"""The HTTP/1.1 edge cases a CAN server (or a proxy before it) may send, read without I/O."""

from __future__ import annotations

import pytest

from exporter.can.http11 import (
    Framing,
    ProtocolError,
    parse_chunk_size,
    parse_head,
    request_bytes,
)


def head(*lines: bytes) -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def test_a_status_line_without_a_reason() -> None:
    parsed = parse_head(head(b"HTTP/1.1 200", b"Content-Length: 2"))
    assert parsed.status == 200
    assert parsed.reason == b""
    assert parsed.http_version == b"HTTP/1.1"
    assert parsed.framing is Framing.LENGTH
    assert parsed.content_length == 2
    assert parsed.keep_alive


def test_fields_keep_their_case_and_lose_the_whitespace_around_values() -> None:
    parsed = parse_head(head(b"HTTP/1.1 200 OK", b"X-Trace-Id:\t a b \t", b"content-length:0"))
    assert parsed.headers == [(b"X-Trace-Id", b"a b"), (b"content-length", b"0")]


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body_whatever_their_content_length_says(status: int) -> None:
    parsed = parse_head(head(b"HTTP/1.1 %d Nothing" % status, b"Content-Length: 42"))
    assert parsed.framing is Framing.NONE
    assert parsed.content_length == 0
    assert parsed.keep_alive


@pytest.mark.parametrize(
    "lines",
    [
        (b"HTTP/1.1 200 OK", b"Connection: close", b"Content-Length: 2"),
        (b"HTTP/1.1 200 OK", b"Connection: Keep-Alive, CLOSE", b"Content-Length: 2"),
        (b"HTTP/1.0 200 OK", b"Content-Length: 2"),
        (b"HTTP/1.0 200 OK", b"Connection: keep-alive", b"Content-Length: 2"),
        (b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip"),  # ends when the server closes
    ],
    ids=["close", "close in a list", "HTTP/1.0", "HTTP/1.0 keep-alive", "until close"],
)
def test_responses_that_end_the_connection_are_not_keep_alive(lines: tuple[bytes, ...]) -> None:
    assert not parse_head(head(*lines)).keep_alive


def test_gzip_then_chunked_is_chunked() -> None:
    parsed = parse_head(head(b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip, chunked"))
    assert parsed.framing is Framing.CHUNKED
    assert parsed.keep_alive


def test_gzip_alone_is_read_until_the_server_closes() -> None:
    parsed = parse_head(head(b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip"))
    assert parsed.framing is Framing.UNTIL_CLOSE
    assert not parsed.keep_alive


@pytest.mark.parametrize(
    "fields",
    [(b"Content-Length: 5, 5",), (b"Content-Length: 5", b"content-length: 5")],
    ids=["one field", "two fields"],
)
def test_the_same_content_length_twice_is_accepted(fields: tuple[bytes, ...]) -> None:
    parsed = parse_head(head(b"HTTP/1.1 200 OK", *fields))
    assert parsed.framing is Framing.LENGTH
    assert parsed.content_length == 5


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b"1a;name=value", 26),
        (b"1A", 26),
        (b"0", 0),
        (b"0000001a", 26),
        (b"a; x", 10),
        (b"ffffffffffffffff", 2**64 - 1),
    ],
)
def test_chunk_sizes_are_hex_and_ignore_extensions(line: bytes, size: int) -> None:
    assert parse_chunk_size(line) == size


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ((b"HTTP/2 200 OK",), "not an HTTP/1.x status line: b'HTTP/2 200 OK'"),
        ((b"HTTP/1.2 200 OK",), "not an HTTP/1.x status line: b'HTTP/1.2 200 OK'"),
        ((b"HTTP/1.1 200 OK", b"X-Folded: a", b" b"), "invalid header line: b' b'"),
        ((b"HTTP/1.1 200 OK", b"X-Bad : a"), "invalid header line: b'X-Bad : a'"),
        ((b"HTTP/1.1 200 OK", b"X-Bad: a\x00b"), "invalid value in header b'X-Bad'"),
        (
            (b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", b"Content-Length: 5"),
            "response has both Transfer-Encoding and Content-Length",
        ),
        (
            (b"HTTP/1.1 200 OK", b"Content-Length: 5", b"Content-Length: 6"),
            "response has conflicting Content-Length values",
        ),
        ((b"HTTP/1.1 200 OK", b"Content-Length: -1"), "invalid Content-Length: b'-1'"),
        (
            (b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, gzip"),
            "chunked is not the last transfer coding",
        ),
        ((b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, chunked"), "response is chunked twice"),
    ],
    ids=[
        "HTTP/2",
        "HTTP/1.2",
        "obs-fold",
        "space before colon",
        "NUL in value",
        "TE and CL",
        "two lengths",
        "signed length",
        "chunked not last",
        "chunked twice",
    ],
)
def test_refused_heads_say_what_was_wrong(lines: tuple[bytes, ...], message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_head(head(*lines))
    assert str(caught.value) == message


def test_a_head_without_its_empty_line_is_refused() -> None:
    with pytest.raises(ProtocolError, match="does not end with an empty line"):
        parse_head(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("line", [b"0x10", b"-1", b"", b"1" * 17, b" 1"])
def test_bad_chunk_sizes_are_named(line: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_chunk_size(line)
    assert str(caught.value) == f"invalid chunk size line: {line!r}"


def test_a_request_is_one_line_the_fields_and_the_body() -> None:
    data = request_bytes(
        b"POST",
        b"/anymetrics/api/v1/accelerate/latestTime",
        [(b"Host", b"can.example"), (b"Content-Length", b"2")],
        b"{}",
    )
    assert data == (
        b"POST /anymetrics/api/v1/accelerate/latestTime HTTP/1.1\r\n"
        b"Host: can.example\r\nContent-Length: 2\r\n\r\n{}"
    )


def test_a_chunked_request_body_is_one_chunk_and_the_last() -> None:
    data = request_bytes(b"POST", b"/", [(b"Transfer-Encoding", b"chunked")], b"x" * 26)
    assert data.endswith(b"\r\n\r\n1a\r\n" + b"x" * 26 + b"\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"X-Trace", b"a\r\nX-Injected: 1"),
        (b"X-Trace", b"a\nb"),
        (b"X-Trace", b"a\x00"),
        (b"X Y", b"1"),
    ],
    ids=["CRLF", "LF", "NUL", "name with a space"],
)
def test_request_fields_that_could_smuggle_a_line_are_refused(name: bytes, value: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        request_bytes(b"POST", b"/", [(name, value)], b"")
    assert str(caught.value) == f"invalid header field {name!r}"
    # The value itself stays out of the message: it may be a token.
    assert "Injected" not in str(caught.value)


@pytest.mark.parametrize("target", [b"", b"/a b", b"/\x80", b"/\x7f", b"/a\tb"])
def test_a_request_target_outside_visible_ascii_is_never_sent(target: bytes) -> None:
    with pytest.raises(ProtocolError, match="invalid request line"):
        request_bytes(b"POST", target, [(b"Host", b"can")], b"")
