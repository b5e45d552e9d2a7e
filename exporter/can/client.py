"""HTTP client for one CAN target: requests, limits and failure classification.

``CanClient`` builds ``httpx.Request`` objects and sends them through an httpx transport's
public ``handle_async_request``, getting ``httpx.Response`` objects and httpx's errors back.
The transport is a seam: the daemon's is httpx's transport API over aiohttp
(exporter.can.transport); tests pass httpx's own, which pytest-httpx fakes.

It does not go through ``httpx.AsyncClient``: everything the client adds above its transport
is something a poll turns off (redirects, cookies, auth flows, proxy mounts, event hooks), and
those layers cost about a sixth of a poll's CPU, enough to decide whether a 10,000-group first
cycle meets its goal (bench/README.md, "Transports").
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from typing import Protocol

import httpx

from exporter import __version__
from exporter.can.models import (
    LATEST_TIME_PATH,
    CanError,
    FailureReason,
    PollResult,
    Reading,
    parse_latest_time,
)
from exporter.can.ratelimit import RateLimiter
from exporter.can.transport import TRANSPORT_ERRORS, aiohttp_transport, transport_failure
from exporter.config.model import PlanKey, Target

# A real answer is a few hundred bytes; anything this large is not CAN talking.
MAX_RESPONSE_BYTES = 1024 * 1024
_USER_AGENT = f"aloudata-can-exporter/{__version__}"
# Transport errors and 5xx are retried within the poll's own timeout, at most this many tries.
MAX_ATTEMPTS = 3
_FIRST_RETRY_PAUSE = 0.1
# What of a refused Content-Encoding the error quotes.
_CODING_ECHO_CHARS = 64


class TransportFactory(Protocol):
    def __call__(self, target: Target) -> httpx.AsyncBaseTransport: ...


# What a CanClient built without a transport sends through. Unit tests set httpx's own here
# (tests/conftest.py), which pytest-httpx fakes.
default_transport: TransportFactory = aiohttp_transport


class CanClient:
    """Polls the latestTime endpoint of one target, at most ``max_concurrency`` at a time."""

    def __init__(self, target: Target, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.target = target
        self._slots = asyncio.Semaphore(target.max_concurrency)
        self._secret = target.auth_value.get_secret_value()
        # What an error's text must not show: the auth value, and the proxy's credentials
        # should a proxy or the transport quote them.
        self._secrets = [self._secret, *(target.proxy.secrets() if target.proxy else ())]
        # Every request's own headers, built once: send() takes a request as it is.
        self._headers = httpx.Headers(
            {
                "tenant-id": target.tenant_id,
                "auth-type": target.auth_type.value,
                "auth-value": self._secret,
                "content-type": "application/json",
                "accept": "application/json",
                # The answer's bytes are bounded before anything decodes them: none is asked for.
                "accept-encoding": "identity",
                "user-agent": _USER_AGENT,
            }
        )
        # Nothing above the transport: a redirect is an answer like any other (not 200, so a
        # failure), and a cookie CAN (or a gateway) sets is neither kept nor sent back.
        self._transport = transport if transport is not None else default_transport(target)
        self._url = httpx.URL(target.url + LATEST_TIME_PATH)
        self._closed = False
        self._limiter = RateLimiter(target.rate_limit) if target.rate_limit else None
        self._random = random.Random()  # noqa: S311 - jitter, not secrets
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"CanClient(target={self.target.name!r}, url={self.target.url!r})"

    async def poll(
        self, plan_key: PlanKey, plans: Sequence[str], timeout: float, *, retry: bool = True
    ) -> PollResult:
        """Ask CAN about ``plans``; never raises for CAN's or the network's failures.

        Transport errors and 5xx answers are retried while ``timeout`` (which bounds every
        try together) leaves room; with ``retry=False`` (a circuit's probe) there is exactly
        one try. The duration covers the tries, not the wait for a free slot or for the rate
        limit.
        """
        if self._closed:
            raise RuntimeError("CanClient is closed")
        body = json.dumps({plan_key.value: list(plans)}, ensure_ascii=False).encode()
        async with self._slots:
            await self._wait_for_rate_limit()
            started = time.perf_counter()
            deadline = started + timeout
            try:
                attempts = MAX_ATTEMPTS if retry else 1
                reading = await self._fetch_with_retries(body, deadline, timeout, attempts)
            except CanError as error:
                # A gateway may echo the credentials in its error text.
                error.redact(self._secrets)
                return PollResult(None, error, time.perf_counter() - started)
            return PollResult(reading, None, time.perf_counter() - started)

    async def _wait_for_rate_limit(self) -> None:
        if self._limiter is not None:
            delay = self._limiter.reserve(time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)

    async def _fetch_with_retries(
        self, body: bytes, deadline: float, timeout: float, attempts: int
    ) -> Reading:
        remaining = timeout
        for attempt in range(1, attempts + 1):
            try:
                return await self._fetch(body, remaining, timeout)
            except _RetryableError as retryable:
                pause = _FIRST_RETRY_PAUSE * 2 ** (attempt - 1) * (0.5 + self._random.random())
                # Give up when the next try could not get at least as long as the pause.
                if attempt == attempts or time.perf_counter() + 2 * pause >= deadline:
                    raise retryable.error from None
                await asyncio.sleep(pause)
                await self._wait_for_rate_limit()
                remaining = deadline - time.perf_counter()
                if remaining <= 0:  # the rate limit held the retry past the deadline
                    raise retryable.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch(self, body: bytes, remaining: float, timeout: float) -> Reading:
        request = httpx.Request(
            "POST",
            self._url,
            content=body,
            headers=self._headers,
            extensions={"timeout": httpx.Timeout(remaining).as_dict()},
        )
        self.requests_sent += 1
        try:
            # httpx's timeout bounds each phase; the deadline bounds the whole exchange,
            # so a server trickling bytes cannot hold a poll past its timeout.
            async with asyncio.timeout(remaining):
                response = await self._transport.handle_async_request(request)
                try:
                    status = response.status_code
                    coding = _content_coding(response.headers)
                    # An error's details are not worth decoding a body for: it stays unread.
                    payload = b"" if coding else await _read_capped(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise CanError(FailureReason.TIMEOUT, f"no answer within {timeout:g}s") from None
        except TRANSPORT_ERRORS as exc:
            failure = transport_failure(exc)
            error = CanError(failure.reason, failure.message)
            raise (_RetryableError(error) if failure.retryable else error) from None
        # A 408 says the server gave up on the connection, and the request may be repeated on
        # a new one (RFC 9110, 15.5.9). It is also what a proxy sends on a kept-alive
        # connection it closes, which aiohttp reads as the next request's answer.
        if status >= httpx.codes.INTERNAL_SERVER_ERROR or status == httpx.codes.REQUEST_TIMEOUT:
            raise _RetryableError(_status_error(status, payload))
        if status != httpx.codes.OK:
            raise _status_error(status, payload)
        if coding:
            raise CanError(
                FailureReason.INVALID_RESPONSE,
                f"CAN answered with Content-Encoding {coding!r}; the exporter asks for identity",
            )
        return parse_latest_time(payload, self.target.timezone)

    async def aclose(self) -> None:
        self._closed = True
        await self._transport.aclose()


class _RetryableError(Exception):
    """A failure worth another try: the connection broke or CAN answered 5xx or 408."""

    def __init__(self, error: CanError) -> None:
        super().__init__(error.message)
        self.error = error


def _content_coding(headers: httpx.Headers) -> str | None:
    """The Content-Encoding of an answer that has one other than identity (shortened)."""
    codings = headers.get_list("content-encoding", split_commas=True)
    if all(coding.strip().lower() in ("", "identity") for coding in codings):
        return None
    value = ", ".join(coding.strip() for coding in codings)
    return value if len(value) <= _CODING_ECHO_CHARS else value[:_CODING_ECHO_CHARS] + "…"


async def _read_capped(response: httpx.Response) -> bytes:
    """The body's bytes as CAN sent them (nothing decoded), refused past MAX_RESPONSE_BYTES."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise CanError(
            FailureReason.INVALID_RESPONSE, f"response of {declared} bytes is over the limit"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise CanError(
                FailureReason.INVALID_RESPONSE,
                f"response is over the limit of {MAX_RESPONSE_BYTES} bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _status_error(status: int, payload: bytes) -> CanError:
    error_msg, trace_id = _error_fields(payload)
    if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
        reason = FailureReason.AUTH
    else:
        reason = FailureReason.HTTP_STATUS
    return CanError(reason, f"HTTP {status}", error_msg=error_msg, trace_id=trace_id)


def _error_fields(payload: bytes) -> tuple[str | None, str | None]:
    """CAN's errorMsg and traceId from an error body, when it is JSON."""
    try:
        decoded = json.loads(payload)
    except ValueError:
        return None, None
    if not isinstance(decoded, dict):
        return None, None
    error_msg, trace_id = decoded.get("errorMsg"), decoded.get("traceId")
    return (
        str(error_msg)[:512] if error_msg is not None else None,
        str(trace_id)[:128] if trace_id is not None else None,
    )
