"""A target's HTTP proxy, configured as Prometheus' HTTP client does it.

The keys are prometheus/common's ``ProxyConfig``: ``proxy_url``, ``no_proxy``,
``proxy_from_environment`` and ``proxy_connect_header``, with its validation rules. A target
has one URL, so ``resolve_proxy`` decides once, when the config loads, whether and through
which proxy it goes (``no_proxy`` and ``NO_PROXY`` match as exporter.noproxy says), and the
environment is read from the mapping given, never from ``os.environ``.

Pure: no I/O, no logging. A proxy's password and ``proxy_connect_header`` values are secrets:
kept in ``SecretStr``, never in an error message, listed by ``Proxy.secrets()`` for masking.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import SecretStr

from exporter.config.noproxy import bypasses_proxy
from exporter.textsafe import has_controls, header_value_problem

_NO_SECRET = SecretStr("")
_SCHEMES = ("http", "https")
_SOCKS_SCHEMES = ("socks", "socks4", "socks4a", "socks5", "socks5h")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Framing and routing of the CONNECT request itself: the HTTP client writes these.
_CLIENT_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)


class ProxyConfigError(ValueError):
    """A proxy setting is unusable; the message starts with the key it names."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """The proxy a target's requests go through, its credentials kept apart from its URL."""

    url: str  # scheme://host[:port], without credentials
    source: str  # proxy_url, or the environment variable it came from (HTTPS_PROXY...)
    username: str = ""
    password: SecretStr = _NO_SECRET
    # The password as written in the URL, percent-encoded: masked in logs as well.
    written_password: SecretStr = _NO_SECRET
    # proxy_connect_header: sent on the CONNECT request of an https:// target only.
    connect_headers: tuple[tuple[str, SecretStr], ...] = ()

    @property
    def has_credentials(self) -> bool:
        return bool(self.username or self.password.get_secret_value())

    def basic_credentials(self) -> str:
        """The user name and password as Basic auth encodes them (base64), "" without any."""
        if not self.has_credentials:
            return ""
        # ASCII only (parse_proxy_url), so every encoding a client may pick gives these bytes.
        pair = f"{self.username}:{self.password.get_secret_value()}".encode("ascii")
        return base64.b64encode(pair).decode("ascii")

    def secrets(self) -> list[str]:
        values = [self.password, self.written_password, *(v for _, v in self.connect_headers)]
        secrets = [secret for value in values if (secret := value.get_secret_value())]
        # The Proxy-Authorization header's credentials, should an error ever quote that header.
        return [*secrets, self.basic_credentials()] if self.has_credentials else secrets


def resolve_proxy(
    target_url: str,
    proxy_url: str | None,
    no_proxy: str | None,
    from_environment: bool,
    environ: Mapping[str, str],
    *,
    connect_header: Mapping[str, Sequence[SecretStr]] | None = None,
) -> Proxy | None:
    """The proxy ``target_url`` goes through, or None to go direct.

    ``proxy_url`` "" counts as unset, as in Prometheus. Raises ProxyConfigError.
    """
    _check_combination(proxy_url, no_proxy, from_environment, connect_header)
    target = urlsplit(target_url)
    # Sent on CONNECT only, as Go does: a plain http:// request to a proxy carries none.
    headers = _connect_headers(connect_header or {})
    if target.scheme != "https":
        headers = ()
    if from_environment:
        return _from_environment(target, environ, headers)
    if not proxy_url:
        return None
    proxy = parse_proxy_url(proxy_url, connect_headers=headers)
    # Without no_proxy Prometheus proxies every request, loopback too (Go's http.ProxyURL);
    # with it, httpproxy's rules apply, loopback going direct among them.
    if no_proxy and bypasses_proxy(target, no_proxy):
        return None
    return proxy


def connect_header_ignored(target_url: str, connect_header: Mapping[str, Any] | None) -> bool:
    """Whether ``proxy_connect_header`` is set for a plain http:// target: it sends no CONNECT."""
    return bool(connect_header) and urlsplit(target_url).scheme == "http"


def inline_proxy_secrets(raw: Any) -> list[str]:
    """Passwords and connect header values written in a raw (unvalidated) config's targets."""
    targets = raw.get("targets") if isinstance(raw, dict) else None
    if not isinstance(targets, list):
        return []
    secrets: list[str] = []
    for target in targets:
        if not isinstance(target, dict):
            continue
        url = target.get("proxy_url")
        if isinstance(url, str):
            secrets.extend(_url_passwords(url))
        headers = target.get("proxy_connect_header")
        if isinstance(headers, dict):
            for values in headers.values():
                if isinstance(values, list):
                    secrets.extend(value for value in values if isinstance(value, str))
    return [secret for secret in secrets if secret]


def _url_passwords(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def _check_combination(
    proxy_url: str | None,
    no_proxy: str | None,
    from_environment: bool,
    connect_header: Mapping[str, Sequence[SecretStr]] | None,
) -> None:
    """prometheus/common's ProxyConfig.Validate, in its order, naming the key at fault."""
    if connect_header and not from_environment and not proxy_url:
        raise ProxyConfigError(
            "proxy_connect_header: needs proxy_url or proxy_from_environment to be set"
        )
    if from_environment and proxy_url:
        raise ProxyConfigError("proxy_url: must not be set when proxy_from_environment is true")
    if from_environment and no_proxy:
        raise ProxyConfigError(
            "no_proxy: must not be set when proxy_from_environment is true "
            "(NO_PROXY from the environment applies)"
        )
    if proxy_url is None and no_proxy:
        raise ProxyConfigError("no_proxy: needs proxy_url to be set")


def parse_proxy_url(
    text: str,
    key: str = "proxy_url",
    connect_headers: tuple[tuple[str, SecretStr], ...] = (),
    source: str = "proxy_url",
) -> Proxy:
    """An http:// or https:// proxy URL, ``user:password@`` taken out; never echoes ``text``.

    ``key`` names the setting in errors; ``source`` is where the URL came from.
    """
    if has_controls(text) or " " in text:
        raise ProxyConfigError(f"{key}: must not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ProxyConfigError(f"{key}: not a valid URL (check the host and port)") from None
    scheme = parts.scheme.lower()
    if scheme in _SOCKS_SCHEMES:
        raise ProxyConfigError(
            f"{key}: {scheme} proxies are not supported; use an http:// or https:// proxy"
        )
    if scheme not in _SCHEMES or not parts.hostname:
        raise ProxyConfigError(f"{key}: must be an http:// or https:// URL with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyConfigError(
            f"{key}: must be scheme://[user:password@]host[:port], "
            "without a path, query or fragment"
        )
    username, password = unquote(parts.username or ""), unquote(parts.password or "")
    _check_credentials(username, password, key)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Proxy(
        url=f"{scheme}://{host}" + (f":{port}" if port is not None else ""),
        source=source,
        username=username,
        password=SecretStr(password),
        written_password=SecretStr(parts.password or ""),
        connect_headers=connect_headers,
    )


def _check_credentials(username: str, password: str, key: str) -> None:
    if ":" in username:
        raise ProxyConfigError(f"{key}: the user name must not contain ':' (Basic auth)")
    for text in (username, password):
        # Sent in the Proxy-Authorization header: base64 hides a CR or LF from the proxy's
        # parser, not from the proxy's own use of the decoded text; and clients encode
        # non-ASCII text differently (aiohttp Latin-1, Go UTF-8).
        problem = header_value_problem(text)
        if problem is not None:
            raise ProxyConfigError(f"{key}: the user name and password {problem}")


def _connect_headers(
    headers: Mapping[str, Sequence[SecretStr]],
) -> tuple[tuple[str, SecretStr], ...]:
    checked: list[tuple[str, SecretStr]] = []
    for name, values in headers.items():
        key = f"proxy_connect_header.{name}"
        if not _HEADER_NAME.fullmatch(name):
            raise ProxyConfigError(f"{key}: not a valid header name")
        if name.lower() in _CLIENT_HEADERS:
            raise ProxyConfigError(f"{key}: set by the HTTP client itself; remove it")
        for position, value in enumerate(values):
            problem = header_value_problem(value.get_secret_value())
            if problem is not None:
                raise ProxyConfigError(f"{key}[{position}]: {problem}")
            checked.append((name, value))
    return tuple(checked)


# --- the environment: httpproxy.FromEnvironment ----------------------------------------------


def _from_environment(
    target: SplitResult,
    environ: Mapping[str, str],
    connect_headers: tuple[tuple[str, SecretStr], ...],
) -> Proxy | None:
    """HTTPS_PROXY for an https:// target, HTTP_PROXY for http://, unless NO_PROXY matches."""
    names = (
        ("HTTPS_PROXY", "https_proxy") if target.scheme == "https" else ("HTTP_PROXY", "http_proxy")
    )
    found = _first_set(environ, names)
    if found is None:
        return None
    name, value = found
    key = f"proxy_from_environment: {name}"
    if target.scheme == "http" and environ.get("REQUEST_METHOD"):
        raise ProxyConfigError(
            f"{key}: refused because REQUEST_METHOD is set: in a CGI program a client can set "
            "HTTP_PROXY (see https://go.dev/s/cgihttpproxy)"
        )
    proxy = parse_proxy_url(_with_scheme(value), key, connect_headers, source=name)
    no_proxy = _first_set(environ, ("NO_PROXY", "no_proxy"))
    if bypasses_proxy(target, no_proxy[1] if no_proxy else ""):
        return None
    return proxy


def _first_set(environ: Mapping[str, str], names: Iterable[str]) -> tuple[str, str] | None:
    """The first of ``names`` set to a non-empty value: upper case wins, as in Go."""
    return next(((name, environ[name]) for name in names if environ.get(name)), None)


def _with_scheme(value: str) -> str:
    """``host:port`` means ``http://host:port``, as in httpproxy's parseProxy."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    return value if parts.scheme and parts.netloc else f"http://{value}"
