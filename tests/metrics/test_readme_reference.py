"""The README's metrics reference is the declarations: one row per metric, typed and labelled.

The meaning column stays hand-written; the metric, type and labels columns, and which level's
table a row is in, must equal ``declarations.ALL`` exactly.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.metrics import declarations as m

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| metric | type | labels | meaning |"
# The section's tables, in the order the section has them.
LEVELS = (m.GROUP, m.PLAN, m.TARGET, m.EXPORTER)

Row = tuple[m.Level, str, str, tuple[str, ...]]


def _metrics_section(text: str) -> str:
    start = text.index("\n## Metrics\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def _tables(section: str) -> list[list[str]]:
    """The rows of each metrics table (header and rule left out)."""
    tables: list[list[str]] = []
    rows: list[str] | None = None
    for line in section.splitlines():
        if line == HEADER:
            rows = []
            tables.append(rows)
        elif rows is not None and line.startswith("|"):
            if not line.startswith("|---"):
                rows.append(line)
        else:
            rows = None
    return tables


def _parse(row: str) -> tuple[str, str, tuple[str, ...]]:
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert len(cells) >= 4, row
    name = re.fullmatch(r"`(\w+)`", cells[0])
    assert name, f"the metric cell is one name in backticks: {row}"
    labels = tuple(re.findall(r"`(\w+)`", cells[2]))
    assert labels or cells[2] == "none", f"labels are names in backticks, or none: {row}"
    return name.group(1), cells[1], labels


def readme_rows(text: str) -> list[Row]:
    tables = _tables(_metrics_section(text))
    assert len(tables) == len(LEVELS), f"one table per level: {[lv.value for lv in LEVELS]}"
    return [
        (level, *_parse(row)) for level, rows in zip(LEVELS, tables, strict=True) for row in rows
    ]


def differences(text: str) -> dict[str, set[Row]]:
    """Declared metrics without their row, rows that are not declarations, rows twice."""
    rows = readme_rows(text)
    declared = {(spec.level, spec.exposed_name, spec.type.value, spec.labels) for spec in m.ALL}
    return {
        "missing": declared - set(rows),
        "not declared": set(rows) - declared,
        "twice": {row for row in rows if rows.count(row) > 1},
    }


def test_the_readme_tables_are_the_declarations() -> None:
    assert differences(README.read_text()) == {
        "missing": set(),
        "not declared": set(),
        "twice": set(),
    }


ROW = "| `aloudata_can_plan_missing` | gauge | `target`, `group`, `plan` |"


@pytest.mark.parametrize(
    "broken",
    [
        "| `aloudata_can_plan_missing` | counter | `target`, `group`, `plan` |",
        "| `aloudata_can_plan_missing` | gauge | `target`, `group` |",
        "| `aloudata_can_plan_gone` | gauge | `target`, `group`, `plan` |",
        f"{ROW} the same again |\n{ROW}",
        None,
    ],
    ids=["mistyped", "mislabelled", "not-declared", "twice", "missing"],
)
def test_a_missing_extra_or_mistyped_row_fails(broken: str | None) -> None:
    lines = README.read_text().splitlines()
    (index,) = [number for number, line in enumerate(lines) if line.startswith(ROW)]
    if broken is None:
        del lines[index]
    else:
        lines[index] = lines[index].replace(ROW, broken)
    assert any(differences("\n".join(lines)).values())
