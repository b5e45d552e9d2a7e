"""Differential property tests of exporter.can.http11 (and the pool's reading) against h11.

h11 is the oracle: a well-tested HTTP/1.1 implementation. Valid responses must read the same
through ``exporter.can.pool.Connection`` (on a real ``asyncio.StreamReader``, fed in random
pieces) as through an h11 client connection. Malformed ones must raise ``ProtocolError``. We
may refuse what h11 accepts (we are deliberately strict), never the other way round: accepting
what h11 refuses is how one answer ends up read as the next.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import h11
import httpcore
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from exporter.can.http11 import (
    Header,
    ProtocolError,
    ResponseHead,
    parse_chunk_size,
    parse_head,
    request_bytes,
)
from exporter.can.pool import Connection

# Bounded so this file runs in a few seconds.
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Without shrinking: a failure's example is printed as found (shrinking one takes minutes).
UNSHRUNK = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
TINY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# What h11 (and RFC 9110) allow inside a field value: VCHAR and obs-text.
FIELD_VCHAR = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
CTLS = bytes([*range(0x20), 0x7F])
# Fields whose meaning the generators control; random names avoid them.
RESERVED = {b"content-length", b"transfer-encoding", b"connection", b"host", b"upgrade"}
BODILESS = (204, 304)
READ_LIMIT = 64 * 1024  # what pool.ConnectionPool gives asyncio.open_connection
TIMEOUT = 5.0

names = (
    st.text(TOKEN_CHARS, min_size=1, max_size=12)
    .map(str.encode)
    .filter(lambda name: name.lower() not in RESERVED)
)
words = st.lists(st.sampled_from(FIELD_VCHAR), min_size=1, max_size=8).map(bytes)
inner_space = st.sampled_from([b" ", b"\t", b"  ", b" \t "])
outer_space = st.sampled_from([b"", b"", b" ", b"\t", b"  ", b" \t"])
reasons = st.lists(st.sampled_from(FIELD_VCHAR) | st.sampled_from(b" \t"), max_size=12).map(bytes)
statuses = st.integers(min_value=200, max_value=599) | st.sampled_from(BODILESS)
body_statuses = st.integers(min_value=200, max_value=599).filter(lambda s: s not in BODILESS)


@st.composite
def field_values(draw: st.DrawFn) -> bytes:
    """A value h11 accepts, without the whitespace around it (possibly empty)."""
    parts = draw(st.lists(words, max_size=4))
    value = parts[0] if parts else b""
    for part in parts[1:]:
        value += draw(inner_space) + part
    return value


@st.composite
def field_lines(draw: st.DrawFn, name: bytes, value: bytes) -> bytes:
    """``name: value`` with random whitespace around the value."""
    return name + b":" + draw(outer_space) + value + draw(outer_space)


def casings(word: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from([word, word.lower(), word.upper(), word.title()])


# --- reading with h11 ---------------------------------------------------------------------


def _h11_client() -> h11.Connection:
    """An h11 client connection that has sent a poll and waits for the answer."""
    client = h11.Connection(h11.CLIENT)
    client.send(
        h11.Request(
            method="POST",
            target="/anymetrics/api/v1/accelerate/latestTime",
            headers=[("Host", "can.example"), ("Content-Length", "2")],
        )
    )
    client.send(h11.Data(data=b"{}"))
    client.send(h11.EndOfMessage())
    return client


@dataclass(frozen=True)
class Read:
    """A response as read by h11 or by us."""

    http_version: bytes
    status: int
    reason: bytes
    headers: list[Header]
    body: bytes
    reusable: bool


def _h11_read(data: bytes) -> Read:
    """h11's reading of a whole response (then EOF); raises h11.RemoteProtocolError."""
    client = _h11_client()
    client.receive_data(data)
    response: h11.Response | None = None
    body = b""
    eof = False
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            if eof:  # h11 would wait for ever: the response is cut short
                raise h11.RemoteProtocolError("incomplete response")
            client.receive_data(b"")
            eof = True
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        elif isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("closed before the end of the response")
        else:
            assert isinstance(event, h11.InformationalResponse), event
    assert response is not None
    # Reusable: both sides DONE, nothing after the response and no EOF (which h11 needs to end
    # a response framed by the close, without counting that against DONE).
    reusable = (
        client.our_state is h11.DONE
        and client.their_state is h11.DONE
        and client.trailing_data == (b"", False)
    )
    return Read(
        b"HTTP/" + response.http_version,
        response.status_code,
        response.reason,
        response.headers.raw_items(),
        body,
        reusable,
    )


def _h11_head(head: bytes) -> h11.Response | h11.InformationalResponse | None:
    """h11's reading of a response head; None when h11 refuses it."""
    client = _h11_client()
    client.receive_data(head)
    try:
        event = client.next_event()
    except h11.RemoteProtocolError:
        return None
    assert isinstance(event, h11.Response | h11.InformationalResponse), event
    return event


def _as_h11_keeps(headers: Sequence[Header]) -> list[Header]:
    """``headers`` as h11 reports them: one Content-Length value, Transfer-Encoding lowered."""
    kept: list[Header] = []
    seen_length = False
    for name, value in headers:
        if name.lower() == b"content-length":
            if seen_length:
                continue
            seen_length = True
            kept.append((name, value.split(b",")[0].strip()))
        elif name.lower() == b"transfer-encoding":
            kept.append((name, value.lower()))
        else:
            kept.append((name, value))
    return kept


# --- reading with the pool ------------------------------------------------------------------


class _NoWriter:
    """The pool connection's writer; reading a response never touches it."""


async def _pool_read_async(pieces: Sequence[bytes]) -> Read:
    reader = asyncio.StreamReader(limit=READ_LIMIT)
    connection = Connection(reader, cast(asyncio.StreamWriter, _NoWriter()))

    async def feed() -> None:
        for piece in pieces:
            reader.feed_data(piece)
            await asyncio.sleep(0)  # let the connection read what has come so far
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    try:
        head = await connection.receive_head(TIMEOUT)
        body = b"".join([data async for data in connection.body(head, TIMEOUT)])
    finally:
        await feeder
    reusable = head.keep_alive and not connection.has_unread()
    version, status, reason, headers = head.http_version, head.status, head.reason, head.headers
    return Read(version, status, reason, headers, body, reusable)


def _pool_read(pieces: Sequence[bytes]) -> Read:
    """Our reading of a response fed in ``pieces`` then EOF; raises httpcore errors."""
    return asyncio.run(_pool_read_async(pieces))


def _check_head(data: bytes) -> ResponseHead | None:
    """parse_head on what the pool would read of ``data``, checked against h11's reading.

    None when we refuse it, which we may; accepting what h11 refuses fails the test.
    """
    head = data[: data.index(b"\r\n\r\n") + 4]
    theirs = _h11_head(head)
    try:
        ours = parse_head(head)
    except ProtocolError:
        return None
    assert theirs is not None, f"we accept a head h11 refuses: {head!r} -> {ours}"
    assert ours.status == theirs.status_code
    assert ours.reason == theirs.reason
    assert ours.http_version == b"HTTP/" + theirs.http_version
    assert _as_h11_keeps(ours.headers) == theirs.headers.raw_items()
    return ours


# --- a. valid responses read alike ------------------------------------------------------


@st.composite
def chunk_size_lines(draw: st.DrawFn, size: int) -> bytes:
    digits = draw(st.sampled_from([b"%x", b"%X"])) % size
    digits = b"0" * draw(st.integers(min_value=0, max_value=16 - len(digits))) + digits
    extensions = b""
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        extensions += b";" + draw(names)
        value = draw(st.none() | names | words.map(lambda w: b'"' + w.replace(b'"', b"") + b'"'))
        if value is not None:
            extensions += b"=" + value
    return digits + extensions + draw(outer_space) + b"\r\n"


@st.composite
def chunked_payloads(draw: st.DrawFn, body: bytes, trailers: bool) -> bytes:
    """``body`` cut into chunks at random points, the last chunk, optional trailers."""
    cuts = draw(st.lists(st.integers(min_value=1, max_value=max(1, len(body) - 1)), max_size=5))
    edges = sorted({0, len(body), *(c for c in cuts if c < len(body))})
    payload = b""
    for start, end in itertools.pairwise(edges):
        payload += draw(chunk_size_lines(end - start)) + body[start:end] + b"\r\n"
    payload += draw(chunk_size_lines(0))
    for _ in range(draw(st.integers(min_value=0, max_value=2 if trailers else 0))):
        payload += draw(field_lines(draw(names), draw(field_values()))) + b"\r\n"
    return payload + b"\r\n"


@st.composite
def interim_heads(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([100, 102, 103]))
    head = b"HTTP/1.1 %d %s\r\n" % (status, draw(reasons))
    for name, value in draw(st.lists(st.tuples(names, field_values()), max_size=2)):
        head += draw(field_lines(name, value)) + b"\r\n"
    return head + b"\r\n"


@dataclass(frozen=True)
class Response:
    raw: bytes
    pieces: tuple[bytes, ...]
    body: bytes
    payload: int = 0  # where the (framed) body starts in raw


@st.composite
def valid_responses(draw: st.DrawFn, trailers: bool = True) -> Response:
    minor = draw(st.sampled_from([b"0", b"1"]))
    status = draw(statuses)
    reason = draw(st.none() | reasons)
    status_line = b"HTTP/1.%s %d" % (minor, status)
    if reason is not None:
        status_line += b" " + reason
    lines = [
        draw(field_lines(name, value))
        for name, value in draw(st.lists(st.tuples(names, field_values()), max_size=5))
    ]
    bodiless = status in BODILESS
    body = b"" if bodiless else draw(st.binary(max_size=200))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    payload = body
    if framing == "length":
        length = draw(st.integers(0, 10**6)) if bodiless else len(body)
        value = b"0" * draw(st.integers(min_value=0, max_value=2)) + b"%d" % length
        if draw(st.booleans()):
            value += b"," + draw(outer_space) + value  # the same length twice
        name = draw(casings(b"Content-Length"))
        lines.insert(draw(st.integers(0, len(lines))), draw(field_lines(name, value)))
    elif framing == "chunked":
        name, value = draw(casings(b"Transfer-Encoding")), draw(casings(b"chunked"))
        lines.insert(draw(st.integers(0, len(lines))), draw(field_lines(name, value)))
        payload = b"" if bodiless else draw(chunked_payloads(body, trailers))
    connection = draw(
        st.none()
        | st.sampled_from([b"close", b"Close", b"keep-alive", b"Keep-Alive", b"TE, close"])
    )
    if connection is not None:
        line = draw(field_lines(draw(casings(b"Connection")), connection))
        lines.insert(draw(st.integers(0, len(lines))), line)
    raw = b"".join(draw(st.lists(interim_heads(), max_size=2)))
    raw += status_line + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    start = len(raw)
    raw += payload
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = tuple(raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True))
    return Response(raw, pieces, body, start)


@FAST
@given(response=valid_responses())
@example(
    response=Response(
        b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",
        (b"HTTP/1.1 200\r", b"\nContent-Length: 2\r\n\r", b"\n{", b"}"),
        b"{}",
    )
).via("no reason; pieces cut inside each CRLF")
def test_valid_responses_read_as_h11_reads_them(response: Response) -> None:
    assert b"".join(response.pieces) == response.raw
    theirs = _h11_read(response.raw)
    ours = _pool_read(response.pieces)
    assert ours.status == theirs.status
    assert ours.reason == theirs.reason
    assert ours.http_version == theirs.http_version
    assert _as_h11_keeps(ours.headers) == theirs.headers
    assert ours.body == theirs.body == response.body
    assert ours.reusable == theirs.reusable


def _compare(raw: bytes) -> tuple[Read | None, Read | None]:
    """h11's and our reading of ``raw`` (None: refused); never one h11 refuses."""
    try:
        theirs: Read | None = _h11_read(raw)
    except h11.RemoteProtocolError:
        theirs = None
    try:
        ours: Read | None = _pool_read([raw])
    except httpcore.RemoteProtocolError:
        ours = None
    if theirs is None:
        assert ours is None, f"we read a response h11 refuses: {raw!r} -> {ours}"
    elif ours is not None:
        assert ours.status == theirs.status
        assert ours.body == theirs.body
        assert ours.reusable == theirs.reusable
    return theirs, ours


@UNSHRUNK
# The pool reads trailer fields up to the empty line and drops them without a look: h11
# refuses a malformed one, so trailers stay out of the mangling.
@given(response=valid_responses(trailers=False), data=st.data())
@pytest.mark.parametrize("mangle", ["cut", "extra", "replace", "insert", "delete"])
def test_cut_or_mangled_responses_fail_where_h11_fails(
    mangle: str, response: Response, data: st.DataObject
) -> None:
    """Cut short, lengthened, or one byte of the body changed: never read as h11 refuses.

    Heads are changed in the tests of malformed heads below.
    """
    raw = response.raw
    at = data.draw(st.integers(0 if mangle == "cut" else response.payload, len(raw)))
    byte = bytes([data.draw(st.sampled_from(b"0aF\r\n;: x\x00"))])
    if mangle == "cut":
        raw = raw[:at]
    elif mangle == "extra":
        raw += data.draw(st.binary(min_size=1, max_size=8))
    elif mangle == "replace":
        raw = raw[:at] + byte + raw[at + 1 :]
    elif mangle == "insert":
        raw = raw[:at] + byte + raw[at:]
    else:
        raw = raw[:at] + raw[at + 1 :]
    theirs, ours = _compare(raw)
    if mangle == "extra":  # a whole response, then bytes nobody asked for
        assert ours is not None
        assert theirs is not None
        assert not ours.reusable


@st.composite
def misframed_chunks(draw: st.DrawFn) -> bytes:
    """A chunked response with one chunk longer or shorter than its size line says."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=4))
    wrong = draw(st.integers(0, len(chunks) - 1))
    payload = b""
    for index, chunk in enumerate(chunks):
        size = len(chunk)
        if index == wrong:
            size += draw(st.integers(-size, 3).filter(bool))
        payload += draw(chunk_size_lines(size)) + chunk + b"\r\n"
    payload += b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + payload


@QUICK
@given(raw=misframed_chunks())
@example(raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n")
@example(raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcd\r\n0\r\n\r\n")
@example(  # a chunk of 4 bytes sent as size 0: the rest is no trailer section
    raw=b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n0\r\n":1}\r\n0\r\n\r\n'
)
def test_chunks_that_do_not_match_their_size_fail_where_h11_fails(raw: bytes) -> None:
    _compare(raw)


# --- b. malformed responses are refused -------------------------------------------------


@QUICK
@given(
    version=st.sampled_from(
        [
            *(b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/2"),
            *(b"HTTP/1", b"HTTP/11", b"http/1.1", b"HTTPS/1.1", b"ICY", b" HTTP/1.1", b""),
        ]
    ),
    separator=st.sampled_from([b" ", b"", b"  ", b"\t"]),
    code=st.integers(0, 999).map(b"%03d".__mod__)
    | st.text("0123456789x+- ", max_size=5).map(str.encode),
    reason=st.none() | st.binary(max_size=12),
)
@example(version=b"HTTP/1.1", separator=b" ", code=b"099", reason=b"Early")
@example(version=b"HTTP/1.1", separator=b" ", code=b"101", reason=b"Switching Protocols")
@example(version=b"HTTP/1.2", separator=b" ", code=b"200", reason=b"OK")
def test_status_lines_are_refused_where_h11_refuses_them(
    version: bytes, separator: bytes, code: bytes, reason: bytes | None
) -> None:
    line = version + separator + code + (b"" if reason is None else b" " + reason)
    ours = _check_head(line + b"\r\nContent-Length: 0\r\n\r\n")
    if ours is not None:  # h11 reads any HTTP/d.d; we read what HTTP/1.1 servers send
        assert line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 "))


BAD_VALUE_BYTES = {"CR in value": b"\r", "LF in value": b"\n", "NUL in value": b"\x00"}
BAD_LINE_KINDS = ["no colon", "space before colon", "obs-fold", *BAD_VALUE_BYTES, "bad name"]


@st.composite
def bad_field_lines(draw: st.DrawFn, kind: str) -> bytes:
    name, value = draw(names), draw(field_values())
    if kind == "no colon":
        return name + draw(st.sampled_from([b"", b" ", b"\t"])) + value.replace(b":", b"")
    if kind == "space before colon":
        return name + draw(st.sampled_from([b" ", b"\t", b"  "])) + b":" + value
    if kind == "obs-fold":
        return draw(st.sampled_from([b" ", b"\t", b"  "])) + value
    if kind in BAD_VALUE_BYTES:
        line = name + b": " + value
        at = draw(st.integers(len(name) + 1, len(line)))
        return line[:at] + BAD_VALUE_BYTES[kind] + line[at:]
    assert kind == "bad name"
    bad = draw(st.sampled_from([*(bytes([c]) for c in b' "(),/;<=>?@[\\]{}\x00\x7f\x80\xff')]))
    at = draw(st.integers(0, len(name)))
    return name[:at] + bad + name[at:] + b":" + value


@QUICK
@given(
    before=st.lists(st.tuples(names, field_values()), max_size=2),
    data=st.data(),
    after=st.lists(st.tuples(names, field_values()), max_size=2),
    status=statuses,
)
@pytest.mark.parametrize("kind", BAD_LINE_KINDS)
def test_malformed_field_lines_are_refused(
    kind: str, before: list[Header], data: st.DataObject, after: list[Header], status: int
) -> None:
    bad = data.draw(bad_field_lines(kind), label="bad line")
    lines = [b"%s: %s" % field for field in before] + [bad] + [b"%s: %s" % f for f in after]
    head = b"HTTP/1.1 %d OK\r\n" % status + b"".join(line + b"\r\n" for line in lines)
    head += b"Content-Length: 0\r\n\r\n"
    if not head.endswith(b"\r\n\r\n") or head.index(b"\r\n\r\n") != len(head) - 4:
        return  # the bad line itself ends the head early: another test's case
    assert _check_head(head) is None
    with pytest.raises(ProtocolError):
        parse_head(head)


@TINY
@given(
    # Not Transfer-Encoding: a coding other than chunked means reading until the close by
    # design (h11 refuses any), and "chunked" with a control byte is such a coding.
    field=st.sampled_from(
        [
            (b"X-Trace", b"abc def"),
            (b"Connection", b"close"),
            (b"Connection", b"keep-alive, close"),
            (b"Content-Length", b"0"),
            (b"Content-Type", b"application/json"),
        ]
    ),
    where=st.floats(0, 1),
)
@example(field=(b"Connection", b"close"), where=1.0)
@pytest.mark.parametrize("byte", CTLS, ids=hex)
def test_control_bytes_in_field_values_are_refused_where_h11_refuses_them(
    byte: int, field: Header, where: float
) -> None:
    name, value = field
    at = round(where * len(value))
    value = value[:at] + bytes([byte]) + value[at:]
    head = b"HTTP/1.1 200 OK\r\n%s: %s\r\n" % (name, value)
    head += b"\r\n" if name == b"Content-Length" else b"Content-Length: 0\r\n\r\n"
    if b"\r\n\r\n" in head[:-4]:
        return
    ours = _check_head(head)
    if byte in b"\r\n\x00":
        assert ours is None


@st.composite
def ambiguous_framing(draw: st.DrawFn, kind: str) -> list[bytes]:
    """Field lines that leave a response's length ambiguous or unreadable."""
    length = draw(st.integers(0, 10**6))
    te, cl = draw(casings(b"Transfer-Encoding")), draw(casings(b"Content-Length"))
    if kind == "te and cl":
        lines = [te + b": chunked", cl + b": %d" % length]
    elif kind == "conflicting cl":
        other = draw(st.integers(0, 10**6).filter(lambda n: n != length))
        if draw(st.booleans()):
            lines = [cl + b": %d, %d" % (length, other)]
        else:
            lines = [cl + b": %d" % length, cl + b": %d" % other]
    elif kind == "bad cl":
        bad = draw(
            st.sampled_from([b"+5", b"-5", b"5a", b"0x5", b"five", b"5.0", b"1e3", b"5 5", b""])
            | st.integers(10**18, 10**25).map(b"%d".__mod__)
            | st.sampled_from([b"\xd9\xa3", b"\xef\xbc\x95"])  # Arabic-Indic 3, fullwidth 5
        )
        lines = [cl + b": " + bad]
    elif kind == "chunked not last":
        coding = draw(st.sampled_from([b"gzip", b"identity", b"deflate", b""]))
        if draw(st.booleans()):
            lines = [te + b": chunked, " + coding]
        else:
            lines = [te + b": chunked", te + b": " + coding]
    elif kind != "chunked twice":
        raise AssertionError(kind)
    elif draw(st.booleans()):
        lines = [te + b": chunked, chunked"]
    else:
        lines = [te + b": gzip, chunked", te + b": chunked"]
    # The order of Transfer-Encoding fields is their codings' order: only the others move.
    return lines if kind.startswith("chunked") else draw(st.permutations(lines))


FRAMING_KINDS = ["te and cl", "conflicting cl", "bad cl", "chunked not last", "chunked twice"]


@QUICK
@given(minor=st.sampled_from([b"0", b"1"]), status=body_statuses, data=st.data())
@pytest.mark.parametrize("kind", FRAMING_KINDS)
def test_ambiguous_framing_is_refused(
    kind: str, minor: bytes, status: int, data: st.DataObject
) -> None:
    lines = data.draw(ambiguous_framing(kind), label="lines")
    head = b"HTTP/1.%s %d OK\r\n" % (minor, status) + b"".join(x + b"\r\n" for x in lines)
    head += b"\r\n"
    assert _check_head(head) is None
    with pytest.raises(ProtocolError):
        parse_head(head)


@TINY
@given(status=st.sampled_from([100, 103, *BODILESS]), data=st.data())
@pytest.mark.parametrize("kind", FRAMING_KINDS)
def test_bodiless_responses_with_bad_framing_are_refused_where_h11_refuses_them(
    kind: str, status: int, data: st.DataObject
) -> None:
    lines = data.draw(ambiguous_framing(kind), label="lines")
    head = b"HTTP/1.1 %d X\r\n" % status + b"".join(x + b"\r\n" for x in lines) + b"\r\n"
    _check_head(head)


def _h11_accepts_chunk_size(line: bytes) -> bool:
    client = _h11_client()
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    client.receive_data(head + line + b"\r\nx")
    assert isinstance(client.next_event(), h11.Response)
    try:
        event = client.next_event()
    except h11.RemoteProtocolError:
        return False
    # A chunk's first byte, or (after the last chunk) waiting for the trailer section.
    assert isinstance(event, h11.Data) or event is h11.NEED_DATA, event
    return True


# RFC 9112 7.1.1 allows whitespace before a chunk extension's ";" (BWS); h11 does not.
_BWS_BEFORE_EXTENSION = re.compile(rb"[0-9A-Fa-f]+[ \t]+;.*", re.DOTALL)


@FAST
@given(
    line=st.lists(
        st.sampled_from([*b"0123456789abcdefABCDEFxXg", *b';= \t"+-', *b"\x00\r\n\x0b", 0x80]),
        max_size=20,
    ).map(bytes)
    | st.sampled_from([b"0x10", b"-1", b"", b"+1", b" 1", b"1 1", b"1" * 17, b"f" * 20]),
)
@example(line=b"0x10")
@example(line=b"-1")
@example(line=b"")
@example(line=b"1" * 17)
def test_chunk_size_lines_are_refused_where_h11_refuses_them(line: bytes) -> None:
    h11_accepts = b"\r\n" not in line and _h11_accepts_chunk_size(line)
    try:
        size = parse_chunk_size(line)
    except ProtocolError:
        return
    leading_hex = re.match(rb"[0-9A-Fa-f]+", line)
    assert leading_hex is not None
    assert size == int(leading_hex[0], 16)
    assert len(leading_hex[0]) <= 16
    assert h11_accepts or _BWS_BEFORE_EXTENSION.fullmatch(line), line


@FAST
@given(size=st.integers(0, 2**64 - 1) | st.integers(0, 300), data=st.data())
def test_chunk_sizes_up_to_16_hex_digits_are_read_whole(size: int, data: st.DataObject) -> None:
    line = data.draw(chunk_size_lines(size), label="line")
    assert _h11_accepts_chunk_size(line[:-2])
    assert parse_chunk_size(line[:-2]) == size


# --- c. request_bytes -----------------------------------------------------------------------

methods = st.sampled_from([b"POST", b"GET", b"PUT", b"PATCH", b"DELETE"]) | st.text(
    TOKEN_CHARS, min_size=1, max_size=10
).map(str.encode).filter(lambda m: m != b"CONNECT")
targets = st.lists(st.sampled_from(bytes(range(0x21, 0x7F))), min_size=1, max_size=40).map(bytes)


@dataclass(frozen=True)
class Request:
    method: bytes
    target: bytes
    headers: list[Header]
    body: bytes


@st.composite
def requests(draw: st.DrawFn) -> Request:
    headers = [
        (name, draw(outer_space) + value + draw(outer_space))
        for name, value in draw(st.lists(st.tuples(names, field_values()), max_size=5))
    ]
    headers.insert(draw(st.integers(0, len(headers))), (draw(casings(b"Host")), b"can.example"))
    body = draw(st.binary(max_size=200))
    framing = draw(st.sampled_from(["length", "chunked"] + ([] if body else ["none"])))
    if framing == "length":
        field = (draw(casings(b"Content-Length")), b"%d" % len(body))
        headers.insert(draw(st.integers(0, len(headers))), field)
    elif framing == "chunked":
        field = (draw(casings(b"Transfer-Encoding")), draw(casings(b"chunked")))
        headers.insert(draw(st.integers(0, len(headers))), field)
    return Request(draw(methods), draw(targets), headers, body)


def _h11_serve(data: bytes) -> tuple[h11.Request, bytes]:
    """h11 as the server: the request and body it reads from ``data``, all of it."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    request = server.next_event()
    assert isinstance(request, h11.Request), request
    body = b""
    while not isinstance(event := server.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        body += event.data
    assert server.their_state is h11.DONE
    assert server.trailing_data == (b"", False)
    return request, body


@FAST
@given(request=requests())
def test_requests_read_back_through_h11(request: Request) -> None:
    data = request_bytes(request.method, request.target, request.headers, request.body)
    theirs, body = _h11_serve(data)
    assert theirs.method == request.method
    assert theirs.target == request.target
    assert theirs.http_version == b"1.1"
    sent = [(name, value.strip(b" \t")) for name, value in request.headers]
    assert theirs.headers.raw_items() == _as_h11_keeps(sent)
    assert body == request.body


@FAST
@given(
    request=requests(),
    bad=st.sampled_from([b"\r", b"\n", b"\x00", b"\r\n", b"\r\nX-Injected: 1\r\n"]),
    where=st.floats(0, 1),
)
def test_request_field_values_with_cr_lf_or_nul_are_never_sent(
    request: Request, bad: bytes, where: float
) -> None:
    index = round(where * (len(request.headers) - 1))
    name, value = request.headers[index]
    at = round(where * len(value))
    headers = [*request.headers]
    headers[index] = (name, value[:at] + bad + value[at:])
    with pytest.raises(ProtocolError, match="invalid header field"):
        request_bytes(request.method, request.target, headers, request.body)


@FAST
@given(
    request=requests(),
    name=st.binary(max_size=12).filter(lambda name: not TOKEN.fullmatch(name)),
)
def test_request_field_names_that_are_not_tokens_are_never_sent(
    request: Request, name: bytes
) -> None:
    headers = [*request.headers, (name, b"1")]
    with pytest.raises(ProtocolError, match="invalid header field"):
        request_bytes(request.method, request.target, headers, request.body)


@FAST
@given(
    request=requests(),
    method=st.none() | st.binary(max_size=8).filter(lambda m: not TOKEN.fullmatch(m)),
    bad=st.sampled_from([b"", b" ", b"\r", b"\n", b"\x00", b" HTTP/1.1\r\nX: 1"]),
)
def test_bad_request_lines_are_never_sent(
    request: Request, method: bytes | None, bad: bytes
) -> None:
    if method is None:
        method, target = request.method, (request.target + bad if bad else b"")
    else:
        target = request.target
    with pytest.raises(ProtocolError, match="invalid request line"):
        request_bytes(method, target, request.headers, request.body)
