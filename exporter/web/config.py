"""``--web.config.file``: TLS, basic auth, headers and rate limit in exporter-toolkit's format.

The file is the one Prometheus' Go exporters read
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md).
``load_web_config(path)`` reads and validates it into a ``WebConfig`` or raises
``WebConfigError`` with one line per problem, each naming the key path; relative file paths
resolve against the web config file's directory, as exporter-toolkit does.
The TLS part is checked by building a server ``ssl.SSLContext`` from it (exporter.web.tls).

What differs from exporter-toolkit, because Python's ``ssl`` module works differently:

- ``cipher_suites`` and ``curve_preferences`` are rejected when set (OpenSSL's defaults apply);
  ``prefer_server_cipher_suites`` is accepted and ignored (Go 1.18+ ignores it too).
- Inline ``cert``, ``key`` and ``client_ca`` and ``client_allowed_sans`` are rejected with a
  message saying so.
- ``ssl`` cannot ask for a client certificate without verifying it: ``RequestClientCert``
  does not ask at all (the exporter never reads client certificates) and
  ``RequireAnyClientCert`` verifies against ``client_ca_file`` like
  ``RequireAndVerifyClientCert``; both are logged as warnings.
- ``http_server_config.http2`` is accepted; the server speaks HTTP/1.1 only.
- ``rate_limit`` is exporter-toolkit's (``exporter.webratelimit``), but follows the file on
  reload, and refuses a negative interval and a bare number other than 0.

Bcrypt hashes never appear in errors or reprs.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from exporter.config.files import (
    WEB_CONFIG_FILE_MAX_BYTES,
    FileReadError,
    read_text_file,
)
from exporter.config.yamlfile import (
    YamlError,
    load_yaml,
    validation_problems,
)
from exporter.redact import MASK, MIN_SECRET_LENGTH, redact
from exporter.textsafe import has_controls
from exporter.web.errors import WebConfigError
from exporter.web.ratelimit import RateLimit, RateLimitFile, resolve_rate_limit
from exporter.web.tls import ClientAuthType, TLSSettings, TLSVersionName, build_ssl_context

# WebConfigError is exporter.web.errors', shared with exporter.web.tls; it is what loading raises.
__all__ = ["ALLOWED_HEADERS", "WebConfig", "WebConfigError", "load_web_config", "parse_web_config"]

# $2a$, $2b$ or $2y$, a two-digit cost from 04 to 31, then 22 salt and 31 hash characters.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
# Anything shaped like a bcrypt hash is masked in error lines, wherever it was written.
_BCRYPT_LIKE = re.compile(r"\$2[a-z]?\$[0-9]{2}\$[./A-Za-z0-9]{20,}")

# pydantic's "Input should be a valid dictionary or instance of _TLSServerConfigFile".
_MODEL_NAME = re.compile(r" or instance of \w+$")

# The headers exporter-toolkit lets a web config set, with the values it allows (None: any).
ALLOWED_HEADERS: Mapping[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
}

_REMOVE = "remove the key"
# exporter-toolkit keys this exporter does not implement; a non-empty value is an error.
_UNSUPPORTED_TLS_KEYS = {
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "client_ca": "inline CA certificates are not supported; use client_ca_file",
    "cipher_suites": f"not supported: OpenSSL's default cipher suites apply; {_REMOVE}",
    "curve_preferences": f"not supported: OpenSSL's default curves apply; {_REMOVE}",
    "client_allowed_sans": f"not supported by this exporter; {_REMOVE}",
}


# --- models of the file ----------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class _TLSServerConfigFile(_Model):
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth_type: ClientAuthType = ClientAuthType.NO_CLIENT_CERT
    min_version: TLSVersionName = TLSVersionName.TLS12
    max_version: TLSVersionName = TLSVersionName.TLS13
    # Accepted for compatibility and ignored, as Go 1.18 and newer ignore it.
    prefer_server_cipher_suites: bool = True


class _HTTPServerConfigFile(_Model):
    # Accepted for compatibility; the server speaks HTTP/1.1.
    http2: bool = True
    headers: dict[str, str] = {}


class _WebConfigFile(_Model):
    tls_server_config: _TLSServerConfigFile | None = None
    http_server_config: _HTTPServerConfigFile | None = None
    basic_auth_users: dict[str, SecretStr] | None = None
    rate_limit: RateLimitFile | None = None


# --- the resolved web config ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: TLSSettings | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # User name -> bcrypt hash.
    users: Mapping[str, SecretStr] = field(default_factory=dict)
    rate_limit: RateLimit | None = None  # None: no limit
    source: str | None = None
    warnings: tuple[str, ...] = ()
    # The server context built from ``tls`` while loading (the load's own check that the
    # certificate and key work), kept so the server does not build it a second time.
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @property
    def tls_enabled(self) -> bool:
        return self.tls is not None

    @property
    def basic_auth_enabled(self) -> bool:
        return bool(self.users)

    def files(self) -> tuple[Path, ...]:
        """The web config file and the TLS files it names: what a change on disk reloads."""
        own = (Path(self.source),) if self.source is not None else ()
        return (*own, *(self.tls.files() if self.tls is not None else ()))


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate the web config file at ``path``, including a trial TLS context."""
    source = str(path)
    try:
        text = read_text_file(Path(path), WEB_CONFIG_FILE_MAX_BYTES)
    except FileReadError as exc:
        raise WebConfigError([exc.describe("web config file")], source) from None
    try:
        return parse_web_config(text, base_dir=Path(path).parent, source=source)
    except WebConfigError as exc:
        raise WebConfigError(exc.problems, source) from None


def parse_web_config(text: str, *, base_dir: Path = Path(), source: str | None = None) -> WebConfig:
    """Validate web config text; relative file paths resolve against ``base_dir``."""
    try:
        raw = load_yaml(text)
    except YamlError as exc:
        raise WebConfigError([str(exc)]) from None
    if raw is None:
        return WebConfig(source=source)  # an empty file configures nothing, as in Go
    if not isinstance(raw, dict):
        raise WebConfigError(["the top level must be a mapping"])
    secrets = _hashes_in(raw)
    raw, problems = _without_unsupported_keys(raw)
    try:
        parsed = _WebConfigFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_MODEL_NAME.sub("", problem) for problem in validation_problems(exc))
        raise WebConfigError(_masked(problems, secrets)) from None
    config = _resolve(parsed, base_dir, source, problems)
    if problems:
        raise WebConfigError(_masked(problems, secrets))
    return config


def _hashes_in(raw: dict[Any, Any]) -> list[str]:
    """The values under basic_auth_users (hashes, or passwords written there by mistake).

    Very short ones are left out, as for the config's auth values: masking every "a" would
    garble the line and give the value away by the pattern of masks. They are refused anyway
    (not a bcrypt hash), and problem lines never quote values.
    """
    users = raw.get("basic_auth_users")
    if not isinstance(users, dict):
        return []
    return [
        value
        for value in users.values()
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH
    ]


def _masked(problems: Sequence[str], secrets: Sequence[str]) -> list[str]:
    """A second guard: no problem line carries a configured hash or anything shaped like one."""
    return [_BCRYPT_LIKE.sub(MASK, redact(problem, secrets)) for problem in problems]


def _without_unsupported_keys(raw: dict[Any, Any]) -> tuple[dict[Any, Any], list[str]]:
    problems: list[str] = []
    cleaned = dict(raw)
    tls = cleaned.get("tls_server_config")
    if isinstance(tls, dict):
        tls = dict(tls)
        for key, message in _UNSUPPORTED_TLS_KEYS.items():
            if tls.pop(key, None):
                problems.append(f"tls_server_config.{key}: {message}")
        cleaned["tls_server_config"] = tls
    return cleaned, problems


def _resolve(
    parsed: _WebConfigFile, base_dir: Path, source: str | None, problems: list[str]
) -> WebConfig:
    tls: TLSSettings | None = None
    context: ssl.SSLContext | None = None
    warnings: list[str] = []
    if parsed.tls_server_config is not None:
        tls_problems: list[str] = []
        tls = _resolve_tls(parsed.tls_server_config, base_dir, tls_problems)
        if not tls_problems:
            try:
                context = build_ssl_context(tls)
            except WebConfigError as exc:
                tls_problems.extend(exc.problems)
        problems.extend(tls_problems)
        warnings.extend(_tls_warnings(tls))
    headers = parsed.http_server_config.headers if parsed.http_server_config else {}
    problems.extend(_header_problems(headers))
    users = parsed.basic_auth_users or {}
    problems.extend(_user_problems(users))
    rate_limit, rate_limit_warnings = resolve_rate_limit(parsed.rate_limit)
    warnings.extend(rate_limit_warnings)
    return WebConfig(
        tls=tls,
        headers={name: value for name, value in headers.items() if value},
        users=dict(users),
        rate_limit=rate_limit,
        source=source,
        warnings=tuple(warnings),
        ssl_context=context,
    )


def _resolve_tls(
    settings: _TLSServerConfigFile, base_dir: Path, problems: list[str]
) -> TLSSettings:
    where = "tls_server_config"
    cert_file = _existing_file(settings.cert_file, base_dir, f"{where}.cert_file", problems)
    key_file = _existing_file(settings.key_file, base_dir, f"{where}.key_file", problems)
    client_ca_file = None
    if settings.client_ca_file:  # "" means unset, as in Go
        client_ca_file = _existing_file(
            settings.client_ca_file, base_dir, f"{where}.client_ca_file", problems
        )
    auth = settings.client_auth_type
    if auth.verify_mode is not ssl.CERT_NONE and not settings.client_ca_file:
        problems.append(f"{where}.client_ca_file: required when client_auth_type is {auth}")
    if client_ca_file is not None and auth is ClientAuthType.NO_CLIENT_CERT:
        problems.append(
            f"{where}.client_ca_file: set, but client_auth_type is {auth}; "
            f"set client_auth_type to {ClientAuthType.REQUIRE_AND_VERIFY_CLIENT_CERT}"
        )
    if settings.min_version.version > settings.max_version.version:
        problems.append(
            f"{where}.min_version: {settings.min_version} is above "
            f"max_version {settings.max_version}"
        )
    return TLSSettings(
        cert_file=cert_file,
        key_file=key_file,
        client_ca_file=client_ca_file,
        client_auth_type=auth,
        min_version=settings.min_version,
        max_version=settings.max_version,
    )


def _existing_file(value: str, base_dir: Path, key: str, problems: list[str]) -> Path:
    if not value:
        problems.append(f"{key}: must not be empty")
        return Path(value)
    path = base_dir / value  # an absolute value replaces base_dir
    if not path.exists():
        problems.append(f"{key}: file not found: {path}")
    elif not path.is_file():
        problems.append(f"{key}: not a regular file: {path}")
    return path


def _tls_warnings(tls: TLSSettings) -> Iterator[str]:
    auth = tls.client_auth_type
    if auth is ClientAuthType.REQUEST_CLIENT_CERT:
        yield (
            f"tls_server_config.client_auth_type: {auth} does not ask clients for a certificate "
            "here: Python's ssl cannot ask without verifying, and the exporter never reads it"
        )
    elif auth is ClientAuthType.REQUIRE_ANY_CLIENT_CERT:
        yield (
            f"tls_server_config.client_auth_type: {auth} verifies client certificates against "
            f"client_ca_file here, like {ClientAuthType.REQUIRE_AND_VERIFY_CLIENT_CERT}"
        )


def _header_problems(headers: Mapping[str, str]) -> Iterator[str]:
    for name, value in headers.items():
        where = f"http_server_config.headers.{name}"
        if name not in ALLOWED_HEADERS:
            allowed_names = ", ".join(ALLOWED_HEADERS)
            yield f"{where}: this header can not be configured; use one of {allowed_names}"
            continue
        allowed = ALLOWED_HEADERS[name]
        if allowed is not None and value not in allowed:
            yield f"{where}: must be one of {', '.join(allowed)}"
        elif has_controls(value):
            yield f"{where}: must not contain control characters such as CR or LF"


def _user_problems(users: Mapping[str, SecretStr]) -> Iterator[str]:
    for name, hashed in users.items():
        if not name:
            yield "basic_auth_users: a user name must not be empty"
        elif ":" in name:
            yield f"basic_auth_users.{name}: a user name must not contain ':'"
        elif _BCRYPT_HASH.fullmatch(hashed.get_secret_value()) is None:
            yield (
                f"basic_auth_users.{name}: must be a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31); "
                "see the README for how to make one"
            )
