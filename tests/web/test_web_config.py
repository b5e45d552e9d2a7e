"""--web.config.file: bad YAML in, the exact one-line problems out; good files resolve."""

from __future__ import annotations

import ssl
from pathlib import Path

import bcrypt
import pytest

from exporter.web.config import WebConfig, WebConfigError, load_web_config, parse_web_config
from exporter.web.ratelimit import RateLimit
from exporter.web.tls import ClientAuthType, TLSSettings, TLSVersionName, build_ssl_context
from tests.helpers.pki import Pki, make_pki

PASSWORD = "c0rrect-h0rse-Battery"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"


# One PKI for the module (it only reads the files): the shared per-test one costs a second
# of key generation per test.
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls(*extra: str, cert: str = "server.crt", key: str = "server.key") -> str:
    """A tls_server_config section; ``extra`` lines are more keys of it."""
    lines = [f"  cert_file: {cert}", f"  key_file: {key}", *(f"  {line}" for line in extra)]
    return "tls_server_config:\n" + "\n".join(lines) + "\n"


def problems_of(text: str, base_dir: Path) -> list[str]:
    with pytest.raises(WebConfigError) as caught:
        parse_web_config(text, base_dir=base_dir)
    return caught.value.problems


# --- the table: text in, exact problems out ({dir} is the directory of the certificates) ------

CLIENT_AUTH_TYPES = (
    "'NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven' "
    "or 'RequireAndVerifyClientCert'"
)
BCRYPT_ONLY = (
    "must be a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31); see the README for how to make one"
)
CA_REQUIRED = "tls_server_config.client_ca_file: required when client_auth_type is"
NOT_SUPPORTED = "not supported by this exporter; remove the key"

BAD_WEB_CONFIGS: list[tuple[str, str, list[str]]] = [
    # the file itself
    (
        "YAML syntax error",
        "tls_server_config: [\n",
        ["invalid YAML: did not find expected node content at line 2, column 1"],
    ),
    (
        "duplicate key",
        TLS + TLS,
        ["invalid YAML: duplicate key 'tls_server_config' at line 4, column 1"],
    ),
    ("top level is a list", "- tls_server_config\n", ["the top level must be a mapping"]),
    ("unknown top-level key", "tls_config: {}\n", ["tls_config: unknown key"]),
    (
        "tls section is not a mapping",
        "tls_server_config: yes\n",
        ["tls_server_config: Input should be a valid dictionary"],
    ),
    # tls_server_config keys
    (
        "unknown tls key",
        tls("client_ca_fil: ca.crt"),
        ["tls_server_config.client_ca_fil: unknown key"],
    ),
    (
        "an empty tls section needs cert and key",
        "tls_server_config: {}\n",
        [
            "tls_server_config.cert_file: required key is missing",
            "tls_server_config.key_file: required key is missing",
        ],
    ),
    (
        "missing key_file",
        "tls_server_config: {cert_file: server.crt}\n",
        ["tls_server_config.key_file: required key is missing"],
    ),
    (
        "cert_file not found",
        tls(cert="missing.crt"),
        ["tls_server_config.cert_file: file not found: {dir}/missing.crt"],
    ),
    (
        "both files not found",
        tls(cert="/nonexistent/a.crt", key="/nonexistent/a.key"),
        [
            "tls_server_config.cert_file: file not found: /nonexistent/a.crt",
            "tls_server_config.key_file: file not found: /nonexistent/a.key",
        ],
    ),
    ("empty cert_file", tls(cert="''"), ["tls_server_config.cert_file: must not be empty"]),
    (
        "cert_file is a directory",
        tls(cert="."),
        ["tls_server_config.cert_file: not a regular file: {dir}"],
    ),
    (
        "client_ca_file not found",
        tls("client_ca_file: nope.crt", "client_auth_type: RequireAndVerifyClientCert"),
        ["tls_server_config.client_ca_file: file not found: {dir}/nope.crt"],
    ),
    (
        "unknown client_auth_type",
        tls("client_auth_type: RequireClientCertPlease"),
        [f"tls_server_config.client_auth_type: Input should be {CLIENT_AUTH_TYPES}"],
    ),
    (
        "RequireAndVerifyClientCert without a CA",
        tls("client_auth_type: RequireAndVerifyClientCert"),
        [f"{CA_REQUIRED} RequireAndVerifyClientCert"],
    ),
    (
        "VerifyClientCertIfGiven without a CA",
        tls("client_auth_type: VerifyClientCertIfGiven"),
        [f"{CA_REQUIRED} VerifyClientCertIfGiven"],
    ),
    (
        "RequireAnyClientCert without a CA",
        tls("client_auth_type: RequireAnyClientCert", "client_ca_file: ''"),
        [f"{CA_REQUIRED} RequireAnyClientCert"],
    ),
    (
        "a client CA without a client auth type",
        tls("client_ca_file: client-ca.crt"),
        [
            "tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert; "
            "set client_auth_type to RequireAndVerifyClientCert"
        ],
    ),
    (
        "unknown TLS version",
        tls("min_version: TLS14"),
        ["tls_server_config.min_version: Input should be 'TLS10', 'TLS11', 'TLS12' or 'TLS13'"],
    ),
    (
        "min above max",
        tls("min_version: TLS13", "max_version: TLS12"),
        ["tls_server_config.min_version: TLS13 is above max_version TLS12"],
    ),
    # exporter-toolkit keys this exporter does not implement
    (
        "cipher_suites",
        tls("cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]"),
        [
            "tls_server_config.cipher_suites: not supported: OpenSSL's default cipher suites "
            "apply; remove the key"
        ],
    ),
    (
        "curve_preferences",
        tls("curve_preferences: [X25519]"),
        [
            "tls_server_config.curve_preferences: not supported: OpenSSL's default curves apply; "
            "remove the key"
        ],
    ),
    (
        "inline cert",
        "tls_server_config: {cert: '-----BEGIN CERTIFICATE-----', key_file: server.key}\n",
        [
            "tls_server_config.cert: inline certificates are not supported; use cert_file",
            "tls_server_config.cert_file: required key is missing",
        ],
    ),
    (
        "inline key",
        tls(f"key: '{PASSWORD}'"),
        ["tls_server_config.key: inline keys are not supported; use key_file"],
    ),
    (
        "inline client CA",
        tls("client_ca: x"),
        [
            "tls_server_config.client_ca: inline CA certificates are not supported; "
            "use client_ca_file"
        ],
    ),
    (
        "client_allowed_sans",
        tls("client_allowed_sans: [a]"),
        [f"tls_server_config.client_allowed_sans: {NOT_SUPPORTED}"],
    ),
    # rate_limit (the section's own table is in test_webratelimit.py)
    (
        "rate_limit is not a mapping",
        "rate_limit: 10\n",
        ["rate_limit: Input should be a valid dictionary"],
    ),
    (
        "rate_limit interval negative",
        "rate_limit: {interval: -1s, burst: 2}\n",
        ["rate_limit.interval: must not be negative; 0 turns the limit off"],
    ),
    (
        "rate_limit interval without a unit",
        "rate_limit: {interval: 10, burst: 2}\n",
        [
            "rate_limit.interval: invalid duration: write it like 1s, 500ms or 1m30s "
            "(0 turns the limit off)"
        ],
    ),
    (
        "rate_limit burst negative",
        "rate_limit: {interval: 1s, burst: -1}\n",
        ["rate_limit.burst: Input should be greater than or equal to 0"],
    ),
    ("rate_limit unknown key", "rate_limit: {rate: 5}\n", ["rate_limit.rate: unknown key"]),
    # certificate and key contents
    (
        "key does not match the certificate",
        tls(key="other.key"),
        ["tls_server_config.key_file: {dir}/other.key does not match cert_file {dir}/server.crt"],
    ),
    (
        "cert_file without PEM",
        tls(cert="garbage.pem"),
        ["tls_server_config.cert_file: no PEM certificate in {dir}/garbage.pem"],
    ),
    (
        "key_file without PEM",
        tls(key="server.crt"),
        ["tls_server_config.key_file: no PEM private key in {dir}/server.crt"],
    ),
    (
        "cert and key without PEM",
        tls(cert="garbage.pem", key="garbage.pem"),
        [
            "tls_server_config.cert_file: no PEM certificate in {dir}/garbage.pem",
            "tls_server_config.key_file: no PEM private key in {dir}/garbage.pem",
        ],
    ),
    (
        "encrypted key",
        tls(key="encrypted.key"),
        ["tls_server_config.key_file: {dir}/encrypted.key is encrypted; give an unencrypted key"],
    ),
    (
        "client CA without PEM",
        tls("client_ca_file: garbage.pem", "client_auth_type: RequireAndVerifyClientCert"),
        ["tls_server_config.client_ca_file: no PEM certificate in {dir}/garbage.pem"],
    ),
    # http_server_config
    (
        "unknown http key",
        "http_server_config: {http3: true}\n",
        ["http_server_config.http3: unknown key"],
    ),
    (
        "http2 not a boolean",
        "http_server_config: {http2: maybe}\n",
        ["http_server_config.http2: Input should be a valid boolean, unable to interpret input"],
    ),
    (
        "a header that can not be set",
        "http_server_config: {headers: {Server: nginx}}\n",
        [
            "http_server_config.headers.Server: this header can not be configured; use one of "
            "Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, "
            "X-Frame-Options, X-XSS-Protection"
        ],
    ),
    (
        "X-Frame-Options value",
        "http_server_config: {headers: {X-Frame-Options: allow}}\n",
        ["http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin"],
    ),
    (
        "X-Content-Type-Options value",
        "http_server_config: {headers: {X-Content-Type-Options: sniff}}\n",
        ["http_server_config.headers.X-Content-Type-Options: must be one of nosniff"],
    ),
    (
        "header with a line break",
        'http_server_config: {headers: {Content-Security-Policy: "a\\r\\nSet-Cookie: x"}}\n',
        [
            "http_server_config.headers.Content-Security-Policy: "
            "must not contain control characters such as CR or LF"
        ],
    ),
    (
        "header with an escape character",
        'http_server_config: {headers: {X-XSS-Protection: "1\\e[2J"}}\n',
        [
            "http_server_config.headers.X-XSS-Protection: "
            "must not contain control characters such as CR or LF"
        ],
    ),
    (
        "header value not a string",
        "http_server_config: {headers: {X-XSS-Protection: [1]}}\n",
        ["http_server_config.headers.X-XSS-Protection: Input should be a valid string"],
    ),
    # basic_auth_users
    (
        "a password instead of a hash",
        f"basic_auth_users: {{alice: {PASSWORD}}}\n",
        [f"basic_auth_users.alice: {BCRYPT_ONLY}"],
    ),
    (
        "an unknown bcrypt variant",
        f"basic_auth_users: {{alice: '$2x${HASH[4:]}'}}\n",
        [f"basic_auth_users.alice: {BCRYPT_ONLY}"],
    ),
    (
        "a cost below 4",
        f"basic_auth_users: {{alice: '{HASH[:4]}03{HASH[6:]}'}}\n",
        [f"basic_auth_users.alice: {BCRYPT_ONLY}"],
    ),
    (
        "a truncated hash",
        f"basic_auth_users: {{alice: '{HASH[:-1]}'}}\n",
        [f"basic_auth_users.alice: {BCRYPT_ONLY}"],
    ),
    (
        "a one-letter password does not garble the line",
        "basic_auth_users: {alice: a}\n",
        [f"basic_auth_users.alice: {BCRYPT_ONLY}"],
    ),
    (
        "an empty hash",
        "basic_auth_users: {alice: ''}\n",
        [f"basic_auth_users.alice: {BCRYPT_ONLY}"],
    ),
    (
        "a hash that is not a string",
        "basic_auth_users: {alice: null}\n",
        ["basic_auth_users.alice: Input should be a valid string"],
    ),
    (
        "users is a list",
        f"basic_auth_users: ['{HASH}']\n",
        ["basic_auth_users: Input should be a valid dictionary"],
    ),
    (
        "a colon in a user name",
        f"basic_auth_users: {{'a:b': '{HASH}'}}\n",
        ["basic_auth_users.a:b: a user name must not contain ':'"],
    ),
    (
        "an empty user name",
        f"basic_auth_users: {{'': '{HASH}'}}\n",
        ["basic_auth_users: a user name must not be empty"],
    ),
    # problems in several sections come together
    (
        "a missing certificate and a password instead of a hash",
        tls(cert="missing.crt") + f"basic_auth_users: {{alice: '{HASH}', bob: {PASSWORD}}}\n",
        [
            "tls_server_config.cert_file: file not found: {dir}/missing.crt",
            f"basic_auth_users.bob: {BCRYPT_ONLY}",
        ],
    ),
    (
        "an unsupported key and a shape error",
        tls("cipher_suites: [x]", "min_version: 12"),
        [
            "tls_server_config.cipher_suites: not supported: OpenSSL's default cipher suites "
            "apply; remove the key",
            "tls_server_config.min_version: Input should be 'TLS10', 'TLS11', 'TLS12' or 'TLS13'",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=name) for name, text, expected in BAD_WEB_CONFIGS],
)
def test_bad_web_config_gives_exact_problems(pki: Pki, text: str, expected: list[str]) -> None:
    directory = str(pki.directory)
    assert problems_of(text, pki.directory) == [line.format(dir=directory) for line in expected]


@pytest.mark.parametrize("text", [pytest.param(text, id=name) for name, text, _ in BAD_WEB_CONFIGS])
def test_secrets_never_appear_in_problems(pki: Pki, text: str) -> None:
    for problem in problems_of(text, pki.directory):
        assert PASSWORD not in problem
        assert HASH[7:] not in problem  # the salt and digest, whatever the prefix


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"basic_auth_users: {{'{HASH}': alice}}\n", id="hash as a user name"),
        pytest.param(tls(cert=f"'{HASH}'"), id="hash as a file name"),
        pytest.param(f"basic_auth_users: {{alice: '{HASH}x'}}\n", id="hash with a typo"),
        pytest.param(f"basic_auth_users: {{alice: '{PASSWORD}'}}\n", id="password as a hash"),
        pytest.param(f"basic_auth_user: {{alice: '{HASH}'}}\n", id="misspelled section"),
        pytest.param(tls(f"key: '{PASSWORD}'"), id="password as inline key"),
        pytest.param(f"basic_auth_users: {{alice: ['{HASH}']}}\n", id="hash in a list"),
    ],
)
def test_misplaced_secrets_are_masked(pki: Pki, text: str) -> None:
    problems = problems_of(text, pki.directory)
    assert problems
    for problem in problems:
        assert PASSWORD not in problem
        assert HASH[7:] not in problem


# --- good files ---------------------------------------------------------------------------------


def test_empty_file_configures_nothing(tmp_path: Path) -> None:
    config = parse_web_config("", base_dir=tmp_path)
    assert config == WebConfig()
    assert not config.tls_enabled
    assert not config.basic_auth_enabled


def test_full_config_resolves(pki: Pki) -> None:
    text = (
        tls(
            "client_ca_file: client-ca.crt",
            "client_auth_type: RequireAndVerifyClientCert",
            "min_version: TLS13",
            "max_version: TLS13",
            "prefer_server_cipher_suites: false",
            "cipher_suites: []",
            "curve_preferences: []",
            "key: ''",
        )
        + "http_server_config:\n"
        + "  http2: false\n"
        + "  headers:\n"
        + "    X-Frame-Options: deny\n"
        + "    X-Content-Type-Options: nosniff\n"
        + "    Strict-Transport-Security: max-age=31536000\n"
        + "    Content-Security-Policy: ''\n"
        + f"basic_auth_users:\n  alice: '{HASH}'\n  bob: '$2y${HASH[4:]}'\n"
        + "rate_limit:\n  interval: 100ms\n  burst: 20\n"
    )
    config = parse_web_config(text, base_dir=pki.directory, source="web.yml")
    assert config.tls == TLSSettings(
        cert_file=pki.server_cert,
        key_file=pki.server_key,
        client_ca_file=pki.client_ca_file,
        client_auth_type=ClientAuthType.REQUIRE_AND_VERIFY_CLIENT_CERT,
        min_version=TLSVersionName.TLS13,
        max_version=TLSVersionName.TLS13,
    )
    # A blank header is left unset, as exporter-toolkit documents.
    assert config.headers == {
        "X-Frame-Options": "deny",
        "X-Content-Type-Options": "nosniff",
        "Strict-Transport-Security": "max-age=31536000",
    }
    assert sorted(config.users) == ["alice", "bob"]
    assert config.users["alice"].get_secret_value() == HASH
    assert config.tls_enabled
    assert config.basic_auth_enabled
    assert config.rate_limit == RateLimit(interval=0.1, burst=20)
    assert config.warnings == ()
    assert config.files() == (
        Path("web.yml"),
        pki.server_cert,
        pki.server_key,
        pki.client_ca_file,
    )


def test_defaults(pki: Pki) -> None:
    config = parse_web_config(TLS, base_dir=pki.directory)
    assert config.tls == TLSSettings(pki.server_cert, pki.server_key)
    assert config.tls is not None
    assert config.tls.client_auth_type is ClientAuthType.NO_CLIENT_CERT
    assert config.tls.min_version is TLSVersionName.TLS12
    assert config.tls.max_version is TLSVersionName.TLS13
    assert config.headers == {}
    assert config.users == {}
    assert config.rate_limit is None


def test_basic_auth_without_tls(tmp_path: Path) -> None:
    config = parse_web_config(f"basic_auth_users: {{alice: '{HASH}'}}\n", base_dir=tmp_path)
    assert config.tls is None
    assert config.basic_auth_enabled


@pytest.mark.parametrize(
    "text",
    [
        "tls_server_config:\n",
        "basic_auth_users: {}\n",
        "basic_auth_users:\n",
        "http_server_config:\n",
        "http_server_config: {headers: {}}\n",
        "rate_limit:\n",
        "rate_limit: {}\n",
        # exporter-toolkit's own test files: interval 0 turns the limit off
        "rate_limit:\n  interval: 0\n  burst: 0\n",
    ],
)
def test_empty_sections_configure_nothing(tmp_path: Path, text: str) -> None:
    config = parse_web_config(text, base_dir=tmp_path)
    assert not config.tls_enabled
    assert not config.basic_auth_enabled
    assert config.rate_limit is None


def test_a_rate_limit_of_burst_0_is_a_warning(tmp_path: Path) -> None:
    # exporter-toolkit's web_config_rate_limiter_one_second.yaml, which refuses everything.
    config = parse_web_config('rate_limit:\n  interval: "1s"\n  burst: 0\n', base_dir=tmp_path)
    assert config.rate_limit == RateLimit(interval=1.0, burst=0)
    assert len(config.warnings) == 1
    assert config.warnings[0].startswith("rate_limit.burst: 0 with an interval refuses every")


@pytest.mark.parametrize(
    ("auth", "warning"),
    [
        (
            "RequestClientCert",
            "tls_server_config.client_auth_type: RequestClientCert does not ask clients for a "
            "certificate here: Python's ssl cannot ask without verifying, and the exporter "
            "never reads it",
        ),
        (
            "RequireAnyClientCert",
            "tls_server_config.client_auth_type: RequireAnyClientCert verifies client "
            "certificates against client_ca_file here, like RequireAndVerifyClientCert",
        ),
    ],
)
def test_client_auth_types_python_cannot_match_are_warnings(
    pki: Pki, auth: str, warning: str
) -> None:
    config = parse_web_config(
        tls(f"client_auth_type: {auth}", "client_ca_file: client-ca.crt"), base_dir=pki.directory
    )
    assert config.warnings == (warning,)


# --- files on disk --------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_web_config_directory(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc"
    (config_dir / "tls").mkdir(parents=True)
    for name in ("server.crt", "server.key"):
        (config_dir / "tls" / name).write_bytes((pki.directory / name).read_bytes())
    path = config_dir / "web.yml"
    path.write_text(tls(cert="tls/server.crt", key=str(pki.server_key)))
    monkeypatch.chdir(pki.directory)  # where a cwd-relative lookup would find other files
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.cert_file == config_dir / "tls" / "server.crt"
    assert config.tls.key_file == pki.server_key  # absolute stays absolute
    assert config.source == str(path)


def test_load_web_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(tls(cert="missing.crt", key="missing.key"))
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert caught.value.lines() == [
        f"web config error: tls_server_config.cert_file: file not found: {tmp_path}/missing.crt "
        f"(file={path})",
        f"web config error: tls_server_config.key_file: file not found: {tmp_path}/missing.key "
        f"(file={path})",
    ]


def test_load_web_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert caught.value.lines() == [
        f"web config error: cannot read web config file: No such file or directory (file={path})"
    ]


def test_lines_without_a_source_have_no_file_suffix() -> None:
    assert WebConfigError(["x: y"]).lines() == ["web config error: x: y"]


def test_hashes_never_appear_in_repr(tmp_path: Path) -> None:
    config = parse_web_config(f"basic_auth_users: {{alice: '{HASH}'}}\n", base_dir=tmp_path)
    assert HASH not in repr(config)
    assert HASH[7:] not in str(config)


# --- the TLS context ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "verify_mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_NONE),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_ssl_context_verify_mode(pki: Pki, auth: str, verify_mode: ssl.VerifyMode) -> None:
    ca = "client_ca_file: client-ca.crt" if auth != "NoClientCert" else "client_ca_file: ''"
    config = parse_web_config(tls(f"client_auth_type: {auth}", ca), base_dir=pki.directory)
    assert config.tls is not None
    context = build_ssl_context(config.tls)
    assert context.verify_mode == verify_mode
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.TLSv1_3
    loaded_cas = context.cert_store_stats()["x509_ca"]
    assert loaded_cas == (0 if auth == "NoClientCert" else 1)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_ssl_context_versions(pki: Pki) -> None:
    config = parse_web_config(
        tls("min_version: TLS10", "max_version: TLS11"), base_dir=pki.directory
    )
    assert config.tls is not None
    context = build_ssl_context(config.tls)
    assert context.minimum_version == ssl.TLSVersion.TLSv1
    assert context.maximum_version == ssl.TLSVersion.TLSv1_1


def test_build_ssl_context_reports_files_that_changed_since_loading(pki: Pki) -> None:
    settings = TLSSettings(pki.server_cert, pki.other_key)
    with pytest.raises(WebConfigError) as caught:
        build_ssl_context(settings)
    assert caught.value.problems == [
        f"tls_server_config.key_file: {pki.other_key} does not match cert_file {pki.server_cert}"
    ]
