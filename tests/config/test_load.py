"""Loading (load.py): load_config, YAML errors, and secrets kept out of every problem line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from exporter.config.errors import ConfigError
from exporter.config.load import load_config, parse_config
from exporter.config.model import Config
from tests.helpers.configs import (
    ENV,
    SECRET,
    assert_exact_problems,
    bad_config_params,
    doc,
    group,
    problems_of,
    target,
    write,
)

# --- the table: text in, exact problems out ---------------------------------------------------

BAD_CONFIGS: list[tuple[str, str, list[str]]] = [
    # YAML itself
    (
        "duplicate YAML key",
        doc(groups="  - name: sales\n    target: prod\n    target: prod\n    plan_ids: [p1]\n"),
        ["invalid YAML: duplicate key 'target' at line 9, column 5"],
    ),
    (
        "YAML syntax error",
        "targets:\n  - name: prod\n   url: https://can.example.com\n",
        ["invalid YAML: did not find expected '-' indicator at line 3, column 4"],
    ),
    (
        "unquoted ${VAR} in a flow mapping",
        doc(targets=target(auth="{type: APIKEY, value: ${CAN_APIKEY}}")),
        ["invalid YAML: did not find expected ',' or '}' at line 5, column 34"],
    ),
    ("empty file", "", ["the file is empty; it needs at least a targets list"]),
    ("only comments", "# nothing yet\n", ["the file is empty; it needs at least a targets list"]),
    (
        "top level is a list",
        "- targets\n- groups\n",
        ["the top level must be a mapping with targets and groups"],
    ),
    (
        "top level is a scalar",
        "targets\n",
        ["the top level must be a mapping with targets and groups"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    bad_config_params(BAD_CONFIGS),
)
def test_bad_config_gives_exact_problems(text: str, expected: list[str]) -> None:
    assert_exact_problems(text, expected)


# --- load_config: the file named in every problem -------------------------------------------


def test_load_config_records_the_source(tmp_path: Path) -> None:
    path = write(tmp_path / "exporter.yml", doc())
    config = load_config(path, environ=ENV)
    assert config.source == str(path)
    assert config.groups[0].plans == ("p1", "p2")


def test_load_config_problem_lines_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "exporter.yml", doc(groups=group(plans="    plan_ids: []\n")))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.source == str(path)
    assert caught.value.problems == ["groups[0].plan_ids: must not be empty"]
    assert caught.value.lines() == [
        f"config error: groups[0].plan_ids: must not be empty (file={path})"
    ]


def test_load_config_yaml_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "exporter.yml", "targets: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.lines() == [
        "config error: invalid YAML: did not find expected node content at line 2, column 1 "
        f"(file={path})"
    ]


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.lines() == [
        f"config error: cannot read config file: No such file or directory (file={path})"
    ]


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"targets: []\n# caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    assert caught.value.problems == ["cannot read config file: UnicodeDecodeError"]


def test_lines_without_a_source_have_no_file_suffix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("", environ=ENV)
    assert caught.value.lines() == [
        "config error: the file is empty; it needs at least a targets list"
    ]
    assert str(caught.value) == "the file is empty; it needs at least a targets list"


# --- secret safety ---------------------------------------------------------------------------

SECRET_SAFETY_CASES = [
    pytest.param(doc(targets=target("    timeout: 0s\n")), id="bad duration beside the secret"),
    pytest.param(
        doc(targets=target().replace("https://can.example.com", "https://u:${CAN_APIKEY}@h")),
        id="secret as URL password",
    ),
    pytest.param(
        doc(targets=target().replace("https://can.example.com", "${CAN_APIKEY}")),
        id="secret as the URL",
    ),
    pytest.param(
        doc(targets=target().replace("https://can.example.com", "https://h/?k=${CAN_APIKEY}")),
        id="secret in the URL query",
    ),
    pytest.param(
        doc(targets=target(auth='{type: APIKEY, value: "${CAN_APIKEY}", value_file: k}')),
        id="secret with value_file too",
    ),
    pytest.param(
        doc(targets=target(auth='{type: APIKEY, value: ["${CAN_APIKEY}"]}')),
        id="secret inside a list",
    ),
    pytest.param(
        doc(targets=target(auth='{type: APIKEY, value: {"${CAN_APIKEY}": 1}}')),
        id="secret inside a mapping",
    ),
    pytest.param(
        doc(targets=target(auth="${CAN_APIKEY}")),
        id="secret as the whole auth",
    ),
    pytest.param(
        doc(targets=target(auth='{type: "${CAN_APIKEY}", value: APIKEY}')),
        id="secret as the auth type",
    ),
    pytest.param(
        doc(targets=target(name='"${CAN_APIKEY} "')),
        id="secret in a malformed target name",
    ),
    pytest.param(
        doc(targets=target("    tenant_id2: ${CAN_APIKEY}\n")),
        id="secret under an unknown key",
    ),
    pytest.param(
        doc(targets=target("    max_concurrency: ${CAN_APIKEY}\n")),
        id="secret as max_concurrency",
    ),
    pytest.param(
        doc(groups=group("    per_plan: ${CAN_APIKEY}\n")),
        id="secret as a boolean",
    ),
    pytest.param(
        doc(targets=target('    tls: {insecure_skip_verify: "${CAN_APIKEY}"}\n')),
        id="secret as tls flag",
    ),
    pytest.param(
        doc(targets=target(auth=f"\n      type: APIKEY\n      value: {SECRET}: oops")),
        id="YAML error on the secret's line",
    ),
    pytest.param(
        doc(targets=target(auth=f"\n      type: APIKEY\n      value: {SECRET}\n      value: x")),
        id="secret's key written twice",
    ),
    pytest.param(
        doc(targets=target("    timezone: ${CAN_APIKEY}\n")),
        id="secret as the time zone",
    ),
    pytest.param(
        doc(targets=target("    timeout: ${CAN_APIKEY}\n")),
        id="secret as a duration",
    ),
    pytest.param(
        doc(groups=group(on="${CAN_APIKEY}")),
        id="secret as a group's target",
    ),
    pytest.param(
        doc(groups=group(plans='    plan_ids: ["${CAN_APIKEY}", "${CAN_APIKEY}"]\n')),
        id="secret as a duplicated plan",
    ),
]


@pytest.mark.parametrize("text", SECRET_SAFETY_CASES)
def test_secret_never_appears_in_problems(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ=ENV)
    error = caught.value
    assert error.problems, "expected at least one problem"
    for line in [*error.problems, *error.lines(), str(error), repr(error)]:
        assert SECRET not in line


def test_secret_from_value_file_never_appears_in_problems(tmp_path: Path) -> None:
    key = write(tmp_path / "key", f"{SECRET}\n")
    text = doc(
        targets=target(auth=f'{{type: APIKEY, value_file: "{key}"}}', extra="    timeout: 0s\n")
    )
    problems = problems_of(text, environ={})
    assert problems == ["targets[0].timeout: duration '0s' must be greater than zero"]


def test_secret_never_appears_in_repr(full_config: Config) -> None:
    prod = full_config.targets["prod"]
    for text in (repr(full_config), str(full_config), repr(prod), str(prod)):
        assert SECRET not in text
        assert "tok-$-literal" not in text
    assert "auth_value=" not in repr(prod)
    assert "name='prod'" in repr(prod)
    assert isinstance(prod.auth_value, SecretStr)
    assert SECRET not in repr(prod.auth_value)
