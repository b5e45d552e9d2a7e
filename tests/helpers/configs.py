"""Config texts for the config tests: a target, a group, a whole file, and the problems out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.config.errors import ConfigError
from exporter.config.load import parse_config

SECRET = "s3cr3t-Ap1Key-7f1e9c2b"
ENV = {"CAN_APIKEY": SECRET}

TARGET = """\
  - name: prod
    url: https://can.example.com
    tenant_id: "10001"
    auth: {type: APIKEY, value: "${CAN_APIKEY}"}
"""
GROUP = """\
  - name: sales
    target: prod
    plan_ids: [p1, p2]
"""


def doc(targets: str = TARGET, groups: str | None = GROUP, head: str = "") -> str:
    """A config file: ``head`` (e.g. defaults) first, then the targets and groups lists."""
    text = f"{head}targets:\n{targets}"
    if groups is not None:
        text += f"groups:\n{groups}"
    return text


def target(extra: str = "", *, name: str = "prod", auth: str | None = None) -> str:
    """One entry of ``targets``; ``extra`` is more keys, indented four spaces."""
    auth_line = auth if auth is not None else '{type: APIKEY, value: "${CAN_APIKEY}"}'
    return (
        f"  - name: {name}\n"
        "    url: https://can.example.com\n"
        '    tenant_id: "10001"\n'
        f"    auth: {auth_line}\n"
        f"{extra}"
    )


def group(extra: str = "", *, name: str = "sales", on: str = "prod", plans: str = "") -> str:
    """One entry of ``groups``; ``plans`` replaces the default ``plan_ids: [p1, p2]``."""
    plan_lines = plans if plans else "    plan_ids: [p1, p2]\n"
    return f"  - name: {name}\n    target: {on}\n{plan_lines}{extra}"


def bad_config_params(cases: list[tuple[str, str, list[str]]]) -> list[Any]:
    """A BAD_CONFIGS table (case, config text, expected problems) as pytest parameters."""
    return [pytest.param(text, expected, id=case) for case, text, expected in cases]


def assert_exact_problems(text: str, expected: list[str]) -> None:
    """The config's problems are exactly ``expected``: one line each, no secret in any."""
    problems = problems_of(text)
    assert problems == expected
    for problem in problems:
        assert "\n" not in problem
        assert SECRET not in problem


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ=ENV if environ is None else environ)
    return caught.value.problems


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


FULL = """\
defaults:
  interval: 2m
  timeout: 15s
  thresholds:
    data_lag: {critical: 72h}
targets:
  - name: prod
    url: https://can.example.com/gateway/
    tenant_id: "10001"
    auth: {type: APIKEY, value: "${CAN_APIKEY}"}
    timezone: Asia/Shanghai
    max_concurrency: 4
    timeout: 20s
  - name: staging
    url: http://can-staging.internal:8080
    tenant_id: "${STAGING_TENANT}"
    auth: {type: TOKEN, value: "tok-$$-literal"}
    tls: {insecure_skip_verify: true}
groups:
  - name: sales
    target: prod
    plan_ids: [p1, p2]
  - name: finance
    target: prod
    plan_names: [daily_revenue, 月度汇总]
    interval: 30m
    timeout: 1m
    per_plan: true
    thresholds:
      data_lag: {warning: 30h}
      refresh_age: {critical: 3d}
  - name: sales
    target: staging
    plan_ids: [p1]
"""
FULL_ENV = {"CAN_APIKEY": SECRET, "STAGING_TENANT": "20002"}
