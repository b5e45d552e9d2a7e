"""A raw-socket fake CAN for fault injection: it misbehaves below the HTTP library's level.

``RawCan`` listens on 127.0.0.1:<free port> and answers every request after reading it whole.
What it does depends on the FIRST plan of the request body's ``planIdList`` or
``planNameList``, a behaviour name from ``BEHAVIOURS`` (``status_<code>`` takes any code).
Plans named ``ok`` or ``ok_<anything>`` get a valid, fresh answer; ``flip_<behaviour>``
answers ``ok`` to its first request and behaves as ``<behaviour>`` from then on; anything
else gets a 400 naming the unknown behaviour.

Every request is counted per first plan (``count``) and its plan list and headers kept
(``last``), so tests can check what reached the server and that it was not hammered. Each
connection has its own thread; ``stop()`` wakes hanging handlers, closes every socket and
fails if a thread outlives it, so nothing leaks past a test's teardown. Given an
``ssl_context`` it speaks TLS (its ``url`` is then https://).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

# The longest a hanging handler waits; the client hanging up or stop() ends it sooner.
MAX_HANG_SECONDS = 120.0
_HANDSHAKE_SECONDS = 5.0
HUGE_BODY_BYTES = 50 * 1024 * 1024
_CHUNK = b" " * 65536
_MAX_REQUEST_BYTES = 4 * 1024 * 1024
_POLL_SECONDS = 0.2
# gzip(gzip(3 GiB of zero bytes)), zlib level 9: 5 KiB that inflate to 3 GiB.
GZIP_BOMB = (Path(__file__).parent / "gzip-gzip-3gib.bin").read_bytes()


@dataclass(frozen=True)
class Request:
    plan_key: str | None
    plans: list[str]
    headers: dict[str, str]


@dataclass
class _Stats:
    counts: Counter[str] = field(default_factory=Counter)
    last: dict[str, Request] = field(default_factory=dict)
    active: Counter[str] = field(default_factory=Counter)


class RawCan:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self._tls = ssl_context
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="rawcan-accept", daemon=True)

    def start(self) -> Self:
        self._acceptor.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, wake and close every handler; raise if a thread is still alive."""
        self._stop.set()
        self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in [self._acceptor, *threads] if t.is_alive()]
        if alive:
            raise AssertionError(f"raw CAN threads outlived stop(): {alive}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what the tests read -----------------------------------------------------------------

    def count(self, first_plan: str) -> int:
        """Requests seen whose first plan was ``first_plan``."""
        with self._lock:
            return self._stats.counts[first_plan]

    def last(self, first_plan: str) -> Request | None:
        with self._lock:
            return self._stats.last.get(first_plan)

    def active(self, first_plan: str) -> int:
        """Requests with this first plan being answered (or hung on) right now."""
        with self._lock:
            return self._stats.active[first_plan]

    # --- serving -------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(_POLL_SECONDS)
            thread = threading.Thread(
                target=self._serve, args=(connection,), name="rawcan-conn", daemon=True
            )
            with self._lock:
                self._connections.add(connection)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            if self._tls is not None:
                connection = self._handshake(connection, self._tls)
            request = self._read_request(connection)
            if request is None:
                return
            behaviour = self._behaviour(request)
            first = request.plans[0] if request.plans else ""
            with self._lock:
                self._stats.active[first] += 1
            try:
                self._respond(connection, behaviour, request)
            finally:
                with self._lock:
                    self._stats.active[first] -= 1
        except OSError:
            pass  # the client gave up (timeout, over-limit body): expected for most faults
        finally:
            with self._lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                connection.close()

    def _handshake(self, connection: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
        connection.settimeout(_HANDSHAKE_SECONDS)
        wrapped = context.wrap_socket(connection, server_side=True)
        wrapped.settimeout(_POLL_SECONDS)
        with self._lock:  # stop() shuts down the socket that now carries the connection
            self._connections.discard(connection)
            self._connections.add(wrapped)
        return wrapped

    def _behaviour(self, request: Request) -> str:
        first = request.plans[0] if request.plans else ""
        with self._lock:
            self._stats.counts[first] += 1
            self._stats.last[first] = request
            seen = self._stats.counts[first]
        if first == "ok" or first.startswith("ok_"):
            return "ok"
        if first.startswith("flip_"):
            return "ok" if seen == 1 else first.removeprefix("flip_")
        if first == "hang_long":
            return "hang_before_headers"
        return first

    def _recv(self, connection: socket.socket) -> bytes:
        """One recv that wakes up for stop(); b"" when the peer or stop() closed it."""
        while not self._stop.is_set():
            try:
                return connection.recv(65536)
            except TimeoutError:
                continue
        return b""

    def _read_request(self, connection: socket.socket) -> Request | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv(connection)
            if not chunk or len(data) > _MAX_REQUEST_BYTES:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < min(length, _MAX_REQUEST_BYTES):
            chunk = self._recv(connection)
            if not chunk:
                return None
            body += chunk
        try:
            payload = json.loads(body)
        except ValueError:
            return Request(None, [], headers)
        for key in ("planIdList", "planNameList"):
            plans = payload.get(key) if isinstance(payload, dict) else None
            if isinstance(plans, list):
                return Request(key, [str(plan) for plan in plans], headers)
        return Request(None, [], headers)

    def _hang(self, connection: socket.socket) -> None:
        """Send nothing until the client hangs up, stop() is called or MAX_HANG_SECONDS pass."""
        connection.settimeout(_POLL_SECONDS)
        deadline = time.monotonic() + MAX_HANG_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if not connection.recv(1):
                    return  # the client gave up: this request is no longer outstanding
            except TimeoutError:
                continue

    def _respond(self, connection: socket.socket, behaviour: str, request: Request) -> None:
        # Streams and hangs block in sendall/recv; stop() wakes them with shutdown().
        connection.settimeout(MAX_HANG_SECONDS)
        code = behaviour.removeprefix("status_")
        if behaviour.startswith("status_") and code.isdigit():
            payload = _error_payload(f"failed with {code}", code=code)
            _send(connection, int(code), json.dumps(payload))
        elif behaviour in _DATA_FAULTS:
            _send(connection, 200, json.dumps(_ok_payload(**_DATA_FAULTS[behaviour])))
        elif behaviour in _STATIC:
            status, body = _STATIC[behaviour]
            _send(connection, status, body if isinstance(body, str) else json.dumps(body))
        elif behaviour in _ACTIONS:
            _ACTIONS[behaviour](self, connection, request.headers.get("auth-value", ""))
        else:
            payload = _error_payload(f"rawcan: unknown behaviour {behaviour!r}", code="400")
            _send(connection, 400, json.dumps(payload))

    # --- behaviours that do more than send one answer --------------------------------------------

    def _ok(self, connection: socket.socket, _: str) -> None:
        _send(connection, 200, json.dumps(_ok_payload()))

    def _hang_before_headers(self, connection: socket.socket, _: str) -> None:
        self._hang(connection)

    def _hang_after_headers(self, connection: socket.socket, _: str) -> None:
        connection.sendall(_head(200, {"Content-Length": "200"}))
        self._hang(connection)

    def _trickle(self, connection: socket.socket, _: str) -> None:
        """A byte every 0.3 s: inside any per-read timeout, but never a whole answer."""
        connection.sendall(_head(200, {"Content-Length": "200"}))
        for _byte in range(200):
            if self._stop.wait(0.3):
                return
            connection.sendall(b" ")

    def _reset(self, connection: socket.socket, _: str) -> None:
        # SO_LINGER on with a zero timeout: the close() in _serve sends RST instead of FIN.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _empty_reply(self, _: socket.socket, __: str) -> None:
        """Close without a byte: what a crashing worker behind a proxy looks like."""

    def _not_http(self, connection: socket.socket, _: str) -> None:
        connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    def _redirect(self, connection: socket.socket, _: str) -> None:
        _send(connection, 302, "", {"Location": "http://127.0.0.1:1/elsewhere"})

    def _html(self, connection: socket.socket, _: str) -> None:
        page = "<html><body><h1>Welcome to nginx!</h1></body></html>"
        _send(connection, 200, page, {"Content-Type": "text/html"})

    def _truncated_json(self, connection: socket.socket, _: str) -> None:
        text = json.dumps(_ok_payload()).encode()
        connection.sendall(_head(200, {"Content-Length": str(len(text) + 500)}) + text[:40])

    def _missing_data_key(self, connection: socket.socket, _: str) -> None:
        payload = _ok_payload()
        del payload["data"]
        _send(connection, 200, json.dumps(payload))

    def _huge_body(self, connection: socket.socket, _: str) -> None:
        connection.sendall(_head(200, {"Content-Length": str(HUGE_BODY_BYTES)}))
        self._stream(connection, chunked=False)

    def _huge_body_chunked(self, connection: socket.socket, _: str) -> None:
        connection.sendall(_head(200, {"Transfer-Encoding": "chunked"}))
        self._stream(connection, chunked=True)

    def _huge_body_eof(self, connection: socket.socket, _: str) -> None:
        connection.sendall(_head(200, {}))  # no length: the body ends when we close
        self._stream(connection, chunked=False)

    def _gzip_bomb(self, connection: socket.socket, _: str) -> None:
        _send(connection, 200, GZIP_BOMB, {"Content-Encoding": "gzip, gzip"})

    def _gzip(self, connection: socket.socket, _: str) -> None:
        body = gzip.compress(json.dumps(_ok_payload()).encode())
        _send(connection, 200, body, {"Content-Encoding": "gzip"})

    def _deflate(self, connection: socket.socket, _: str) -> None:
        body = zlib.compress(json.dumps(_ok_payload()).encode())
        _send(connection, 200, body, {"Content-Encoding": "deflate"})

    def _br(self, connection: socket.socket, _: str) -> None:
        # Not brotli (no encoder here): a client that decoded it would fail differently.
        _send(connection, 200, json.dumps(_ok_payload()), {"Content-Encoding": "br"})

    def _echo_secret_401(self, connection: socket.socket, secret: str) -> None:
        """A gateway that echoes the credential it was sent into its error text and trace id."""
        body = _error_payload(f"invalid auth-value {secret!r}", code="401")
        body["traceId"] = f"gw-{secret}"
        _send(connection, 401, json.dumps(body))

    def _echo_secret_200(self, connection: socket.socket, secret: str) -> None:
        body = _error_payload(f"no tenant for credential {secret}", code="500")
        body["traceId"] = f"trace-{secret}"
        _send(connection, 200, json.dumps(body))

    def _stream(self, connection: socket.socket, *, chunked: bool) -> None:
        """Send HUGE_BODY_BYTES without building them; ends when the client hangs up."""
        frame = f"{len(_CHUNK):x}\r\n".encode() + _CHUNK + b"\r\n" if chunked else _CHUNK
        for _ in range(HUGE_BODY_BYTES // len(_CHUNK)):
            if self._stop.is_set():
                return
            connection.sendall(frame)
        if chunked:
            connection.sendall(b"0\r\n\r\n")


_Action = Callable[[RawCan, socket.socket, str], None]
_ACTIONS: dict[str, _Action] = {
    name: getattr(RawCan, f"_{name}")
    for name in (
        "ok",
        "hang_before_headers",
        "hang_after_headers",
        "trickle",
        "reset",
        "empty_reply",
        "not_http",
        "redirect",
        "html",
        "truncated_json",
        "missing_data_key",
        "huge_body",
        "huge_body_chunked",
        "huge_body_eof",
        "gzip_bomb",
        "gzip",
        "deflate",
        "br",
        "echo_secret_401",
        "echo_secret_200",
    )
}
_DATA_FAULTS: dict[str, dict[str, object]] = {
    "wrong_types": {"hasNotReady": "yes"},
    "wrong_types_time": {"latestDateTime": 12},
    "bad_date_format": {"latestDateTime": "2024/08/23 10:00"},
    "impossible_date": {"latestDateTime": "2024-13-45 99:00:00"},
    "zero_date": {"latestDateTime": "0000-00-00 00:00:00"},
}


def _ok_payload(**data: object) -> dict[str, object]:
    """A fresh answer in UTC: today's data, refreshed a minute ago; ``data`` overrides fields."""
    now = datetime.now(UTC)
    return {
        "data": {
            "hasNotReady": False,
            "latestDateTime": now.strftime("%Y-%m-%d 00:00:00"),
            "latestRefreshTime": (now - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S"),
            **data,
        },
        "success": True,
        "code": "200",
        "errorMsg": None,
        "detailErrorMsg": None,
        "traceId": "rawcan.0.1",
    }


def _error_payload(message: str, *, code: str, success: bool = False) -> dict[str, object]:
    return {
        "data": None,
        "success": success,
        "code": code,
        "errorMsg": message,
        "detailErrorMsg": None,
        "traceId": "rawcan.0.2",
    }


_REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_REASONS |= {404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}
_REASONS |= {503: "Service Unavailable"}


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Connection: close"]
    headers = {"Content-Type": "application/json", **headers}
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _send(
    connection: socket.socket,
    status: int,
    text: str | bytes,
    headers: dict[str, str] | None = None,
) -> None:
    body = text.encode() if isinstance(text, str) else text
    head = _head(status, {"Content-Length": str(len(body)), **(headers or {})})
    connection.sendall(head + body)


# Behaviours that are one fixed answer: (HTTP status, JSON body or raw text).
_STATIC: dict[str, tuple[int, dict[str, object] | str]] = {
    "deep_json": (200, "[" * 200_000),
    "plan_not_found": (
        200,
        _error_payload("Acceleration plan does not exist", code="200", success=True),
    ),
    "api_error": (200, _error_payload("Internal error", code="500")),
    "code_401": (200, _error_payload("token expired", code="401", success=True)),
}

_STATUSES = tuple(f"status_{status}" for status in (401, 403, 404, 500, 502, 503))
BEHAVIOURS = (*_ACTIONS, *_STATIC, *_DATA_FAULTS, *_STATUSES)
