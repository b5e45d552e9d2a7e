"""The CAN client's transport: httpx's public transport API over aiohttp (httpx-aiohttp).

``aiohttp_transport`` builds one per target, its aiohttp session configured here through public
parameters only: at most ``max_concurrency`` connections, all of them kept alive (so a cycle
after the first opens none), TLS from the target's settings, no content decoding, no cookies,
no proxy or netrc from the environment, and bounded headers. ``transport_failure`` says
what a failure raised through it means: AiohttpTransport hands some aiohttp errors on as httpx
errors of a misleading kind (a refused or dropped connection becomes ``httpx.ConnectTimeout``)
and others unmapped, so the aiohttp error underneath decides.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from exporter.can.models import FailureReason
from exporter.config import Target

# How long an idle connection is kept for the next poll. A CAN (or its gateway) closing it
# sooner costs one retried try, not a failed poll.
KEEPALIVE_SECONDS = 15.0
# The longest status line, header name and header value, and the most header fields, accepted
# from CAN: aiohttp's defaults, set here so that no upgrade loosens them.
MAX_HEADER_BYTES = 8190
MAX_HEADERS = 128
# What of a transport error's text goes into the error's message (it may quote what CAN sent).
_MESSAGE_CHARS = 300


def aiohttp_transport(target: Target, proxy: httpx.Proxy | None = None) -> AiohttpTransport:
    """The transport the daemon polls ``target`` through, via ``proxy`` when given."""
    tls = ssl_context(target)

    def session() -> aiohttp.ClientSession:
        # Built on the first request, inside the running event loop, as aiohttp wants.
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=target.max_concurrency,
                keepalive_timeout=KEEPALIVE_SECONDS,
                ssl=tls,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            max_headers=MAX_HEADERS,
        )

    return AiohttpTransport(verify=tls, trust_env=False, proxy=proxy, client=session)


def ssl_context(target: Target) -> ssl.SSLContext:
    """The TLS context ``target``'s settings ask for (also checks a CA file at once)."""
    verify: ssl.SSLContext | bool = True
    if target.insecure_skip_verify:
        verify = False
    elif target.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(target.ca_file))
    return httpx.create_ssl_context(verify=verify, trust_env=False)


# What a transport raises for the network's or CAN's failures: httpx's errors, and the aiohttp
# errors AiohttpTransport lets through unmapped.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, aiohttp.ClientError)


@dataclass(frozen=True, slots=True)
class TransportFailure:
    reason: FailureReason
    message: str
    retryable: bool  # a broken or refused connection: worth another try within the deadline


def transport_failure(exc: Exception) -> TransportFailure:
    """What ``exc``, raised by a transport (httpx's own or AiohttpTransport), means for a poll."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError) and isinstance(exc, httpx.HTTPError):
        exc = cause
    if isinstance(exc, aiohttp.ClientError):
        # Not a timeout: the connection was refused, reset or closed, TLS failed, or what
        # came back is not HTTP/1.1 aiohttp reads (a bad status line, a header over the limit,
        # a body short of its Content-Length).
        if isinstance(exc, TimeoutError):
            return TransportFailure(FailureReason.TIMEOUT, _describe_aiohttp(exc), False)
        return TransportFailure(FailureReason.CONNECTION, _describe_aiohttp(exc), True)
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure(FailureReason.TIMEOUT, describe(exc), False)
    if isinstance(exc, httpx.TransportError):
        return TransportFailure(FailureReason.CONNECTION, describe(exc), True)
    return TransportFailure(FailureReason.INVALID_RESPONSE, describe(exc), False)


def _describe_aiohttp(exc: aiohttp.ClientError) -> str:
    # A ClientResponseError's text also names the request URL; its message is what went wrong.
    detail = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    # On one line: aiohttp's parser errors quote CAN's bytes over several.
    detail = " ".join(detail.split())
    if len(detail) > _MESSAGE_CHARS:
        detail = detail[:_MESSAGE_CHARS] + "…"
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
