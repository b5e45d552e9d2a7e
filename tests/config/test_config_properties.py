"""Property tests of config parsing: any text gives a Config or one-line ConfigError problems.

A planted auth value never shows up in an error line, wherever else in the file it is repeated.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.config.errors import ConfigError
from exporter.config.expand import expand_env
from exporter.config.load import parse_config
from exporter.config.model import Config

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SECRET = "Pr0pSecret-9c4e7a1bZ"
ENVIRON = {"CAN_APIKEY": SECRET, "EMPTY": "", "URL": "http://can.example.com"}


def _check(text: str) -> Config | ConfigError:
    """Parse ``text``; any exception but ConfigError fails the test."""
    try:
        return parse_config(text, ENVIRON)
    except ConfigError as caught:
        error = caught
    assert error.problems, "a ConfigError names at least one problem"
    secrets = _auth_values(text)
    for line in error.lines():
        assert "\n" not in line, line
        assert "\r" not in line, line
        assert line.startswith("config error: ")
        for secret in secrets:
            assert secret not in line, line
    return error


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _auth_values(text: str) -> list[str]:
    """The auth values the text configures (``targets[*].auth.value``, after ${VAR})."""
    try:
        document = yaml.load(text, Loader=_LOADER)
    except Exception:  # not YAML (or a known bug): nothing to leak
        return []
    targets = document.get("targets") if isinstance(document, dict) else None
    values = []
    for target in targets if isinstance(targets, list) else []:
        auth = target.get("auth") if isinstance(target, dict) else None
        value = auth.get("value") if isinstance(auth, dict) else None
        if isinstance(value, str):
            try:
                value = expand_env(value, ENVIRON)
            except ConfigError:
                continue
            # Shorter values are masked too, but can match our own words by chance.
            if len(value) >= 8:
                values.append(value)
    return values


# --- arbitrary and YAML-ish text -----------------------------------------------------------

YAML_PIECES = [
    *"\n\n  -:{}[],'\"#&*!|>%@`?",
    "targets:",
    "groups:",
    "defaults:",
    "- name: ",
    "  url: ",
    "auth: {type: APIKEY, value: ",
    SECRET,
    "${CAN_APIKEY}",
    "${UNSET}",
    "$$",
    "plan_ids: [",
    "plan_names: []",
    "interval: ",
    "timeout: ",
    "30s",
    "0s",
    "1h30m",
    "-5m",
    "null",
    "~",
    "true",
    "yes",
    "0x1F",
    "1e400",
    ".nan",
    "!!str ",
    "!!binary ",
    "!!set ",
    "!!omap ",
    "&a ",
    "*a",
    "<<: *a",
    "\t",
    "\ufeff",
    "\x00",
    "\u2028",
    "é",
    "方案",
]
yaml_ish = st.lists(st.sampled_from(YAML_PIECES), max_size=25).map("".join)


@FAST
@given(text=st.text(max_size=200) | yaml_ish)
@example(text="")
@example(text="[" * 5000)
@example(text="targets: " + "[" * 5000)
@example(text=f"targets: [{{auth: {{value: {SECRET}, {SECRET}: 1}}}}]")
@example(text=f"targets: [{{name: t, auth: {{type: APIKEY, value: {SECRET}}}, {SECRET}: x}}]")
def test_any_text_is_a_config_or_one_line_problems(text: str) -> None:
    _check(text)


# --- structured random configurations ------------------------------------------------------

names = st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12)
junk = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats() | st.text(max_size=15)
durations = st.sampled_from(["30s", "2s", "1s", "5m", "1h30m", "500ms", "0s", "0", "-1s"]) | junk
urls = st.sampled_from(
    [
        "http://127.0.0.1:8080",
        "https://can.example.com/",
        "ftp://can.example.com",
        "http://user:pw@can.example.com",
        "http://can.example.com/?q=1",
        "http://[::1",
        "http://",
        "${URL}",
        "${UNSET}",
        "http://can.例え.jp",
    ]
) | st.text(max_size=20)
zones = st.sampled_from(
    ["UTC", "Asia/Shanghai", "Mars/Olympus", "", "../../etc/passwd", "A\x00B", "utc"]
) | st.text(string.ascii_letters + "/_+-", max_size=12)


def _maybe(draw: st.DrawFn, value: Any, probability: int = 3) -> Any:
    """``value`` most of the time, sometimes junk, sometimes the secret in the wrong place."""
    roll = draw(st.integers(0, probability + 2))
    if roll == probability + 1:
        return draw(junk)
    if roll == probability + 2:
        return SECRET
    return value


@st.composite
def auth(draw: st.DrawFn) -> Any:
    value = draw(st.sampled_from([SECRET, "${CAN_APIKEY}", f"prefix-{SECRET}"]))
    result: dict[str, Any] = {
        "type": _maybe(draw, draw(st.sampled_from(["APIKEY", "TOKEN", "UID", "apikey"]))),
    }
    choice = draw(st.integers(0, 5))
    if choice <= 3:
        result["value"] = value
    elif choice == 4:
        result["value_file"] = _maybe(draw, "/nonexistent/apikey")
    else:
        result["value"] = value
        result["value_file"] = "apikey"
    if draw(st.integers(0, 8)) == 0:
        result[draw(st.sampled_from(["vaule", SECRET]))] = value
    return _maybe(draw, result, 8)


@st.composite
def target(draw: st.DrawFn, name: str) -> Any:
    result: dict[str, Any] = {
        "name": _maybe(draw, name, 6),
        "url": _maybe(draw, draw(urls)),
        "tenant_id": _maybe(draw, "10001"),
        "auth": draw(auth()),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "timezone": zones,
        "max_concurrency": st.integers(-1, 2000) | junk,
        "timeout": durations,
        "tls": st.fixed_dictionaries(
            {}, optional={"insecure_skip_verify": st.booleans() | junk, "ca_file": junk}
        ),
        "extra_key": junk,
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            result[key] = draw(strategy)
    return _maybe(draw, result, 10)


@st.composite
def group(draw: st.DrawFn, target_names: list[str]) -> Any:
    plans = st.lists(
        st.sampled_from(["p1", "p2", "p1", "方案一", SECRET, "", "x" * 600]) | st.text(max_size=8),
        max_size=4,
    )
    result: dict[str, Any] = {
        "name": _maybe(draw, draw(names), 6),
        "target": _maybe(draw, draw(st.sampled_from([*target_names, "nope"])), 6),
    }
    key = draw(st.sampled_from(["plan_ids", "plan_names", "both", "neither"]))
    if key in ("plan_ids", "both"):
        result["plan_ids"] = _maybe(draw, draw(plans))
    if key in ("plan_names", "both"):
        result["plan_names"] = _maybe(draw, draw(plans))
    optional: dict[str, st.SearchStrategy[Any]] = {
        "interval": durations,
        "timeout": durations,
        "per_plan": st.booleans() | junk,
        "thresholds": st.fixed_dictionaries(
            {},
            optional={
                "data_lag": st.fixed_dictionaries({}, optional={"warning": durations}),
                "refresh_age": st.fixed_dictionaries({}, optional={"critical": durations}),
                "other": junk,
            },
        ),
    }
    for option, strategy in optional.items():
        if draw(st.integers(0, 2)) == 0:
            result[option] = draw(strategy)
    return _maybe(draw, result, 10)


@st.composite
def config_documents(draw: st.DrawFn) -> Any:
    target_names = draw(st.lists(names, min_size=0, max_size=3))
    document: dict[str, Any] = {
        "targets": [draw(target(name)) for name in target_names],
        "groups": [draw(group(target_names)) for _ in range(draw(st.integers(0, 3)))],
    }
    if draw(st.booleans()):
        document["defaults"] = {
            "interval": draw(durations),
            "timeout": draw(durations),
            "thresholds": {"data_lag": {"warning": draw(durations)}},
        }
    if draw(st.integers(0, 6)) == 0:
        document[draw(st.sampled_from(["extra", "target", SECRET]))] = draw(junk)
    return _maybe(draw, document, 12)


@FAST
@given(document=config_documents(), flow_style=st.none() | st.booleans())
def test_structured_configs_are_a_config_or_one_line_problems(
    document: Any, flow_style: bool | None
) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow_style, allow_unicode=True)
    result = _check(text)
    if isinstance(result, Config):
        for group_ in result.groups:
            assert group_.plans
            assert 0 < group_.timeout <= group_.interval


def test_a_valid_document_parses() -> None:
    text = yaml.safe_dump(
        {
            "targets": [
                {
                    "name": "prod",
                    "url": "http://127.0.0.1:8080",
                    "tenant_id": "10001",
                    "auth": {"type": "APIKEY", "value": "${CAN_APIKEY}"},
                }
            ],
            "groups": [{"name": "g", "target": "prod", "plan_ids": ["p1"]}],
        }
    )
    config = _check(text)
    assert isinstance(config, Config)
    assert config.secrets() == [SECRET]


# --- values PyYAML or zoneinfo cannot build: one-line errors, not tracebacks --------------

TARGET = (
    "targets: [{name: t, url: 'http://x', tenant_id: '1', "
    "auth: {type: APIKEY, value: sEcReT-value-0042}%s}]"
)
# PyYAML's constructors raise plain Python exceptions for values they cannot build, and
# zoneinfo raises OSError for names that are directories or too long; these once escaped.
UNBUILDABLE = {
    "yaml-impossible-date": "a: 2024-13-45",  # ValueError: month must be in 1..12
    "yaml-impossible-timestamp": "a: 2024-01-01T99:99:99",  # ValueError
    "yaml-huge-int": "a: " + "1" * 5000,  # ValueError: Exceeds the limit (4300 digits)
    "yaml-int-tag": "a: !!int x",  # ValueError
    "yaml-empty-int-tag": "a: !!int ''",  # IndexError
    "yaml-float-tag": "a: !!float x",  # ValueError
    "yaml-bool-tag": "a: !!bool x",  # KeyError
    "yaml-timestamp-tag": "a: !!timestamp nope",  # AttributeError
    "yaml-set-tag-scalar": "a: !!set 0",  # ValueError, in _UniqueKeyLoader.construct_mapping
    "yaml-set-tag-sequence": "a: !!set [1]",  # TypeError, same place
    "timezone-is-a-directory": TARGET % ", timezone: Asia",  # IsADirectoryError
    "timezone-name-too-long": TARGET % (", timezone: " + "a" * 300),  # OSError ENAMETOOLONG
}


@pytest.mark.parametrize("case", list(UNBUILDABLE))
def test_unbuildable_values_are_one_line_config_errors(case: str) -> None:
    result = _check(UNBUILDABLE[case])
    assert isinstance(result, ConfigError)
    assert "sEcReT-value-0042" not in "\n".join(result.lines())


def test_a_tagged_secret_is_not_echoed() -> None:
    result = _check(f"targets: [{{auth: {{value: !!int {SECRET}}}}}]")
    assert isinstance(result, ConfigError)
    assert SECRET not in "\n".join(result.lines())


def test_durations_out_of_range_are_config_errors() -> None:
    # Were OverflowError (not a ValueError, so pydantic let it through) before durations.py
    # bounded durations to Prometheus' range.
    for duration in ("1" + "0" * 400 + "s", "1" + "0" * 305 + "y", "1000y"):
        group = f"{{name: g, target: t, plan_ids: [a], interval: {duration}, timeout: 1s}}"
        text = f"{TARGET % ''}\ngroups: [{group}]\n"
        error = _check(text)
        assert isinstance(error, ConfigError)
        assert any("out of range" in line for line in error.lines())
