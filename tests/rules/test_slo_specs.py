"""The README's Sloth and Pyrra specs for the freshness SLO: they parse, have the shape those
tools read, name only series the exporter exposes (or the one rule the README gives for Pyrra),
agree with the README's objective and 28-day window, and their PromQL loads in promtool.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.metrics import declarations
from tests.helpers.programs import require_tool

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
JOB_SELECTOR = 'job="aloudata-can-exporter"'
WINDOW = "28d"
EXPOSED = {spec.exposed_name for spec in declarations.ALL}
FRESH = "aloudata_can_fresh_seconds_total"
OBSERVED = "aloudata_can_observed_seconds_total"
# A selector: a series name, then its matchers.
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\{([^{}]*)\}")
_NAME = re.compile(r"\b(aloudata_can[\w:]*)")


def _section() -> str:
    text = README.read_text()
    start = text.index("\n## Freshness SLOs\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", _section(), flags=re.MULTILINE | re.DOTALL)


def _block(marker: str) -> str:
    (block,) = [block for block in _yaml_blocks() if marker in block]
    return block


def _sloth() -> tuple[str, dict[str, Any]]:
    block = _block('version: "prometheus/v1"')
    return block, yaml.safe_load(block)


def _pyrra() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(_block("apiVersion: pyrra.dev/v1alpha1"))
    return document


def _stale_rule() -> dict[str, Any]:
    document = yaml.safe_load(_block("record: aloudata_can:stale_seconds_total"))
    (group,) = document["groups"]
    (rule,) = group["rules"]
    return dict(rule)


def _readme_objective_percent() -> float:
    """The objective of the section's config example, as a percentage."""
    config = yaml.safe_load(_block("slo:"))
    (group,) = config["groups"]
    objective = str(group["slo"]["objective"])
    return float(objective.rstrip("%")) if objective.endswith("%") else float(objective) * 100


def _names(text: str) -> set[str]:
    return set(_NAME.findall(text))


def test_the_section_has_the_blocks() -> None:
    # Guards the tests below: the config example, the two rule blocks, Sloth and Pyrra.
    assert len(_yaml_blocks()) == 4


def test_the_sloth_spec_has_sloths_shape() -> None:
    _, spec = _sloth()
    assert spec["version"] == "prometheus/v1"
    assert isinstance(spec["service"], str)
    assert spec["service"]
    (slo,) = spec["slos"]
    assert isinstance(slo["name"], str)
    assert isinstance(slo["objective"], int | float)
    events = slo["sli"]["events"]
    assert set(events) == {"error_query", "total_query"}
    for query in events.values():
        assert "[{{.window}}]" in query
    assert set(slo["alerting"]) >= {"name", "page_alert", "ticket_alert"}


def test_the_sloth_sli_is_stale_seconds_over_observed_seconds() -> None:
    _, spec = _sloth()
    events = spec["slos"][0]["sli"]["events"]
    # Errors: observed minus fresh; total: observed.
    error = " ".join(events["error_query"].split())
    assert re.fullmatch(
        rf"sum\(rate\({OBSERVED}\{{[^}}]*\}}\[\{{\{{\.window\}}\}}\]\)\) - "
        rf"sum\(rate\({FRESH}\{{[^}}]*\}}\[\{{\{{\.window\}}\}}\]\)\)",
        error,
    ), error
    assert _names(events["total_query"]) == {OBSERVED}


def test_the_pyrra_spec_has_pyrras_shape() -> None:
    spec = _pyrra()
    assert spec["apiVersion"] == "pyrra.dev/v1alpha1"
    assert spec["kind"] == "ServiceLevelObjective"
    assert spec["metadata"]["name"]
    # Pyrra reads the target as a string, a percentage.
    assert isinstance(spec["spec"]["target"], str)
    assert 0 < float(spec["spec"]["target"]) < 100
    ratio = spec["spec"]["indicator"]["ratio"]
    # Each is one selector (Pyrra refuses an expression): a name and its matchers.
    for side in ("errors", "total"):
        assert _SELECTOR.fullmatch(ratio[side]["metric"]), ratio[side]["metric"]
    assert _names(ratio["total"]["metric"]) == {OBSERVED}
    assert _names(ratio["errors"]["metric"]) == {_stale_rule()["record"]}


def test_the_pyrra_errors_rule_is_observed_minus_fresh() -> None:
    rule = _stale_rule()
    expr = " ".join(rule["expr"].split())
    assert expr == f"{OBSERVED}{{{JOB_SELECTOR}}} - {FRESH}{{{JOB_SELECTOR}}}"


def test_every_series_the_specs_name_is_exposed_by_the_exporter() -> None:
    block, _ = _sloth()
    pyrra = yaml.safe_dump(_pyrra())
    rule = _stale_rule()
    assert _names(block) <= EXPOSED
    assert _names(rule["expr"]) <= EXPOSED
    # Pyrra's errors: the README's own rule over exposed series.
    assert _names(pyrra) <= EXPOSED | {rule["record"]}


def test_the_specs_select_one_group_of_the_shipped_job() -> None:
    _, sloth = _sloth()
    pyrra = _pyrra()["spec"]["indicator"]["ratio"]
    events = sloth["slos"][0]["sli"]["events"]
    texts = [*events.values(), *(side["metric"] for side in pyrra.values())]
    for text in texts:
        selectors = _SELECTOR.findall(text)
        assert selectors, text
        for _, matchers in selectors:
            assert JOB_SELECTOR in matchers
            assert 'group="finance_report"' in matchers


def test_the_specs_agree_with_the_readme_on_objective_and_window() -> None:
    block, sloth = _sloth()
    pyrra = _pyrra()["spec"]
    objective = _readme_objective_percent()
    assert sloth["slos"][0]["objective"] == pytest.approx(objective)
    assert float(pyrra["target"]) == pytest.approx(objective)
    # Sloth takes the window on its command line (default 30 days), Pyrra in the spec.
    assert f"--default-slo-period={WINDOW}" in block
    assert pyrra["window"] == WINDOW
    assert "The window is 28 days" in _section()
    # The shipped rules' window is the same.
    assert f"[{WINDOW}])" in ALERTS.read_text()
    assert f"aloudata_can:freshness_budget_remaining:{WINDOW}" in ALERTS.read_text()


def test_the_specs_promql_loads_in_promtool(tmp_path: Path) -> None:
    _, sloth = _sloth()
    events = sloth["slos"][0]["sli"]["events"]
    pyrra = _pyrra()["spec"]["indicator"]["ratio"]
    rules = [
        _stale_rule(),
        *(
            {"record": f"check:sloth:{name}", "expr": query.replace("{{.window}}", "5m")}
            for name, query in events.items()
        ),
        *(
            {"record": f"check:pyrra:{side}", "expr": f"sum(rate({pyrra[side]['metric']}[5m]))"}
            for side in ("errors", "total")
        ),
    ]
    path = tmp_path / "specs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "specs", "rules": rules}]}))
    result = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
