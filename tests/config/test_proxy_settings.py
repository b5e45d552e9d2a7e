"""Proxies per target, as Prometheus' HTTP client configures them (exporter/proxy.py)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from exporter.config.errors import ConfigError
from exporter.config.load import parse_config
from exporter.config.model import Config
from exporter.config.proxy import Proxy, resolve_proxy

PROXY = "http://proxy.corp:3128"
PASSWORD = "pr0xy-Pa55word-x9"


def config_text(extra: str = "", *, url: str = "https://can.example.com", head: str = "") -> str:
    """One target at ``url`` with ``extra`` keys (indented four spaces) and one group."""
    return (
        f"{head}targets:\n"
        "  - name: prod\n"
        f"    url: {url}\n"
        '    tenant_id: "10001"\n'
        '    auth: {type: APIKEY, value: "api-key-value-123"}\n'
        f"{extra}"
        "groups:\n"
        "  - {name: sales, target: prod, plan_ids: [p1]}\n"
    )


def load(text: str, environ: dict[str, str] | None = None) -> Config:
    return parse_config(text, environ={} if environ is None else environ)


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, environ)
    return caught.value.problems


def proxy_of(text: str, environ: dict[str, str] | None = None) -> Proxy | None:
    return load(text, environ).targets["prod"].proxy


# --- validation: one line naming the key ------------------------------------------------------

_ONLY_HTTP = "must be an http:// or https:// URL with a host"
# exporter/textsafe.py's header value rules, as for tenant_id and auth values.
_NO_CONTROLS = "must not contain control characters such as CR or LF: it is sent as an HTTP header"
_ASCII = "must be ASCII: it is sent as an HTTP header"


@pytest.mark.parametrize(
    ("extra", "environ", "problem"),
    [
        pytest.param(
            "    proxy_url: socks5://proxy.corp:1080\n",
            {},
            "targets[0].proxy_url: socks5 proxies are not supported; "
            "use an http:// or https:// proxy",
            id="socks5",
        ),
        pytest.param(
            "    proxy_url: socks5h://user:pw@proxy.corp:1080\n",
            {},
            "targets[0].proxy_url: socks5h proxies are not supported; "
            "use an http:// or https:// proxy",
            id="socks5h",
        ),
        pytest.param("    proxy_url: ftp://proxy.corp\n", {}, _ONLY_HTTP, id="other scheme"),
        pytest.param("    proxy_url: proxy.corp:3128\n", {}, _ONLY_HTTP, id="no scheme"),
        pytest.param('    proxy_url: "http://"\n', {}, _ONLY_HTTP, id="no host"),
        pytest.param(
            "    proxy_url: http://proxy.corp:99999\n",
            {},
            "targets[0].proxy_url: not a valid URL (check the host and port)",
            id="port out of range",
        ),
        pytest.param(
            "    proxy_url: http://proxy.corp:3128/path\n",
            {},
            "targets[0].proxy_url: must be scheme://[user:password@]host[:port], "
            "without a path, query or fragment",
            id="path",
        ),
        pytest.param(
            '    proxy_url: "http://proxy.corp:3128\\n"\n',
            {},
            "targets[0].proxy_url: must not contain spaces or control characters",
            id="newline",
        ),
        pytest.param(
            "    proxy_url: http://a%3Ab:pw@proxy.corp\n",
            {},
            "targets[0].proxy_url: the user name must not contain ':' (Basic auth)",
            id="colon in user",
        ),
        pytest.param(
            "    proxy_url: http://user:%0D%0A@proxy.corp\n",
            {},
            f"targets[0].proxy_url: the user name and password {_NO_CONTROLS}",
            id="CRLF in password",
        ),
        pytest.param(
            "    proxy_url: http://us%09er:pw@proxy.corp\n",
            {},
            f"targets[0].proxy_url: the user name and password {_NO_CONTROLS}",
            id="tab in user",
        ),
        pytest.param(
            "    proxy_url: http://user:p%C2%85w@proxy.corp\n",
            {},
            f"targets[0].proxy_url: the user name and password {_NO_CONTROLS}",
            id="C1 control in password",
        ),
        pytest.param(
            "    proxy_url: http://user:caf%C3%A9@proxy.corp\n",
            {},
            f"targets[0].proxy_url: the user name and password {_ASCII}",
            id="non-ASCII password",
        ),
        pytest.param(
            "    proxy_from_environment: true\n",
            {"HTTPS_PROXY": "http://user:a%0Ab@proxy.corp:3128"},
            "targets[0].proxy_from_environment: HTTPS_PROXY: the user name and password "
            + _NO_CONTROLS,
            id="CRLF in the environment's password",
        ),
        pytest.param(
            f"    proxy_url: {PROXY}\n    proxy_from_environment: true\n",
            {},
            "targets[0].proxy_url: must not be set when proxy_from_environment is true",
            id="proxy_url with proxy_from_environment",
        ),
        pytest.param(
            "    no_proxy: internal\n    proxy_from_environment: true\n",
            {},
            "targets[0].no_proxy: must not be set when proxy_from_environment is true "
            "(NO_PROXY from the environment applies)",
            id="no_proxy with proxy_from_environment",
        ),
        pytest.param(
            "    no_proxy: internal\n",
            {},
            "targets[0].no_proxy: needs proxy_url to be set",
            id="no_proxy without proxy_url",
        ),
        pytest.param(
            "    proxy_connect_header: {X-Team: [team-alpha-7]}\n",
            {},
            "targets[0].proxy_connect_header: needs proxy_url or proxy_from_environment to be set",
            id="proxy_connect_header without a proxy",
        ),
        pytest.param(
            f'    proxy_url: {PROXY}\n    proxy_connect_header: {{"Bad Name": [team-alpha-7]}}\n',
            {},
            "targets[0].proxy_connect_header.Bad Name: not a valid header name",
            id="bad header name",
        ),
        pytest.param(
            f"    proxy_url: {PROXY}\n    proxy_connect_header: {{host: [team-alpha-7]}}\n",
            {},
            "targets[0].proxy_connect_header.host: set by the HTTP client itself; remove it",
            id="header the client sets",
        ),
        pytest.param(
            f"    proxy_url: {PROXY}\n"
            '    proxy_connect_header: {X-Team: [team-alpha-7, "a\\r\\nB: c"]}\n',
            {},
            f"targets[0].proxy_connect_header.X-Team[1]: {_NO_CONTROLS}",
            id="CRLF in a header value",
        ),
        pytest.param(
            f'    proxy_url: {PROXY}\n    proxy_connect_header: {{X-Team: ["a\\tb"]}}\n',
            {},
            f"targets[0].proxy_connect_header.X-Team[0]: {_NO_CONTROLS}",
            id="tab in a header value",
        ),
        pytest.param(
            f'    proxy_url: {PROXY}\n    proxy_connect_header: {{X-Team: ["\\x1b[31mred"]}}\n',
            {},
            f"targets[0].proxy_connect_header.X-Team[0]: {_NO_CONTROLS}",
            id="ESC in a header value",
        ),
        pytest.param(
            f'    proxy_url: {PROXY}\n    proxy_connect_header: {{X-Team: ["équipe-alpha"]}}\n',
            {},
            f"targets[0].proxy_connect_header.X-Team[0]: {_ASCII}",
            id="non-ASCII header value",
        ),
        pytest.param(
            f"    proxy_url: {PROXY}\n    proxy_connect_header: {{X-Team: one}}\n",
            {},
            "targets[0].proxy_connect_header.X-Team: Input should be a valid list",
            id="header value not a list",
        ),
        pytest.param(
            "    proxy_from_environment: maybe\n",
            {},
            "targets[0].proxy_from_environment: Input should be a valid boolean, "
            "unable to interpret input",
            id="not a boolean",
        ),
        pytest.param(
            "    proxy_from_environment: true\n",
            {"HTTPS_PROXY": "socks5://proxy.corp:1080"},
            "targets[0].proxy_from_environment: HTTPS_PROXY: socks5 proxies are not supported; "
            "use an http:// or https:// proxy",
            id="socks from the environment",
        ),
        pytest.param(
            "    proxy_from_environment: true\n",
            {"https_proxy": "http://proxy.corp:3128/some/path"},
            "targets[0].proxy_from_environment: https_proxy: must be "
            "scheme://[user:password@]host[:port], without a path, query or fragment",
            id="bad lowercase variable",
        ),
    ],
)
def test_bad_proxy_settings_give_one_line_naming_the_key(
    extra: str, environ: dict[str, str], problem: str
) -> None:
    expected = problem if problem.startswith("targets[0]") else f"targets[0].proxy_url: {problem}"
    assert problems_of(config_text(extra), environ) == [expected]


def test_http_proxy_in_a_cgi_environment_is_refused_for_http_targets() -> None:
    environ = {"HTTP_PROXY": PROXY, "REQUEST_METHOD": "GET"}
    text = config_text("    proxy_from_environment: true\n", url="http://can.example.com")
    assert problems_of(text, environ) == [
        "targets[0].proxy_from_environment: HTTP_PROXY: refused because REQUEST_METHOD is set: "
        "in a CGI program a client can set HTTP_PROXY (see https://go.dev/s/cgihttpproxy)"
    ]


@pytest.mark.parametrize(
    ("url", "environ"),
    [
        pytest.param(
            "https://can.example.com",
            {"HTTPS_PROXY": PROXY, "HTTP_PROXY": PROXY},
            id="https target: HTTP_PROXY is not consulted",
        ),
        pytest.param("http://can.example.com", {}, id="no HTTP_PROXY"),
    ],
)
def test_the_cgi_rule_is_only_about_http_proxy(url: str, environ: dict[str, str]) -> None:
    text = config_text("    proxy_from_environment: true\n", url=url)
    load(text, {**environ, "REQUEST_METHOD": "GET"})  # no ConfigError


def test_every_bad_target_is_reported() -> None:
    text = (
        "targets:\n"
        "  - {name: a, url: https://a.example, tenant_id: '1', auth: {type: UID, value: u1},"
        " proxy_url: socks5://p:1080}\n"
        "  - {name: b, url: https://b.example, tenant_id: '1', auth: {type: UID, value: u2},"
        " no_proxy: b.example}\n"
    )
    assert problems_of(text) == [
        "targets[0].proxy_url: socks5 proxies are not supported; use an http:// or https:// proxy",
        "targets[1].no_proxy: needs proxy_url to be set",
    ]


# --- proxy_url: what the target gets -------------------------------------------------------------


def test_no_proxy_keys_means_direct_whatever_the_environment() -> None:
    assert proxy_of(config_text(), {"HTTPS_PROXY": PROXY, "HTTP_PROXY": PROXY}) is None


def test_proxy_url_takes_the_credentials_out_of_the_url() -> None:
    proxy = proxy_of(config_text(f"    proxy_url: http://alice:{PASSWORD}@proxy.corp:3128/\n"))
    assert proxy == Proxy(
        url="http://proxy.corp:3128",
        source="proxy_url",
        username="alice",
        password=SecretStr(PASSWORD),
        written_password=SecretStr(PASSWORD),
    )
    assert proxy.has_credentials


@pytest.mark.parametrize(
    ("written", "url"),
    [
        ("http://proxy.corp", "http://proxy.corp"),
        ("HTTP://Proxy.Corp:8080", "http://proxy.corp:8080"),
        ("https://proxy.corp:8443", "https://proxy.corp:8443"),
        ("http://[2001:db8::7]:3128", "http://[2001:db8::7]:3128"),
    ],
)
def test_proxy_url_forms(written: str, url: str) -> None:
    proxy = proxy_of(config_text(f'    proxy_url: "{written}"\n'))
    assert proxy is not None
    assert (proxy.url, proxy.has_credentials) == (url, False)


def test_an_empty_proxy_url_is_unset_as_in_prometheus() -> None:
    # ${PROXY} set to "" turns the proxy off; with no_proxy beside it that is not an error.
    text = config_text('    proxy_url: "${PROXY}"\n    no_proxy: internal\n')
    assert proxy_of(text, {"PROXY": ""}) is None
    assert proxy_of(text, {"PROXY": PROXY}) is not None


def test_a_changed_proxy_changes_the_target() -> None:
    first = load(config_text(f"    proxy_url: {PROXY}\n")).targets["prod"]
    second = load(config_text("    proxy_url: http://other.corp:3128\n")).targets["prod"]
    same = load(config_text(f"    proxy_url: {PROXY}\n")).targets["prod"]
    assert first != second
    assert first == same


# --- no_proxy: httpproxy's matching ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "no_proxy", "proxied"),
    [
        # A name matches itself and its subdomains; a leading "." or "*." subdomains only.
        ("https://example.com", "example.com", False),
        ("https://can.example.com", "example.com", False),
        ("https://notexample.com", "example.com", True),
        ("https://can.example.com", ".example.com", False),
        ("https://example.com", ".example.com", True),
        ("https://can.example.com", "*.example.com", False),
        ("https://example.com", "*.example.com", True),
        ("https://can.example.com", "other.org", True),
        # A list, spaces and case do not matter; unreadable entries are skipped.
        ("https://can.example.com", "other.org, CAN.example.COM ,", False),
        ("https://CAN.Example.com", "can.example.com", False),
        ("https://can.example.com", ":80,,[::1", True),
        # IP addresses and CIDR blocks match addresses only, never names.
        ("https://10.1.2.3", "10.1.2.3", False),
        ("https://10.1.2.4", "10.1.2.3", True),
        ("https://10.1.2.3", "10.0.0.0/8", False),
        ("https://11.1.2.3", "10.0.0.0/8", True),
        ("https://[2001:db8::1]", "2001:db8::/32", False),
        ("https://[2001:db8::1]", "2001:db8::1", False),
        ("https://10.1.2.3", "example.com", True),
        ("https://can.example.com", "10.0.0.0/8", True),
        # Ports: an entry's port must equal the target's, its scheme's default if unwritten.
        ("https://10.1.2.3:8443", "10.1.2.3:8443", False),
        ("https://10.1.2.3", "10.1.2.3:8443", True),
        ("https://[2001:db8::1]:8443", "[2001:db8::1]:8443", False),
        ("https://can.example.com:8443", "example.com:8443", False),
        ("https://can.example.com", "example.com:8443", True),
        ("https://can.example.com", "example.com:443", False),
        ("http://can.example.com", "example.com:443", True),
        ("http://can.example.com", "example.com:80", False),
        # "*" alone sends everything direct.
        ("https://can.example.com", "*", False),
        ("https://10.1.2.3", "other.org,*", False),
        # Internationalised names compare in their ASCII form.
        ("https://bücher.example", "bücher.example", False),
        ("https://xn--bcher-kva.example", "bücher.example", False),
        # With no_proxy set, localhost and loopback always go direct, as in httpproxy.
        ("http://localhost:9000", "other.org", False),
        ("http://127.0.0.5:9000", "other.org", False),
        ("http://[::1]:9000", "other.org", False),
    ],
)
def test_no_proxy_matching(target: str, no_proxy: str, proxied: bool) -> None:
    proxy = resolve_proxy(target, PROXY, no_proxy, False, {})
    assert (proxy is not None) is proxied


@pytest.mark.parametrize("target", ["http://localhost:9000", "http://127.0.0.1:9000"])
def test_proxy_url_alone_proxies_loopback_too(target: str) -> None:
    # Prometheus uses Go's http.ProxyURL when no_proxy is empty: every request goes through.
    assert resolve_proxy(target, PROXY, None, False, {}) is not None
    assert resolve_proxy(target, PROXY, "", False, {}) is not None


# --- proxy_from_environment --------------------------------------------------------------------

HTTPS_TARGET = "https://can.example.com"
HTTP_TARGET = "http://can.example.com"
OTHER = "http://other.corp:8080"


@pytest.mark.parametrize(
    ("target", "environ", "expected"),
    [
        # The variable follows the target's scheme.
        (HTTPS_TARGET, {"HTTPS_PROXY": PROXY}, (PROXY, "HTTPS_PROXY")),
        (HTTPS_TARGET, {"HTTP_PROXY": PROXY}, None),
        (HTTP_TARGET, {"HTTP_PROXY": PROXY}, (PROXY, "HTTP_PROXY")),
        (HTTP_TARGET, {"HTTPS_PROXY": PROXY}, None),
        (HTTPS_TARGET, {"HTTPS_PROXY": PROXY, "HTTP_PROXY": OTHER}, (PROXY, "HTTPS_PROXY")),
        # Lower case works; upper case wins; an empty value counts as unset.
        (HTTPS_TARGET, {"https_proxy": PROXY}, (PROXY, "https_proxy")),
        (HTTP_TARGET, {"http_proxy": PROXY}, (PROXY, "http_proxy")),
        (HTTPS_TARGET, {"HTTPS_PROXY": PROXY, "https_proxy": OTHER}, (PROXY, "HTTPS_PROXY")),
        (HTTPS_TARGET, {"HTTPS_PROXY": "", "https_proxy": OTHER}, (OTHER, "https_proxy")),
        (HTTPS_TARGET, {"HTTPS_PROXY": ""}, None),
        (HTTPS_TARGET, {}, None),
        # host:port means http://host:port.
        (HTTPS_TARGET, {"HTTPS_PROXY": "proxy.corp:3128"}, (PROXY, "HTTPS_PROXY")),
        (HTTPS_TARGET, {"HTTPS_PROXY": "10.9.8.7:3128"}, ("http://10.9.8.7:3128", "HTTPS_PROXY")),
        (HTTPS_TARGET, {"HTTPS_PROXY": "https://p.corp"}, ("https://p.corp", "HTTPS_PROXY")),
        # NO_PROXY, either case, upper case winning.
        (HTTPS_TARGET, {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, None),
        (HTTPS_TARGET, {"HTTPS_PROXY": PROXY, "no_proxy": ".example.com"}, None),
        (HTTPS_TARGET, {"HTTPS_PROXY": PROXY, "NO_PROXY": "*"}, None),
        (HTTPS_TARGET, {"HTTPS_PROXY": PROXY, "NO_PROXY": "other.org"}, (PROXY, "HTTPS_PROXY")),
        (
            HTTPS_TARGET,
            {"HTTPS_PROXY": PROXY, "NO_PROXY": "other.org", "no_proxy": "example.com"},
            (PROXY, "HTTPS_PROXY"),
        ),
        ("https://10.1.2.3:8443", {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, None),
        # Loopback targets never use the environment's proxy.
        ("http://localhost:9000", {"HTTP_PROXY": PROXY}, None),
        ("http://127.0.0.1:9000", {"HTTP_PROXY": PROXY}, None),
    ],
)
def test_proxy_from_environment(
    target: str, environ: dict[str, str], expected: tuple[str, str] | None
) -> None:
    proxy = resolve_proxy(target, None, None, True, environ)
    assert (None if proxy is None else (proxy.url, proxy.source)) == expected


def test_the_environment_is_read_only_when_asked_and_only_from_the_mapping_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", OTHER)
    text = config_text("    proxy_from_environment: true\n")
    assert proxy_of(config_text(), {"HTTPS_PROXY": PROXY}) is None
    assert proxy_of(text, {}) is None
    proxy = proxy_of(text, {"HTTPS_PROXY": PROXY})
    assert proxy is not None
    assert proxy.url == PROXY


def test_the_environment_defaults_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    config = parse_config(config_text("    proxy_from_environment: true\n"))
    proxy = config.targets["prod"].proxy
    assert proxy is not None
    assert proxy.url == PROXY


# --- proxy_connect_header ------------------------------------------------------------------------

HEADERS = (
    "    proxy_connect_header:\n"
    '      Proxy-Authorization: ["Bearer hdr-t0ken-42"]\n'
    "      X-Team: [team-alpha-7, team-beta-8]\n"
)


def test_connect_headers_go_with_an_https_target() -> None:
    config = load(config_text(f"    proxy_url: {PROXY}\n{HEADERS}"))
    proxy = config.targets["prod"].proxy
    assert proxy is not None
    assert [(name, value.get_secret_value()) for name, value in proxy.connect_headers] == [
        ("Proxy-Authorization", "Bearer hdr-t0ken-42"),
        ("X-Team", "team-alpha-7"),
        ("X-Team", "team-beta-8"),
    ]
    assert config.warnings == ()


def test_connect_headers_from_the_environment_too() -> None:
    text = config_text(f"    proxy_from_environment: true\n{HEADERS}")
    proxy = proxy_of(text, {"HTTPS_PROXY": PROXY})
    assert proxy is not None
    assert len(proxy.connect_headers) == 3


def test_connect_headers_on_an_http_target_are_dropped_with_a_warning() -> None:
    config = load(config_text(f"    proxy_url: {PROXY}\n{HEADERS}", url="http://can.example.com"))
    proxy = config.targets["prod"].proxy
    assert proxy is not None
    assert proxy.connect_headers == ()
    assert config.warnings == (
        "targets[0].proxy_connect_header: has no effect on an http:// target; "
        "it is sent on the CONNECT request of https:// targets only",
    )


# --- secrets -------------------------------------------------------------------------------------


def test_proxy_password_and_connect_headers_are_secrets() -> None:
    written = "p%40ss-W0rd-91"
    config = load(config_text(f"    proxy_url: http://alice:{written}@proxy.corp:3128\n{HEADERS}"))
    secrets = config.secrets()
    expected = {"p@ss-W0rd-91", written, "Bearer hdr-t0ken-42", "team-alpha-7", "team-beta-8"}
    assert expected <= set(secrets)
    assert "alice" not in secrets  # a user name is not a secret, as in Prometheus
    shown = repr(config) + str(config)
    for secret in ("p@ss-W0rd-91", written, "hdr-t0ken-42"):
        assert secret not in shown


def test_the_environments_proxy_password_is_a_secret() -> None:
    text = config_text("    proxy_from_environment: true\n")
    config = load(text, {"HTTPS_PROXY": f"http://bob:{PASSWORD}@proxy.corp:3128"})
    assert PASSWORD in config.secrets()
    assert PASSWORD not in repr(config)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(f"    proxy_url: socks5://alice:{PASSWORD}@proxy.corp\n", id="socks"),
        pytest.param(f"    proxy_url: http://alice:{PASSWORD}@proxy.corp/x\n", id="path"),
        pytest.param(f"    proxy_url: http://alice:{PASSWORD}@proxy.corp:0x\n", id="port"),
        pytest.param(
            f"    proxy_url: http://alice:{PASSWORD}@proxy.corp\n"
            "    proxy_from_environment: true\n",
            id="with proxy_from_environment",
        ),
        pytest.param(
            f"    proxy_url: http://alice:{PASSWORD}@proxy.corp\n    timeout: {PASSWORD}\n",
            id="as another key's value",
        ),
    ],
)
def test_the_proxy_password_never_appears_in_problems(extra: str) -> None:
    problems = problems_of(config_text(extra))
    assert problems
    assert not any(PASSWORD in problem for problem in problems)


def test_a_proxy_password_echoed_by_another_problem_is_masked() -> None:
    # A label name is echoed in its problem line; the redaction is the last guard.
    text = config_text(f"    proxy_url: http://alice:{PASSWORD}@proxy.corp\n").replace(
        "plan_ids: [p1]}", f"plan_ids: [p1], labels: {{'{PASSWORD}!': x}}}}"
    )
    problems = problems_of(text)
    assert problems == [
        "groups[0].labels: '<secret>!' is not a valid label name "
        "(letters, digits and _, not starting with a digit)"
    ]


def test_the_environments_proxy_password_never_appears_in_problems() -> None:
    text = config_text("    proxy_from_environment: true\n")
    problems = problems_of(text, {"HTTPS_PROXY": f"socks5://bob:{PASSWORD}@proxy.corp:1080"})
    assert problems
    assert not any(PASSWORD in problem for problem in problems)
