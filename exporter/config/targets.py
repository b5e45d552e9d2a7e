"""Resolution of one ``targets`` entry: its secret read from a file, its CA bundle checked, its
proxy resolved, into the frozen ``Target``."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from exporter.config.files import (
    PEM_FILE_MAX_BYTES,
    SECRET_FILE_MAX_BYTES,
    FileReadError,
    read_regular_file,
    read_text_file,
)
from exporter.config.model import (
    AuthType,
    Target,
)
from exporter.config.proxy import resolve_proxy
from exporter.config.schema import (
    Defaults,
    TargetSettings,
    auth_value_problem,
)
from exporter.config.yamlfile import os_reason
from exporter.config.zones import load_zone


def resolve_target(
    settings: TargetSettings, defaults: Defaults, base_dir: Path, environ: Mapping[str, str]
) -> Target:
    auth = settings.auth
    value_file = base_dir / auth.value_file if auth.value_file is not None else None
    return Target(
        name=settings.name,
        url=settings.url,
        tenant_id=settings.tenant_id,
        auth_type=auth.type,
        auth_value=auth.value
        if auth.value is not None
        else _read_auth_value(value_file, auth.type),
        timezone=load_zone(settings.timezone) if settings.timezone else None,
        max_concurrency=settings.max_concurrency,
        rate_limit=settings.rate_limit,
        timeout=settings.timeout or defaults.timeout,
        ca_file=_resolve_ca_file(settings.tls.ca_file, base_dir),
        insecure_skip_verify=settings.tls.insecure_skip_verify,
        auth_value_file=value_file,
        proxy=resolve_proxy(
            settings.url,
            settings.proxy_url,
            settings.no_proxy,
            settings.proxy_from_environment,
            environ,
            connect_header=settings.proxy_connect_header,
        ),
    )


def _read_auth_value(path: Path | None, auth_type: AuthType) -> SecretStr:
    assert path is not None  # AuthSettings guarantees value or value_file
    try:
        value = read_text_file(path, SECRET_FILE_MAX_BYTES).strip()
    except FileReadError as exc:
        raise ValueError(f"auth.value_file: {exc.describe()}") from None
    if not value:
        raise ValueError(f"auth.value_file: {path} is empty")
    problem = auth_value_problem(value, auth_type)
    if problem is not None:
        raise ValueError(f"auth.value_file: {path}: {problem}")
    return SecretStr(value)


def _resolve_ca_file(path: Path | None, base_dir: Path) -> Path | None:
    """The CA bundle's path, once it has been seen to load: the client builds its TLS context
    from it, and a file that is not a PEM bundle would fail there, with a traceback."""
    resolved = _resolve_path(path, base_dir, "tls.ca_file")
    if resolved is not None:
        # OpenSSL reads the path itself: check first that it is a regular file of sane size.
        try:
            read_regular_file(resolved, PEM_FILE_MAX_BYTES)
        except FileReadError as exc:
            raise ValueError(f"tls.ca_file: {exc.describe()}") from None
        try:
            ssl.create_default_context(cafile=str(resolved))
        except (ssl.SSLError, OSError, UnicodeDecodeError) as exc:
            detail = getattr(exc, "reason", None) or os_reason(exc)
            raise ValueError(f"tls.ca_file: {resolved} is not a PEM CA bundle: {detail}") from None
    return resolved


def _resolve_path(path: Path | None, base_dir: Path, key: str) -> Path | None:
    if path is None:
        return None
    resolved = base_dir / path
    if not resolved.exists():
        raise ValueError(f"{key}: no such file {resolved}")
    return resolved
