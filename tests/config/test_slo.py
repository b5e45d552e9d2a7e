"""The slo keys: objective as a ratio or a percentage, fresh_below, inherited key by key."""

from __future__ import annotations

import pytest

from exporter.config.load import parse_config
from exporter.config.model import FreshBelow, Group
from tests.helpers.configs import ENV, doc, group, problems_of


def _resolved(head: str = "", groups: str | None = None) -> tuple[Group, ...]:
    text = doc(head=head, groups=groups if groups is not None else group())
    return parse_config(text, environ=ENV).groups


@pytest.mark.parametrize(
    ("written", "ratio"),
    [
        ("0.995", 0.995),
        ("0.9", 0.9),
        ("99.5%", 0.995),
        ('"99.9%"', 0.999),
        ("'99 %'", 0.99),
        ('"0.5"', 0.5),
    ],
)
def test_an_objective_is_a_ratio_or_a_percentage(written: str, ratio: float) -> None:
    (sales,) = _resolved(groups=group(f"    slo: {{objective: {written}}}\n"))
    assert sales.slo_objective == pytest.approx(ratio)
    assert sales.fresh_below is FreshBelow.CRITICAL


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("99.5", "objective 99.5 must be strictly between 0 and 1 (for a percentage, write 99.5%)"),
        ("1", "objective 1 must be strictly between 0 and 1"),
        ("0", "objective 0 must be strictly between 0 and 1"),
        ("100%", "objective 100% must be strictly between 0 and 1"),
        ("-0.5", "objective -0.5 must be strictly between 0 and 1"),
        (".nan", "objective nan must be strictly between 0 and 1"),
        (
            "high",
            "invalid objective 'high': write a ratio such as 0.995 or a percentage such as 99.5%",
        ),
        ("true", "must be a ratio such as 0.995 or a percentage such as 99.5%"),
        ("[0.9]", "must be a ratio such as 0.995 or a percentage such as 99.5%"),
    ],
)
def test_a_bad_objective_is_one_line_naming_the_key(written: str, problem: str) -> None:
    text = doc(groups=group(f"    slo: {{objective: {written}}}\n"))
    assert problems_of(text) == [f"groups[0].slo.objective: {problem}"]


def test_a_bad_fresh_below_and_an_unknown_key_name_their_paths() -> None:
    text = doc(
        head="defaults:\n  slo: {fresh_below: major}\n",
        groups=group("    slo: {objective: 0.99, window: 30d}\n"),
    )
    problems = problems_of(text)
    assert problems == [
        "defaults.slo.fresh_below: Input should be 'warning' or 'critical'",
        "groups[0].slo.window: unknown key",
    ]


def test_without_slo_a_group_has_no_objective_and_is_fresh_below_critical() -> None:
    (sales,) = _resolved()
    assert sales.slo_objective is None
    assert sales.fresh_below is FreshBelow.CRITICAL


DEFAULTS = "defaults:\n  slo: {objective: 99.5%, fresh_below: warning}\n"


def test_groups_inherit_the_defaults_slo_key_by_key() -> None:
    groups = _resolved(
        DEFAULTS,
        group(name="inherits")
        + group("    slo: {objective: 0.99}\n", name="own_objective")
        + group("    slo: {fresh_below: critical}\n", name="own_severity"),
    )
    assert [(g.name, g.slo_objective, g.fresh_below) for g in groups] == [
        ("inherits", pytest.approx(0.995), FreshBelow.WARNING),
        ("own_objective", pytest.approx(0.99), FreshBelow.WARNING),
        ("own_severity", pytest.approx(0.995), FreshBelow.CRITICAL),
    ]


@pytest.mark.parametrize("removal", ['slo: {objective: ""}', "slo: {objective: null}"])
def test_an_empty_objective_removes_the_inherited_one_and_keeps_the_severity(removal: str) -> None:
    (sales,) = _resolved(DEFAULTS, group(f"    {removal}\n"))
    assert sales.slo_objective is None
    assert sales.fresh_below is FreshBelow.WARNING


def test_slo_null_removes_the_inherited_slo_whole() -> None:
    (sales,) = _resolved(DEFAULTS, group("    slo: null\n"))
    assert sales.slo_objective is None
    assert sales.fresh_below is FreshBelow.CRITICAL


def test_an_empty_slo_inherits_everything() -> None:
    (sales,) = _resolved(DEFAULTS, group("    slo: {}\n"))
    assert sales.slo_objective == pytest.approx(0.995)
    assert sales.fresh_below is FreshBelow.WARNING
