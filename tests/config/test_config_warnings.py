"""Warnings (resolve.py): suspicious but allowed configs, such as a plan in two groups."""

from __future__ import annotations

import pytest

from exporter.config.load import parse_config
from tests.helpers.configs import ENV, TARGET, doc, group, target

# --- warnings for suspicious but allowed configs ----------------------------------------------


def test_plan_in_two_groups_is_a_warning() -> None:
    text = doc(groups=group() + group(name="ops", plans="    plan_ids: [p2, p3]\n"))
    config = parse_config(text, environ=ENV)
    assert len(config.groups) == 2
    assert config.warnings == ("groups: plan 'p2' of target 'prod' is in both 'sales' and 'ops'",)


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param(
            group() + group(name="ops", plans="    plan_names: [p1, p2]\n"),
            id="same text as id and as name",
        ),
        pytest.param(group() + group(on="staging"), id="same plan on two targets"),
    ],
)
def test_plan_in_two_groups_differently_is_not_a_warning(groups: str) -> None:
    text = doc(targets=TARGET + target(name="staging"), groups=groups)
    config = parse_config(text, environ=ENV)
    assert len(config.groups) == 2
    assert config.warnings == ()


@pytest.mark.parametrize(
    "text", [doc(groups=None), doc(groups="  []\n")], ids=["no groups key", "empty list"]
)
def test_no_groups_is_a_warning(text: str) -> None:
    config = parse_config(text, environ=ENV)
    assert config.groups == ()
    assert list(config.targets) == ["prod"]
    assert config.warnings == (
        "groups: none configured; the exporter will only export its own metrics",
    )


def test_valid_config_has_no_warnings() -> None:
    assert parse_config(doc(), environ=ENV).warnings == ()


def test_a_plan_in_many_groups_is_one_warning() -> None:
    groups = "".join(group(name=f"g{index}") for index in range(50))
    config = parse_config(doc(groups=groups), environ=ENV)
    assert len(config.groups) == 50
    assert len(config.warnings) == len(config.groups[0].plans)
    assert config.warnings[0].endswith("is in 50 groups: 'g0', 'g1', 'g2', ...")
