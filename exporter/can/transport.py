"""The CAN client's transport: httpx's public transport API over aiohttp (httpx-aiohttp).

``aiohttp_transport`` builds one per target, its aiohttp session configured here through public
parameters only: at most ``max_concurrency`` connections, all of them kept alive (so a cycle
after the first opens none), TLS from the target's settings, the target's proxy (config.py
resolved it, environment included), no content decoding, no cookies, no proxy or netrc from
the environment at request time, and bounded headers. ``transport_failure`` says
what a failure raised through it means: AiohttpTransport hands some aiohttp errors on as httpx
errors of a misleading kind (a refused or dropped connection becomes ``httpx.ConnectTimeout``)
and others unmapped, so the aiohttp error underneath decides.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from exporter.can.models import FailureReason
from exporter.config.model import Target

# How long an idle connection is kept for the next poll. A CAN (or its gateway) closing it
# sooner costs one retried try, not a failed poll.
KEEPALIVE_SECONDS = 15.0
# The longest status line, header name and header value, and the most header fields, accepted
# from CAN: aiohttp's defaults, set here so that no upgrade loosens them.
MAX_HEADER_BYTES = 8190
MAX_HEADERS = 128
# What of a transport error's text goes into the error's message (it may quote what CAN sent).
_MESSAGE_CHARS = 300


def aiohttp_transport(target: Target) -> AiohttpTransport:
    """The transport the daemon polls ``target`` through, via its proxy when it has one."""
    tls = ssl_context(target)
    forward_proxy = forward_proxy_url(target)

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
            proxy=forward_proxy,
        )

    return AiohttpTransport(verify=tls, trust_env=False, proxy=tunnel_proxy(target), client=session)


# A proxy's credentials reach aiohttp in one of two ways, never through httpx.Proxy's ``auth``:
# AiohttpTransport hands that to aiohttp's deprecated BasicAuth and ``proxy_auth`` (a
# DeprecationWarning on every request, and gone in aiohttp 4). aiohttp sends ``proxy_headers``
# on CONNECT only, and takes credentials written in the proxy URL itself for both kinds.


def tunnel_proxy(target: Target) -> httpx.Proxy | None:
    """For an https:// target: the proxy asked for a CONNECT tunnel, with that request's
    headers (``proxy_connect_header``, and Proxy-Authorization from the proxy's credentials)."""
    proxy = target.proxy
    if proxy is None or urlsplit(target.url).scheme != "https":
        return None
    headers = [(name, value.get_secret_value()) for name, value in proxy.connect_headers]
    if proxy.has_credentials:
        # The URL's credentials win over a Proxy-Authorization in proxy_connect_header, as in Go.
        headers = [
            (name, value) for name, value in headers if name.lower() != "proxy-authorization"
        ]
        headers.append(("Proxy-Authorization", f"Basic {proxy.basic_credentials()}"))
    return httpx.Proxy(proxy.url, headers=headers)


def forward_proxy_url(target: Target) -> str | None:
    """For an http:// target: the proxy each request is sent to, its credentials in the URL,
    from which aiohttp writes every request's Proxy-Authorization header."""
    proxy = target.proxy
    if proxy is None or urlsplit(target.url).scheme == "https":
        return None
    if not proxy.has_credentials:
        return proxy.url
    scheme, _, address = proxy.url.partition("://")
    username = quote(proxy.username, safe="")
    password = quote(proxy.password.get_secret_value(), safe="")
    return f"{scheme}://{username}:{password}@{address}"


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
        if isinstance(exc, aiohttp.ClientHttpProxyError):
            # The proxy refused the tunnel. A 4xx (407: credentials, 403: a port it does not
            # allow) will be the same on another try; a 5xx (it could not reach CAN) may not.
            retryable = exc.status >= httpx.codes.INTERNAL_SERVER_ERROR
            return TransportFailure(FailureReason.CONNECTION, _describe_aiohttp(exc), retryable)
        return TransportFailure(FailureReason.CONNECTION, _describe_aiohttp(exc), True)
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure(FailureReason.TIMEOUT, describe(exc), False)
    if isinstance(exc, httpx.TransportError):
        return TransportFailure(FailureReason.CONNECTION, describe(exc), True)
    return TransportFailure(FailureReason.INVALID_RESPONSE, describe(exc), False)


def _describe_aiohttp(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        # aiohttp's own text says "Cannot connect to host", which reads as CAN's.
        host = f"[{exc.host}]" if ":" in exc.host else exc.host
        reason = exc.os_error.strerror or str(exc.os_error)
        detail = f"cannot connect to the proxy {host}:{exc.port}: {reason}"
    elif isinstance(exc, aiohttp.ClientHttpProxyError):
        detail = f"the proxy answered CONNECT with {exc.status} {exc.message}"
    elif isinstance(exc, aiohttp.ClientResponseError):
        # Its text also names the request URL; its message is what went wrong.
        detail = exc.message
    else:
        detail = str(exc)
    # On one line: aiohttp's parser errors quote CAN's bytes over several.
    detail = " ".join(detail.split())
    if len(detail) > _MESSAGE_CHARS:
        detail = detail[:_MESSAGE_CHARS] + "…"
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
