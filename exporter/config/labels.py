"""Checks of the ``labels`` maps: valid Prometheus names, no name the exporter's series use."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Checked key by key when the config is resolved, so each problem names its own key path.
RawLabels = dict[Any, Any]

# Label names a group's labels may not use: Prometheus sets job and instance on every scraped
# series, the text format le on histogram buckets (quantile on summaries), and the rest are on
# the exporter's own series (a test holds this set to the metric declarations).
RESERVED_LABELS = frozenset(
    {
        "job",
        "instance",
        "le",
        "quantile",
        "target",
        "group",
        "plan",
        "reason",
        "severity",
        "version",
    }
)

MAX_LABELS = 16
MAX_LABEL_VALUE_LENGTH = 256
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def check_labels(raw: RawLabels, where: str) -> tuple[dict[str, str], list[str]]:
    """The valid entries of one ``labels`` map, and a problem line for each invalid one."""
    labels: dict[str, str] = {}
    problems: list[str] = []
    for name, value in raw.items():
        problem = _label_name_problem(name)
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        problem = _label_value_problem(value)
        if problem is not None:
            problems.append(f"{where}.{name}: {problem}")
            continue
        labels[str(name)] = str(value)
    if len(raw) > MAX_LABELS:
        problems.append(f"{where}: {len(raw)} labels; at most {MAX_LABELS}")
    return labels, problems


def _label_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
        return (
            f"{name!r} is not a valid label name (letters, digits and _, not starting with a digit)"
        )
    if name.startswith("__"):
        return f"{name!r} is reserved: names starting with __ are for Prometheus' internal use"
    if name in RESERVED_LABELS:
        return f"{name!r} is reserved: the exporter or Prometheus sets it on the group's series"
    return None


def _label_value_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string; put numbers, booleans and dates in quotes"
    if len(value) > MAX_LABEL_VALUE_LENGTH:
        return f"{len(value)} characters; at most {MAX_LABEL_VALUE_LENGTH}"
    return None


def group_labels(
    raw: RawLabels, defaults: Mapping[str, str], where: str
) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The group's labels over the defaults'; an empty value removes the label."""
    own, problems = check_labels(raw, f"{where}.labels")
    merged = {**defaults, **own}
    labels = tuple(sorted((name, value) for name, value in merged.items() if value))
    if len(labels) > MAX_LABELS and len(raw) <= MAX_LABELS:
        problems.append(
            f"{where}.labels: {len(labels)} labels with those from defaults.labels; "
            f"at most {MAX_LABELS}"
        )
    return labels, problems
