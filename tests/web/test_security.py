"""The web config in force follows the file and its certificates on disk, without a restart.

Time is a fake monotonic clock; TLS handshakes run in memory (ssl.MemoryBIO), without sockets.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme

from exporter.web.config import load_web_config
from exporter.web.security import WebSecurity
from exporter.web.tls import ClientAuthType
from tests.helpers.fakes import FakeMonotonic, replace_file
from tests.helpers.pki import Pki, write_server_cert

PASSWORD = "rotate-Me-3x"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
OTHER_HASH = bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def web_yml(tmp_path: Path) -> Path:
    return tmp_path / "web.yml"


def tls_section(*extra: str) -> str:
    lines = [
        "  cert_file: tls/server.crt",
        "  key_file: tls/server.key",
        *(f"  {x}" for x in extra),
    ]
    return "tls_server_config:\n" + "\n".join(lines) + "\n"


@pytest.fixture
def security(web_yml: Path, clock: FakeMonotonic) -> Iterator[WebSecurity]:
    replace_file(web_yml, f"basic_auth_users: {{alice: '{HASH}'}}\n")
    web_security = WebSecurity(load_web_config(web_yml), check_interval=1.0, monotonic=clock)
    yield web_security
    web_security.close()


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured message with its extra fields, one line each."""
    return "\n".join(
        f"{record.getMessage()} {record.__dict__.get('error', '')} "
        f"{record.__dict__.get('keys', '')}"
        for record in caplog.records
    )


def users(security: WebSecurity) -> list[str]:
    return sorted(security.config.users)


def test_a_changed_file_applies_after_the_check_interval(
    security: WebSecurity, web_yml: Path, clock: FakeMonotonic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.web")
    first_auth = security.auth
    replace_file(
        web_yml,
        f"basic_auth_users: {{alice: '{HASH}', bob: '{OTHER_HASH}'}}\n"
        "http_server_config: {headers: {X-Frame-Options: deny}}\n",
    )
    clock.now += 0.5
    security.refresh()
    assert users(security) == ["alice"]  # not checked yet

    clock.now += 0.5
    security.refresh()
    assert users(security) == ["alice", "bob"]
    assert security.headers == {"X-Frame-Options": "deny"}
    assert security.auth is not first_auth  # new users, new cache
    assert "web config reloaded" in caplog.text
    assert HASH not in caplog.text
    assert OTHER_HASH not in caplog.text


def test_an_unchanged_file_is_not_read_again(
    security: WebSecurity, web_yml: Path, clock: FakeMonotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[object] = []
    monkeypatch.setattr("exporter.web.security.load_web_config", loads.append)
    for _ in range(3):
        clock.now += 5
        security.refresh()
    assert loads == []


def test_removing_the_users_turns_basic_auth_off(
    security: WebSecurity, web_yml: Path, clock: FakeMonotonic
) -> None:
    assert security.auth is not None
    replace_file(web_yml, "http_server_config: {headers: {X-Frame-Options: deny}}\n")
    clock.now += 1
    security.refresh()
    assert security.auth is None


def test_a_header_only_change_keeps_the_auth_cache(
    security: WebSecurity, web_yml: Path, clock: FakeMonotonic
) -> None:
    auth = security.auth
    replace_file(
        web_yml,
        f"basic_auth_users: {{alice: '{HASH}'}}\n"
        "http_server_config: {headers: {X-Frame-Options: sameorigin}}\n",
    )
    clock.now += 1
    security.refresh()
    assert security.headers == {"X-Frame-Options": "sameorigin"}
    assert security.auth is auth


def test_a_broken_file_keeps_the_running_config_and_logs_once(
    security: WebSecurity, web_yml: Path, clock: FakeMonotonic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.web")
    replace_file(web_yml, f"basic_auth_users: {{alice: '{HASH}', bob: {PASSWORD}}}\n")
    for _ in range(3):  # retried at every check, logged once
        clock.now += 1
        security.refresh()
    assert users(security) == ["alice"]
    failures = [r for r in caplog.records if r.getMessage().startswith("web config reload failed")]
    assert [record.__dict__["error"] for record in failures] == [
        "web config error: basic_auth_users.bob: must be a bcrypt hash ($2a$, $2b$ or $2y$, "
        f"cost 04-31); see the README for how to make one (file={web_yml})"
    ]
    assert PASSWORD not in caplog.text

    replace_file(web_yml, f"basic_auth_users: {{alice: '{HASH}', bob: '{OTHER_HASH}'}}\n")
    clock.now += 1
    security.refresh()
    assert users(security) == ["alice", "bob"]


def test_a_deleted_file_keeps_the_running_config(
    security: WebSecurity, web_yml: Path, clock: FakeMonotonic, caplog: pytest.LogCaptureFixture
) -> None:
    web_yml.unlink()
    clock.now += 1
    security.refresh()
    assert users(security) == ["alice"]
    assert "cannot read web config file: No such file or directory" in logged(caplog)


def test_no_source_no_reload(clock: FakeMonotonic, web_yml: Path) -> None:
    replace_file(web_yml, f"basic_auth_users: {{alice: '{HASH}'}}\n")
    config = load_web_config(web_yml)
    security = WebSecurity(type(config)(users=config.users), check_interval=0, monotonic=clock)
    try:
        web_yml.unlink()
        security.refresh()
        assert users(security) == ["alice"]
    finally:
        security.close()


# --- TLS ----------------------------------------------------------------------------------------


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> dict[str, object]:
    """A TLS handshake in memory; returns the certificate the client saw."""
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    client_side = client.wrap_bio(client_in, client_out, server_hostname="127.0.0.1")
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, side, out, peer_in in (
            ("client", client_side, client_out, server_in),
            ("server", server_side, server_out, client_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            certificate = client_side.getpeercert()
            assert certificate is not None
            return dict(certificate)
    raise AssertionError("the handshake did not finish")


@pytest.fixture
def tls_security(pki: Pki, web_yml: Path, clock: FakeMonotonic) -> Iterator[WebSecurity]:
    replace_file(web_yml, tls_section())
    web_security = WebSecurity(load_web_config(web_yml), check_interval=1.0, monotonic=clock)
    yield web_security
    web_security.close()


def test_rotated_certificate_is_served_without_a_restart(
    tls_security: WebSecurity, pki: Pki, clock: FakeMonotonic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.web")
    listening = tls_security.ssl_context
    assert listening is not None
    handshake(listening, pki.client_context())

    new_ca = trustme.CA()
    trusts_new_ca = ssl.create_default_context()
    new_ca.configure_trust(trusts_new_ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(listening, trusts_new_ca)

    write_server_cert(new_ca, pki.server_cert, pki.server_key)
    clock.now += 1
    # No request needed: the handshake itself notices the new files and serves them.
    handshake(listening, trusts_new_ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(listening, pki.client_context())
    assert tls_security.ssl_context is listening  # the socket keeps its context
    assert "web config reloaded" in caplog.text


def test_half_rotated_files_keep_the_old_certificate_until_both_are_there(
    tls_security: WebSecurity, pki: Pki, clock: FakeMonotonic, caplog: pytest.LogCaptureFixture
) -> None:
    listening = tls_security.ssl_context
    assert listening is not None
    new_ca = trustme.CA()
    trusts_new_ca = ssl.create_default_context()
    new_ca.configure_trust(trusts_new_ca)
    staging = pki.directory / "staging"
    staging.mkdir()
    write_server_cert(new_ca, staging / "server.crt", staging / "server.key")

    os.replace(staging / "server.crt", pki.server_cert)  # the key is still the old one
    clock.now += 1
    handshake(listening, pki.client_context())  # the running certificate stays
    assert f"{pki.server_key} does not match cert_file {pki.server_cert}" in logged(caplog)

    os.replace(staging / "server.key", pki.server_key)
    clock.now += 1
    handshake(listening, trusts_new_ca)


def test_client_ca_rotation_without_a_restart(
    pki: Pki, web_yml: Path, clock: FakeMonotonic
) -> None:
    replace_file(
        web_yml,
        tls_section(
            "client_auth_type: RequireAndVerifyClientCert", "client_ca_file: tls/client-ca.crt"
        ),
    )
    security = WebSecurity(load_web_config(web_yml), check_interval=1.0, monotonic=clock)
    try:
        listening = security.ssl_context
        assert listening is not None
        handshake(listening, pki.client_context(with_client_cert=True))

        new_client_ca = trustme.CA()
        new_client = pki.client_context()
        new_client_ca.issue_cert("new@example.com").configure_cert(new_client)
        with pytest.raises(ssl.SSLError):
            handshake(listening, new_client)
        new_client_ca.cert_pem.write_to_path(str(pki.client_ca_file))
        clock.now += 1
        handshake(listening, new_client)
    finally:
        security.close()


def test_restart_only_changes_are_logged_and_not_applied(
    tls_security: WebSecurity,
    web_yml: Path,
    clock: FakeMonotonic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    replace_file(
        web_yml,
        tls_section(
            "client_auth_type: RequireAndVerifyClientCert",
            "client_ca_file: tls/client-ca.crt",
            "min_version: TLS13",
        )
        + f"basic_auth_users: {{alice: '{HASH}'}}\n",
    )
    clock.now += 1
    tls_security.refresh()
    assert tls_security.config.tls is not None
    assert tls_security.config.tls.client_auth_type is ClientAuthType.NO_CLIENT_CERT
    assert users(tls_security) == ["alice"]  # the rest applies
    record = next(r for r in caplog.records if r.getMessage().startswith("web config change needs"))
    assert record.__dict__["keys"] == (
        "tls_server_config.client_auth_type,tls_server_config.min_version"
    )


def test_turning_tls_off_needs_a_restart(
    tls_security: WebSecurity, web_yml: Path, clock: FakeMonotonic, caplog: pytest.LogCaptureFixture
) -> None:
    replace_file(web_yml, f"basic_auth_users: {{alice: '{HASH}'}}\n")
    clock.now += 1
    tls_security.refresh()
    assert tls_security.config.tls_enabled
    assert tls_security.config.basic_auth_enabled
    assert "web config change needs a restart" in caplog.text


def test_turning_tls_on_needs_a_restart(
    security: WebSecurity, pki: Pki, web_yml: Path, clock: FakeMonotonic
) -> None:
    replace_file(web_yml, tls_section())
    clock.now += 1
    security.refresh()
    assert not security.config.tls_enabled
    assert security.ssl_context is None
