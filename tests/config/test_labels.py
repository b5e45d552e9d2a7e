"""Group labels (labels.py): names, values, limits, reserved names and merging over defaults."""

from __future__ import annotations

import pytest

from exporter.config.labels import RESERVED_LABELS
from exporter.config.load import parse_config
from tests.helpers.configs import (
    ENV,
    assert_exact_problems,
    bad_config_params,
    doc,
    group,
    problems_of,
)

# --- the table: text in, exact problems out ---------------------------------------------------

BAD_CONFIGS: list[tuple[str, str, list[str]]] = [
    # labels
    (
        "label name with a dash",
        doc(groups=group("    labels: {Team-Name: finance}\n")),
        [
            "groups[0].labels: 'Team-Name' is not a valid label name (letters, digits and _,"
            " not starting with a digit)"
        ],
    ),
    (
        "label name starting with a digit, and one that is a number",
        doc(groups=group("    labels: {1st_line: ops, 2: two}\n")),
        [
            "groups[0].labels: '1st_line' is not a valid label name (letters, digits and _,"
            " not starting with a digit)",
            "groups[0].labels: 2 is not a valid label name (letters, digits and _,"
            " not starting with a digit)",
        ],
    ),
    (
        "label name starting with __",
        doc(groups=group("    labels: {__team: finance}\n")),
        [
            "groups[0].labels: '__team' is reserved: names starting with __ are for"
            " Prometheus' internal use"
        ],
    ),
    (
        "label names the exporter and Prometheus set, in defaults",
        doc(head="defaults:\n  labels: {job: x, severity: page, le: '1'}\n"),
        [
            f"defaults.labels: {name!r} is reserved: the exporter or Prometheus sets it on the"
            " group's series"
            for name in ("job", "severity", "le")
        ],
    ),
    (
        "label values that YAML reads as a number, a boolean, a date and null",
        doc(groups=group("    labels: {team: 1, oncall: yes, since: 2024-01-01, owner: null}\n")),
        [
            f"groups[0].labels.{name}: must be a string; put numbers, booleans and dates in quotes"
            for name in ("team", "oncall", "since", "owner")
        ],
    ),
    (
        "label value over 256 characters",
        doc(groups=group(f"    labels: {{owner: {'x' * 257}}}\n")),
        ["groups[0].labels.owner: 257 characters; at most 256"],
    ),
    (
        "labels that are not a mapping",
        doc(groups=group("    labels: [team, finance]\n")),
        ["groups[0].labels: Input should be a valid dictionary"],
    ),
    (
        "more than 16 labels in a group",
        doc(groups=group(f"    labels: {{{', '.join(f'l{i}: v' for i in range(17))}}}\n")),
        ["groups[0].labels: 17 labels; at most 16"],
    ),
    (
        "more than 16 labels with the defaults'",
        doc(
            head=f"defaults:\n  labels: {{{', '.join(f'd{i}: v' for i in range(10))}}}\n",
            groups=group("    labels: {team: a, owner: b, d0: c}\n")
            + group(f"    labels: {{{', '.join(f'g{i}: v' for i in range(7))}}}\n", name="ops"),
        ),
        ["groups[1].labels: 17 labels with those from defaults.labels; at most 16"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    bad_config_params(BAD_CONFIGS),
)
def test_bad_config_gives_exact_problems(text: str, expected: list[str]) -> None:
    assert_exact_problems(text, expected)


# --- labels -----------------------------------------------------------------------------------


def test_labels_merge_over_the_defaults_and_sort_by_name() -> None:
    text = doc(
        head="defaults:\n  labels: {team: platform, owner: ops}\n",
        groups=group("    labels: {team: finance, dashboard_url: 'https://g/d/x?a=1&b=2'}\n")
        + group(name="plain")
        + group("    labels: {owner: ''}\n", name="unowned"),
    )
    finance, plain, unowned = parse_config(text, environ=ENV).groups
    assert finance.labels == (
        ("dashboard_url", "https://g/d/x?a=1&b=2"),
        ("owner", "ops"),
        ("team", "finance"),
    )
    assert plain.labels == (("owner", "ops"), ("team", "platform"))
    # An empty value removes the label, one inherited from defaults too.
    assert unowned.labels == (("team", "platform"),)


def test_no_labels_anywhere_is_an_empty_tuple() -> None:
    (only,) = parse_config(doc(), environ=ENV).groups
    assert only.labels == ()


def test_label_order_in_the_file_does_not_change_the_group() -> None:
    # The poller compares groups on reload: reordering labels must not count as a change.
    first = parse_config(doc(groups=group("    labels: {team: a, owner: b}\n")), environ=ENV)
    second = parse_config(doc(groups=group("    labels: {owner: b, team: a}\n")), environ=ENV)
    assert first.groups == second.groups


def test_label_limits_are_inclusive() -> None:
    pairs = ", ".join(f"l{i}: v" for i in range(15))
    text = doc(groups=group(f"    labels: {{{pairs}, owner: '{'x' * 256}'}}\n"))
    (only,) = parse_config(text, environ=ENV).groups
    assert len(only.labels) == 16
    assert dict(only.labels)["owner"] == "x" * 256


def test_label_values_keep_any_text_and_expand_variables() -> None:
    text = doc(
        groups=group(
            "    labels:\n"
            "      owner: 'Finance \"ledger\" team \\ ${OWNER}'\n"
            '      note: "two\\nlines"\n'
            "      Team_2: 销售\n"
        )
    )
    (only,) = parse_config(text, environ={**ENV, "OWNER": "alice"}).groups
    assert dict(only.labels) == {
        "owner": 'Finance "ledger" team \\ alice',
        "note": "two\nlines",
        "Team_2": "销售",
    }


@pytest.mark.parametrize("name", sorted(RESERVED_LABELS))
def test_every_reserved_label_is_rejected(name: str) -> None:
    assert problems_of(doc(groups=group(f"    labels: {{{name}: x}}\n"))) == [
        f"groups[0].labels: {name!r} is reserved: the exporter or Prometheus sets it on the"
        " group's series"
    ]


def test_reserved_labels_cover_what_prometheus_and_the_exporter_set() -> None:
    assert {"job", "instance", "target", "group", "plan", "severity", "reason", "le"} <= (
        RESERVED_LABELS
    )
