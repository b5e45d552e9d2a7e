"""TLS for the web server: the ``tls_server_config`` settings and the server context from them.

``TLSSettings`` is the resolved ``tls_server_config`` (exporter.web.config reads and checks the
file); ``build_ssl_context(tls)`` turns it into a server context, or raises ``WebConfigError``
naming the files and what is wrong with them: no PEM data, an encrypted key, a key that does
not match the certificate, a client CA OpenSSL cannot load.

``ssl`` cannot ask for a client certificate without verifying it: ``RequestClientCert``
does not ask at all and ``RequireAnyClientCert`` verifies like ``RequireAndVerifyClientCert``.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from exporter.config.files import PEM_FILE_MAX_BYTES, FileReadError, read_regular_file
from exporter.config.yamlfile import os_reason
from exporter.web.errors import WebConfigError

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----")
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


class ClientAuthType(StrEnum):
    NO_CLIENT_CERT = "NoClientCert"
    REQUEST_CLIENT_CERT = "RequestClientCert"
    REQUIRE_ANY_CLIENT_CERT = "RequireAnyClientCert"
    VERIFY_CLIENT_CERT_IF_GIVEN = "VerifyClientCertIfGiven"
    REQUIRE_AND_VERIFY_CLIENT_CERT = "RequireAndVerifyClientCert"

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        if self is ClientAuthType.VERIFY_CLIENT_CERT_IF_GIVEN:
            return ssl.CERT_OPTIONAL
        if self in (
            ClientAuthType.REQUIRE_ANY_CLIENT_CERT,
            ClientAuthType.REQUIRE_AND_VERIFY_CLIENT_CERT,
        ):
            return ssl.CERT_REQUIRED
        return ssl.CERT_NONE


class TLSVersionName(StrEnum):
    TLS10 = "TLS10"
    TLS11 = "TLS11"
    TLS12 = "TLS12"
    TLS13 = "TLS13"

    @property
    def version(self) -> ssl.TLSVersion:
        return _TLS_VERSIONS[self]


_TLS_VERSIONS = {
    TLSVersionName.TLS10: ssl.TLSVersion.TLSv1,
    TLSVersionName.TLS11: ssl.TLSVersion.TLSv1_1,
    TLSVersionName.TLS12: ssl.TLSVersion.TLSv1_2,
    TLSVersionName.TLS13: ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True, slots=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: ClientAuthType = ClientAuthType.NO_CLIENT_CERT
    min_version: TLSVersionName = TLSVersionName.TLS12
    max_version: TLSVersionName = TLSVersionName.TLS13

    def files(self) -> tuple[Path, ...]:
        """The files the TLS context is built from."""
        optional = (self.client_ca_file,) if self.client_ca_file is not None else ()
        return (self.cert_file, self.key_file, *optional)


class _EncryptedKeyError(Exception):
    """The key file asked for a password; the exporter has none to give."""


def _no_password() -> bytes:
    raise _EncryptedKeyError


def build_ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """A server context for ``tls``; raises WebConfigError naming the files on failure."""
    problems = _pem_problems(tls)
    if problems:
        raise WebConfigError(problems)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version.version
    context.maximum_version = tls.max_version.version
    where = "tls_server_config"
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    except _EncryptedKeyError:
        raise WebConfigError(
            [f"{where}.key_file: {tls.key_file} is encrypted; give an unencrypted key"]
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            message = f"{where}.key_file: {tls.key_file} does not match cert_file {tls.cert_file}"
        else:
            message = (
                f"{where}: cannot load cert_file {tls.cert_file} with key_file {tls.key_file}: "
                f"{_ssl_reason(exc)}"
            )
        raise WebConfigError([message]) from None
    except OSError as exc:
        raise WebConfigError(
            [
                f"{where}: cannot load cert_file {tls.cert_file} with key_file {tls.key_file}: "
                f"{os_reason(exc)}"
            ]
        ) from None
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            reason = _ssl_reason(exc) if isinstance(exc, ssl.SSLError) else os_reason(exc)
            raise WebConfigError(
                [f"{where}.client_ca_file: cannot load {tls.client_ca_file}: {reason}"]
            ) from None
    context.verify_mode = tls.client_auth_type.verify_mode
    return context


def _pem_problems(tls: TLSSettings) -> list[str]:
    """OpenSSL says only "PEM lib" for a file without PEM data; name the file instead."""
    checks: list[tuple[str, Path | None, re.Pattern[bytes], str]] = [
        ("cert_file", tls.cert_file, _PEM_CERTIFICATE, "certificate"),
        ("key_file", tls.key_file, _PEM_PRIVATE_KEY, "private key"),
        ("client_ca_file", tls.client_ca_file, _PEM_CERTIFICATE, "certificate"),
    ]
    problems = []
    for key, path, marker, what in checks:
        if path is None:
            continue
        try:
            data = read_regular_file(path, PEM_FILE_MAX_BYTES)
        except FileReadError as exc:
            problems.append(f"tls_server_config.{key}: {exc.describe()}")
            continue
        if marker.search(data) is None:
            problems.append(f"tls_server_config.{key}: no PEM {what} in {path}")
    return problems


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = exc.reason
    return reason.lower().replace("_", " ") if reason else "OpenSSL cannot parse it"
