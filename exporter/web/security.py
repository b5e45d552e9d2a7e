"""The ``--web.config.file`` in force, following the file and its TLS files on disk."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from exporter.web.auth import BasicAuth
from exporter.web.config import WebConfig, WebConfigError, load_web_config
from exporter.web.passwordchecks import CheckQueue
from exporter.web.ratelimit import RateLimit, TokenBucket
from exporter.web.tls import TLSSettings, build_ssl_context

# The web server's logger: these lines are part of what it says.
log = logging.getLogger("exporter.web")

# How often, at most, requests and TLS handshakes look for web config changes on disk.
WEB_CONFIG_CHECK_INTERVAL_SECONDS = 1.0


class WebSecurity:
    """The ``--web.config.file`` in force: rate limit, basic auth, headers and the TLS context.

    exporter-toolkit reads the file on every request; here, on requests and TLS handshakes
    (at most once per ``check_interval``), the web config file and the TLS files it names are
    stat'ed, and the file is loaded again when one of them changed. So new users, headers,
    certificates, keys and client CAs apply without a restart. A broken file is logged (again
    only when its problems change), retried on later checks, and the running settings stay.
    Turning TLS on or off and changing client_auth_type, min_version or max_version need a
    restart: such a change is logged and the running TLS settings stay.

    ``rate_limit`` follows the file too (exporter-toolkit reads it once, at start): a changed
    limit starts a new bucket, full; a reload that leaves it as it was keeps the bucket and
    its tokens, so touching the file does not refill it.
    """

    def __init__(
        self,
        config: WebConfig,
        *,
        check_interval: float = WEB_CONFIG_CHECK_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._check_interval = check_interval
        self._monotonic = monotonic
        self._checked_at = monotonic()
        self._signature = _signature(config.files())
        self._failure: list[str] | None = None
        # bcrypt gets its own thread: wrong passwords cannot starve the default executor,
        # which renders /metrics, nor use more than one core. One queue in front of it, kept
        # across reloads, bounds the checks waiting for it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="basic-auth")
        self._checks = CheckQueue(self._executor)
        self._auth = self._basic_auth(config)
        self._bucket = _bucket_of(config.rate_limit)
        self._listening_context: ssl.SSLContext | None = None
        self._context: ssl.SSLContext | None = None
        if config.tls is not None:
            self._listening_context = _context_of(config)
            self._listening_context.sni_callback = self._on_client_hello
            self._context = self._listening_context

    @property
    def config(self) -> WebConfig:
        return self._config

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The context to listen with; handshakes switch to the newest certificates."""
        return self._listening_context

    @property
    def auth(self) -> BasicAuth | None:
        return self._auth

    @property
    def checks(self) -> CheckQueue:
        """The password checks waiting or running, whichever users are configured."""
        return self._checks

    @property
    def headers(self) -> Mapping[str, str]:
        return self._config.headers

    def allow_request(self) -> bool:
        """False when ``rate_limit`` refuses the request (it then gets 429)."""
        return self._bucket is None or self._bucket.allow(self._monotonic())

    def refresh(self) -> None:
        """Load the web config again if it or its TLS files changed on disk."""
        source = self._config.source
        now = self._monotonic()
        if source is None or now - self._checked_at < self._check_interval:
            return
        self._checked_at = now
        signature = _signature(self._config.files())
        if signature == self._signature and self._failure is None:
            return
        self._signature = signature
        try:
            config = self._keep_restart_only_settings(load_web_config(source))
            context = _context_of(config) if config.tls is not None else None
        except WebConfigError as exc:
            if exc.lines() != self._failure:
                for line in exc.lines():
                    log.error(
                        "web config reload failed; keeping the running web config",
                        extra={"error": line},
                    )
            self._failure = exc.lines()
            return
        self._failure = None
        if config.users != self._config.users:
            self._auth = self._basic_auth(config)
        if config.rate_limit != self._config.rate_limit:
            self._bucket = _bucket_of(config.rate_limit)
        self._config = config
        self._signature = _signature(config.files())
        if context is not None:
            self._context = context
        _log_warnings(config)
        log.info(
            "web config reloaded",
            extra={
                "tls": config.tls_enabled,
                "basic_auth": config.basic_auth_enabled,
                "rate_limit": config.rate_limit is not None,
            },
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _basic_auth(self, config: WebConfig) -> BasicAuth | None:
        return BasicAuth(config.users, checks=self._checks) if config.users else None

    def _keep_restart_only_settings(self, config: WebConfig) -> WebConfig:
        running = self._config.tls
        changed = _restart_only_changes(running, config.tls)
        if not changed:
            return config
        log.warning(
            "web config change needs a restart; keeping the running TLS settings",
            extra={"keys": ",".join(changed)},
        )
        return dataclasses.replace(config, tls=running, ssl_context=None)

    def _on_client_hello(
        self, ssl_object: ssl.SSLObject, _server_name: str | None, context: ssl.SSLContext
    ) -> None:
        # Called for every handshake, with or without SNI (None for an IP address).
        try:
            self.refresh()
        except Exception:
            log.exception("web config check failed")
        if self._context is not None and self._context is not context:
            ssl_object.context = self._context


def _bucket_of(limit: RateLimit | None) -> TokenBucket | None:
    if limit is None:
        return None
    log.info(
        "web rate limit in force",
        extra={"burst": limit.burst, "interval_seconds": limit.interval},
    )
    return TokenBucket(limit)


def _context_of(config: WebConfig) -> ssl.SSLContext:
    """The server context of a config with TLS: the one its load built, or a new one."""
    assert config.tls is not None
    return config.ssl_context or build_ssl_context(config.tls)


def _signature(paths: Iterable[Path]) -> tuple[tuple[int, int, int] | None, ...]:
    """What tells a changed file apart: mtime, size and inode (a renamed-in file)."""
    signature: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            signature.append(None)
        else:
            signature.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(signature)


def _restart_only_changes(running: TLSSettings | None, new: TLSSettings | None) -> list[str]:
    if running is None or new is None:
        return [] if running is new else ["tls_server_config"]
    return [
        f"tls_server_config.{name}"
        for name in ("client_auth_type", "min_version", "max_version")
        if getattr(running, name) != getattr(new, name)
    ]


def _log_warnings(config: WebConfig) -> None:
    for warning in config.warnings:
        log.warning("web config warning", extra={"warning": warning})
