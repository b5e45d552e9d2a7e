"""${VAR} expansion (expand.py): every string value, $$ escapes, unset variables."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from exporter.config.load import parse_config
from exporter.config.model import AuthType
from tests.helpers.configs import (
    ENV,
    SECRET,
    assert_exact_problems,
    bad_config_params,
    doc,
    group,
    problems_of,
    target,
)

# --- the table: text in, exact problems out ---------------------------------------------------

BAD_CONFIGS: list[tuple[str, str, list[str]]] = [
    # ${VAR} expansion
    (
        "unset variable in the auth value",
        doc(targets=target(auth='{type: APIKEY, value: "${CAN_APIKEY_PROD}"}')),
        ["targets[0].auth.value: environment variable CAN_APIKEY_PROD is not set"],
    ),
    (
        "unset variables in a list and a URL",
        doc(
            targets=target().replace("https://can.example.com", "https://${CAN_HOST}"),
            groups=group(plans="    plan_ids: [p1, '${PLAN_B}']\n"),
        ),
        [
            "targets[0].url: environment variable CAN_HOST is not set",
            "groups[0].plan_ids[1]: environment variable PLAN_B is not set",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    bad_config_params(BAD_CONFIGS),
)
def test_bad_config_gives_exact_problems(text: str, expected: list[str]) -> None:
    assert_exact_problems(text, expected)


# --- ${VAR} expansion ------------------------------------------------------------------------


def test_variables_expand_in_every_string() -> None:
    text = """\
defaults: {interval: "${INTERVAL}"}
targets:
  - name: "${TARGET}"
    url: "https://${CAN_HOST}:${CAN_PORT}"
    tenant_id: "${TENANT}"
    auth: {type: "${AUTH_TYPE}", value: "pre-${CAN_APIKEY}-post"}
    timezone: "${ZONE}"
    max_concurrency: "${CONCURRENCY}"
groups:
  - name: "${GROUP}"
    target: "${TARGET}"
    plan_names: ["${PLAN}", "fixed"]
"""
    environ = {
        "INTERVAL": "90s",
        "TARGET": "prod",
        "CAN_HOST": "can.example.com",
        "CAN_PORT": "8443",
        "TENANT": "10001",
        "AUTH_TYPE": "UID",
        "CAN_APIKEY": SECRET,
        "ZONE": "Europe/Berlin",
        "CONCURRENCY": "3",
        "GROUP": "sales",
        "PLAN": "daily",
    }
    config = parse_config(text, environ=environ)
    prod = config.targets["prod"]
    assert prod.url == "https://can.example.com:8443"
    assert prod.tenant_id == "10001"
    assert prod.auth_type is AuthType.UID
    assert prod.auth_value.get_secret_value() == f"pre-{SECRET}-post"
    assert prod.timezone == ZoneInfo("Europe/Berlin")
    assert prod.max_concurrency == 3
    (sales,) = config.groups
    assert sales.key == ("prod", "sales")
    assert sales.plans == ("daily", "fixed")
    assert sales.interval == 90.0


@pytest.mark.parametrize(
    ("written", "environ", "value"),
    [
        ("a$$b", {}, "a$b"),
        ("$${CAN_APIKEY}", {"CAN_APIKEY": "x"}, "${CAN_APIKEY}"),
        ("$$$${X}", {}, "$${X}"),
        ("$$${X}", {"X": "v"}, "$v"),
        ("$HOME-and-$", {}, "$HOME-and-$"),
        ("${X}", {"X": "${Y}"}, "${Y}"),  # expanded once, not recursively
        ("${X}${X}", {"X": "ab"}, "abab"),
    ],
)
def test_dollar_handling(written: str, environ: dict[str, str], value: str) -> None:
    # After a prefix: an auth value must be long enough to be masked safely.
    text = doc(targets=target(auth=f'{{type: APIKEY, value: "apikey: {written}"}}'), groups=None)
    config = parse_config(text, environ=environ)
    assert config.targets["prod"].auth_value.get_secret_value() == f"apikey: {value}"


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAN_APIKEY", "from-process-env")
    config = parse_config(doc())
    assert config.targets["prod"].auth_value.get_secret_value() == "from-process-env"
    # An explicit mapping replaces the process environment.
    assert problems_of(doc(), environ={}) == [
        "targets[0].auth.value: environment variable CAN_APIKEY is not set"
    ]


def test_variables_in_comments_and_keys_are_not_expanded() -> None:
    text = "# ${UNSET_IN_COMMENT}\n" + doc()
    assert parse_config(text, environ=ENV).targets["prod"].tenant_id == "10001"
