"""--web.config.file end to end: the real exporter process serving TLS and basic auth on 127.0.0.1.

CAN is a closed 127.0.0.1 port polled once an hour: the exporter serves /metrics without it,
and /readyz turns 200 once the first poll has failed.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import trustme

from tests.helpers.pki import Pki, write_server_cert
from tests.integration.processes import (
    Exporter,
    free_port,
    one_quiet_group_config,
    run_exporter,
    wait_for,
)

pytestmark = pytest.mark.integration

PASSWORD = "e2e-Scrape-pa55word"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
OTHER_PASSWORD = "second-User-pa55"
OTHER_HASH = bcrypt.hashpw(OTHER_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
RELOAD_TIMEOUT = 15.0


TLS = """
tls_server_config:
  cert_file: tls/server.crt
  key_file: tls/server.key
"""
MTLS = """
tls_server_config:
  cert_file: tls/server.crt
  key_file: tls/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: tls/client-ca.crt
"""
USERS = f"""
basic_auth_users:
  prometheus: '{HASH}'
"""
HEADERS = """
http_server_config:
  headers:
    X-Frame-Options: deny
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(one_quiet_group_config(free_port()))
    return path


def start(config: Path, web_config: str, client_options: dict[str, Any], *extra: str) -> Exporter:
    web_yml = config.parent / "web.yml"
    web_yml.write_text(web_config)
    return Exporter(
        [
            "--config.file",
            str(config),
            "--web.config.file",
            str(web_yml),
            "--log.format",
            "json",
            "--log.level",
            "debug",
            *extra,
        ],
        config.parent,
        https="tls_server_config" in web_config,
        client_options=client_options,
    )


@pytest.fixture
def exporter(config: Path, pki: Pki) -> Iterator[Exporter]:
    process = start(
        config,
        TLS + USERS + HEADERS,
        {"verify": pki.client_context(), "auth": ("prometheus", PASSWORD)},
    )
    yield process
    process.stop()


def get(exporter: Exporter, path: str = "/metrics", **options: Any) -> httpx.Response:
    return httpx.get(exporter.url + path, timeout=5.0, **{**exporter.client_options, **options})


def test_https_with_basic_auth(exporter: Exporter, pki: Pki) -> None:
    assert exporter.url.startswith("https://127.0.0.1:")
    samples = exporter.scrape()
    assert ("aloudata_can_exporter_build_info", frozenset()) not in samples  # has a version
    assert any(name == "aloudata_can_exporter_build_info" for name, _ in samples)
    assert get(exporter).headers["X-Frame-Options"] == "deny"
    for path in ("/healthz", "/readyz", "/"):
        assert get(exporter, path).status_code == 200, path

    for auth in (None, ("prometheus", "wrong"), ("mallory", PASSWORD)):
        response = get(exporter, auth=auth)
        assert response.status_code == 401, auth
        assert response.headers["WWW-Authenticate"] == 'Basic realm="aloudata-can-exporter"'
        assert response.headers["X-Frame-Options"] == "deny"
        assert "aloudata_can" not in response.text

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(exporter, verify=ssl.create_default_context())  # the system CAs do not know it
    with pytest.raises(httpx.TransportError):
        httpx.get(exporter.url.replace("https://", "http://") + "/metrics", timeout=5.0)
    assert get(exporter).status_code == 200  # still serving after the failed handshakes


def test_secrets_never_reach_the_log(exporter: Exporter) -> None:
    for auth in (("prometheus", PASSWORD), ("prometheus", "wrong"), ("nobody", PASSWORD)):
        get(exporter, auth=auth)
    assert exporter.stop() == 0
    log = exporter.log()
    started = next(line for line in log.splitlines() if '"msg": "exporter started"' in line)
    assert '"tls": true' in started
    assert '"basic_auth": true' in started
    assert PASSWORD not in log
    assert HASH not in log
    assert HASH[7:] not in log
    assert base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode() not in log


def test_client_certificates(config: Path, pki: Pki) -> None:
    process = start(config, MTLS, {"verify": pki.client_context(with_client_cert=True)})
    try:
        assert get(process).status_code == 200
        with pytest.raises(httpx.TransportError):
            get(process, verify=pki.client_context())  # no client certificate
        stranger = pki.client_context()
        trustme.CA().issue_cert("stranger@example.com").configure_cert(stranger)
        with pytest.raises(httpx.TransportError):
            get(process, verify=stranger)  # a certificate from another CA
        assert get(process).status_code == 200
    finally:
        process.stop()


def test_basic_auth_without_tls(config: Path) -> None:
    process = start(config, USERS, {"auth": ("prometheus", PASSWORD)})
    try:
        assert process.url.startswith("http://")
        assert get(process).status_code == 200
        assert get(process, auth=None).status_code == 401
    finally:
        process.stop()
    started = next(
        line for line in process.log().splitlines() if '"msg": "exporter started"' in line
    )
    assert '"tls": false' in started
    assert '"basic_auth": true' in started


def test_certificates_and_users_change_without_a_restart(
    exporter: Exporter, config: Path, pki: Pki
) -> None:
    new_ca = trustme.CA()
    trusts_new_ca = ssl.create_default_context()
    new_ca.configure_trust(trusts_new_ca)
    staging = pki.directory / "staging"
    staging.mkdir()
    write_server_cert(new_ca, staging / "server.crt", staging / "server.key")
    os.replace(staging / "server.key", pki.server_key)
    os.replace(staging / "server.crt", pki.server_cert)

    def serves_the_new_certificate() -> bool:
        try:
            return get(exporter, verify=trusts_new_ca).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(serves_the_new_certificate, RELOAD_TIMEOUT, "the rotated certificate")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(exporter)  # trusts only the old CA
    exporter.client_options["verify"] = trusts_new_ca

    web_yml = config.parent / "web.yml"
    web_yml.write_text(TLS + USERS + f"  grafana: '{OTHER_HASH}'\n")
    wait_for(
        lambda: get(exporter, auth=("grafana", OTHER_PASSWORD)).status_code == 200,
        RELOAD_TIMEOUT,
        "the added user",
    )

    web_yml.write_text(TLS + "basic_auth_users: {prometheus: not-a-hash}\n")

    def reload_failed() -> bool:
        get(exporter)  # a request is what looks at the file
        return "web config reload failed" in exporter.log()

    wait_for(reload_failed, RELOAD_TIMEOUT, "the failed reload in the log")
    assert get(exporter).status_code == 200  # the running users stay
    assert get(exporter, auth=("grafana", OTHER_PASSWORD)).status_code == 200
    assert exporter.stop() == 0
    assert OTHER_PASSWORD not in exporter.log()
    assert OTHER_HASH not in exporter.log()


# --- bad web configs ------------------------------------------------------------------------------


BAD_WEB_CONFIG = f"""
tls_server_config:
  cert_file: tls/missing.crt
  key_file: tls/server.key
basic_auth_users:
  prometheus: '{HASH}'
  grafana: {PASSWORD}
"""


def expected_lines(web_yml: Path) -> list[str]:
    return [
        "web config error: tls_server_config.cert_file: file not found: "
        f"{web_yml.parent}/tls/missing.crt (file={web_yml})",
        "web config error: basic_auth_users.grafana: must be a bcrypt hash ($2a$, $2b$ or $2y$, "
        f"cost 04-31); see the README for how to make one (file={web_yml})",
    ]


@pytest.mark.parametrize(
    "mode", [pytest.param((), id="serve"), pytest.param(("--check-config",), id="check-config")]
)
def test_bad_web_config_exits_1_with_one_line_per_problem(
    config: Path, pki: Pki, mode: tuple[str, ...]
) -> None:
    web_yml = config.parent / "web.yml"
    web_yml.write_text(BAD_WEB_CONFIG)
    port = free_port()
    result = run_exporter(
        "--config.file",
        str(config),
        "--web.config.file",
        str(web_yml),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        *mode,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == expected_lines(web_yml)
    assert result.stdout == ""
    assert PASSWORD not in result.stderr
    assert HASH[7:] not in result.stderr


def test_bad_web_config_from_the_environment(config: Path, pki: Pki) -> None:
    web_yml = config.parent / "web.yml"
    web_yml.write_text(BAD_WEB_CONFIG)
    result = run_exporter(
        "--config.file",
        str(config),
        "--check-config",
        env={"ALOUDATA_CAN_EXPORTER_WEB_CONFIG_FILE": str(web_yml)},
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == expected_lines(web_yml)


def test_check_config_validates_a_good_web_config(config: Path, pki: Pki) -> None:
    web_yml = config.parent / "web.yml"
    web_yml.write_text(MTLS + USERS)
    result = run_exporter(
        "--config.file", str(config), "--web.config.file", str(web_yml), "--check-config"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "config ok: 1 targets, 1 groups\n"

    web_yml.write_text(TLS.replace("tls/server.key", "tls/other.key"))
    result = run_exporter(
        "--config.file", str(config), "--web.config.file", str(web_yml), "--check-config"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"web config error: tls_server_config.key_file: {pki.other_key} does not match "
        f"cert_file {pki.server_cert} (file={web_yml})"
    ]
