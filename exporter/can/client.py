"""HTTP client for one CAN target: requests, limits and failure classification."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from exporter import __version__
from exporter.can.models import CanError, FailureReason, Reading, parse_latest_time
from exporter.can.pool import ConnectionPool
from exporter.config import PlanKey, Target
from exporter.resilience import RateLimiter

# A real answer is a few hundred bytes; anything this large is not CAN talking.
MAX_RESPONSE_BYTES = 1024 * 1024
_USER_AGENT = f"aloudata-can-exporter/{__version__}"
# Transport errors and 5xx are retried within the poll's own timeout, at most this many tries.
MAX_ATTEMPTS = 3
_FIRST_RETRY_PAUSE = 0.1


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one request gave: a reading or an error, and how long CAN took."""

    reading: Reading | None
    error: CanError | None
    duration_seconds: float


class CanClient:
    """Polls the latestTime endpoint of one target, at most ``max_concurrency`` at a time."""

    def __init__(self, target: Target, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.target = target
        self._slots = asyncio.Semaphore(target.max_concurrency)
        self._headers = {
            "tenant-id": target.tenant_id,
            "auth-type": target.auth_type.value,
            "auth-value": target.auth_value.get_secret_value(),
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": _USER_AGENT,
        }
        self._url = httpx.URL(target.endpoint)
        self._transport = transport or CanTransport(
            target.max_concurrency,
            httpx.create_ssl_context(verify=_tls_verify(target), trust_env=False),
        )
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
        try together) leaves room, unless ``retry`` is False (one try: a circuit's probe).
        The duration covers the tries, not the wait for a free slot or for the rate limit.
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
                error.redact([self._headers["auth-value"]])
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
        # Straight to the transport: a poll needs none of the client's layers (auth, cookies,
        # redirects, event hooks), and they were a sixth of a poll's CPU.
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
                    payload = await _read_capped(response)
                finally:
                    await response.aclose()
                status = response.status_code
        except TimeoutError:
            raise CanError(FailureReason.TIMEOUT, f"no answer within {timeout:g}s") from None
        except httpx.TimeoutException as exc:
            raise CanError(FailureReason.TIMEOUT, _describe(exc)) from None
        except httpx.TransportError as exc:
            raise _RetryableError(CanError(FailureReason.CONNECTION, _describe(exc))) from None
        except httpx.HTTPError as exc:
            raise CanError(FailureReason.INVALID_RESPONSE, _describe(exc)) from None
        if status >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise _RetryableError(_status_error(status, payload))
        if status != httpx.codes.OK:
            raise _status_error(status, payload)
        return parse_latest_time(payload, self.target.timezone)

    async def aclose(self) -> None:
        self._closed = True
        await self._transport.aclose()


class _RetryableError(Exception):
    """A failure worth another try: the connection broke or CAN answered 5xx."""

    def __init__(self, error: CanError) -> None:
        super().__init__(error.message)
        self.error = error


class CanTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on the CAN client's own connection pool (exporter.can.pool).

    Requests still go through httpx's own ``handle_async_request`` (and so through
    pytest-httpx in the tests); only the pool underneath is replaced.
    """

    def __init__(self, connections: int, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx's keep-alive expiry. Every connection may stay open: with fewer, busy polls
        # would reconnect (a TLS handshake each against a real CAN).
        self._pool = ConnectionPool(ssl_context, connections, keepalive_expiry=5.0)  # type: ignore[assignment]


def _tls_verify(target: Target) -> ssl.SSLContext | bool:
    if target.insecure_skip_verify:
        return False
    if target.ca_file is not None:
        return ssl.create_default_context(cafile=str(target.ca_file))
    return True


async def _read_capped(response: httpx.Response) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise CanError(
            FailureReason.INVALID_RESPONSE, f"response of {declared} bytes is over the limit"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
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


def _describe(exc: Exception) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
