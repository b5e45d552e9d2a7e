"""Lint for the Grafana dashboards and their provisioning files (STYLE.md section 9); no network.

Every check is a function that returns problem strings naming the dashboard uid and the panel
title, so a failing test prints everything that is wrong at once. ``test_lint_catches`` feeds
deliberately broken dashboards to the same functions, so each check is known to be able to fail.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, ProcessCollector

from exporter.metrics import declarations
from scripts import build_dashboards

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
PROVISIONING_DIR = ROOT / "grafana" / "provisioning"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
FILES = sorted(DASHBOARD_DIR.glob("*.json"))
EXPECTED_UIDS = {
    "aloudata-can-overview",
    "aloudata-can-group",
    "aloudata-can-exporter",
    "aloudata-can-slo",
}

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
UID_PREFIX = "aloudata-can-"
TITLE_PREFIX = "Aloudata CAN / "
TAG = "aloudata-can"
GRID_WIDTH = 24
# Variables in their fixed order: the first three on every dashboard, the rest where needed.
FIRST_VARIABLES = ["datasource", "job", "instance"]
LATER_VARIABLES = ["team", "target", "group", "plan"]
# Labels every selector filters on (when the dashboard has the variable), whatever the metric.
SCRAPE_LABELS = frozenset({"job", "instance"})
PROMETHEUS_METRICS = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)
# The labels of every series the repo's recording rules record: one per group.
RECORDED_LABELS = frozenset({"job", "instance", "target", "group"})
# Only aloudata_can_group_info has the team label; a dashboard with a team variable joins it.
TEAM_FILTER = 'team=~"$team"'


def _exported_metrics() -> dict[str, frozenset[str]]:
    """Every series name the exporter (and Prometheus, per target) exposes, with its labels."""
    suffixes = {
        declarations.HISTOGRAM: ("_bucket", "_sum", "_count"),
        declarations.COUNTER: ("_total",),
    }
    names: dict[str, frozenset[str]] = {}
    for spec in declarations.ALL:
        for suffix in suffixes.get(spec.type, ("",)):
            names[spec.name + suffix] = frozenset(spec.labels)
    # The standard process_* metrics: not the exporter's own, so not declared.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    for family in registry.collect():
        for sample in family.samples:
            names[sample.name] = frozenset(sample.labels)
    names.update(dict.fromkeys(PROMETHEUS_METRICS, frozenset()))
    return names


def recorded_series(rules: Path = RULES) -> dict[str, frozenset[str]]:
    """The series the recording rules in ``rules`` record (their ``record:`` names), with
    their labels: every rule there keeps one series per group."""
    document = yaml.safe_load(rules.read_text(encoding="utf-8")) or {}
    return {
        str(rule["record"]): RECORDED_LABELS
        for group in document.get("groups") or []
        for rule in group.get("rules") or []
        if "record" in rule
    }


EXPORTED = {**_exported_metrics(), **recorded_series()}


# -- Walking a dashboard -----------------------------------------------------------------------


def _panels(board: Json) -> Iterator[Json]:
    """Every panel, including those inside collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _where(board: Json, panel: Json | None = None) -> str:
    uid = board.get("uid", "<no uid>")
    return f"{uid} / {panel.get('title', '<untitled>')}" if panel is not None else uid


def _variables(board: Json) -> list[Json]:
    variables: list[Json] = board.get("templating", {}).get("list", [])
    return variables


def _query_text(variable: Json) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "") if isinstance(query, dict) else query)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Json]]:
    """Every mapping in a JSON document with its path."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


# -- PromQL, as far as the lint needs it ------------------------------------------------------

_VARIABLE_BRACES = re.compile(r"\$\{(\w+)\}")
_SELECTOR = re.compile(r"(?<![\w:])([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_RANGE = re.compile(r"\[([^\]]*)\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"bool", "and", "or", "unless", "offset", "group_left", "group_right", "inf", "nan"}
)
_RANGE_FUNCTION = re.compile(r"\b(?:rate|irate|increase|delta|idelta|deriv|\w+_over_time)\s*\(")
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$", re.DOTALL)
_TIMES_1000 = re.compile(r"\*\s*1000\b|\b1000\s*\*")


def lint_expr(expr: str, variables: set[str], where: str) -> list[str]:
    """Known metrics only, each selector filtered on the variables its metric carries, and
    every range ``[$__rate_interval]``. ``variables`` are the query variables in scope."""
    problems: list[str] = []
    expr = _VARIABLE_BRACES.sub(r"$\1", expr)
    for metric, body in _SELECTOR.findall(expr):
        problems += _lint_selector(metric, dict(_matchers(body)), variables, where)
    rest = _GROUPING.sub(" ", _RANGE.sub(" ", _STRING.sub(" ", _SELECTOR.sub(" ", expr))))
    for name in _IDENTIFIER.findall(rest):
        if name not in _KEYWORDS:
            problems += _lint_selector(name, {}, variables, where)
    ranges = _RANGE.findall(expr)
    problems += [
        f"{where}: range [{window}] must be [$__rate_interval]: {expr}"
        for window in ranges
        if window != "$__rate_interval"
    ]
    if len(_RANGE_FUNCTION.findall(expr)) > len(ranges):
        problems.append(f"{where}: a range function without [$__rate_interval]: {expr}")
    return problems


def _matchers(body: str) -> Iterator[tuple[str, tuple[str, str]]]:
    for label, operator, value in _MATCHER.findall(body):
        yield label, (operator, value)


def _lint_selector(
    metric: str, matchers: dict[str, tuple[str, str]], variables: set[str], where: str
) -> list[str]:
    if not metric:
        return [f"{where}: selector without a metric name: {{{matchers}}}"]
    if metric not in EXPORTED:
        return [
            f"{where}: unknown metric {metric} (not exported by the exporter, nor recorded by "
            f"{RULES.relative_to(ROOT)})"
        ]
    problems = []
    for label in sorted((SCRAPE_LABELS | EXPORTED[metric]) & variables):
        if matchers.get(label) != ("=~", f"${label}"):
            what = "without label matchers" if not matchers else f'missing {label}=~"${label}"'
            problems.append(f"{where}: {metric} selector {what}")
    return problems


# -- Checks ------------------------------------------------------------------------------------


def lint_identity(board: Json) -> list[str]:
    where = _where(board)
    problems = []
    if not str(board.get("uid", "")).startswith(UID_PREFIX):
        problems.append(f"{where}: uid must start with {UID_PREFIX!r}")
    if not str(board.get("title", "")).startswith(TITLE_PREFIX):
        problems.append(f"{where}: title {board.get('title')!r} must start with {TITLE_PREFIX!r}")
    if TAG not in board.get("tags", []):
        problems.append(f"{where}: tag {TAG!r} missing")
    if "__inputs" in board:
        problems.append(f"{where}: __inputs (an export for sharing) must not be committed")
    expected = {"schemaVersion": 39, "refresh": "1m", "time": {"from": "now-6h", "to": "now"}}
    problems += [
        f"{where}: {key} must be {value!r}"
        for key, value in expected.items()
        if board.get(key) != value
    ]
    links = [link for link in board.get("links", []) if link.get("type") == "dashboards"]
    if len(links) != 1 or not (
        links[0].get("tags") == [TAG] and links[0].get("includeVars") and links[0].get("keepTime")
    ):
        problems.append(
            f"{where}: needs one dashboards link by tag {TAG!r} (includeVars, keepTime)"
        )
    return problems


def lint_variables(board: Json) -> list[str]:
    where = _where(board)
    variables = _variables(board)
    names = [str(variable.get("name", "")) for variable in variables]
    later = names[len(FIRST_VARIABLES) :]
    if names[: len(FIRST_VARIABLES)] != FIRST_VARIABLES or later != [
        name for name in LATER_VARIABLES if name in later
    ]:
        return [
            f"{where}: variables {names} must be {FIRST_VARIABLES} then some of {LATER_VARIABLES}"
        ]
    problems = []
    source = variables[0]
    if (source.get("type"), source.get("query"), source.get("label")) != (
        "datasource",
        "prometheus",
        "Data source",
    ):
        problems.append(f"{where}: variable datasource must be a Prometheus data source variable")
    for index, variable in enumerate(variables[1:], start=1):
        name = variable["name"]
        here = f"{where} / variable {name}"
        if variable.get("datasource") != DATASOURCE:
            problems.append(f"{here}: datasource must be {DATASOURCE}")
        match = _LABEL_VALUES.match(_query_text(variable))
        if variable.get("type") != "query" or match is None or match.group(2) != name:
            problems.append(f"{here}: must be a query variable label_values(..., {name})")
            continue
        problems += lint_expr(match.group(1), set(names[1:index]), here)
        if variable.get("includeAll") and variable.get("allValue") != ".*":
            problems.append(f"{here}: includeAll needs allValue '.*' for =~ matchers")
        if variable.get("multi") and not variable.get("includeAll"):
            problems.append(f"{here}: a multi-value variable also offers All")
    return problems


def lint_datasources(board: Json) -> list[str]:
    """Every datasource reference anywhere is the variable: no hard-coded uids."""
    problems = [
        f"{_where(board)}{path}: datasource {node['datasource']!r} must be {DATASOURCE}"
        for path, node in _walk(board)
        if "datasource" in node and node["datasource"] != DATASOURCE
    ]
    for panel in _panels(board):
        if panel.get("type") == "row":
            continue
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"{_where(board, panel)}: panel datasource must be {DATASOURCE}")
        problems += [
            f"{_where(board, panel)}: target {target.get('refId')} datasource must be {DATASOURCE}"
            for target in panel.get("targets", [])
            if target.get("datasource") != DATASOURCE
        ]
    return problems


def lint_panels(board: Json) -> list[str]:
    problems = []
    seen: dict[int, str] = {}
    for panel in _panels(board):
        where = _where(board, panel)
        if panel.get("id") in seen:
            problems.append(f"{where}: duplicate panel id {panel.get('id')} ({seen[panel['id']]})")
        seen[panel.get("id", -1)] = panel.get("title", "")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(key), int) for key in "hwxy"):
            problems.append(f"{where}: gridPos needs integer h, w, x, y")
        elif grid["x"] + grid["w"] > GRID_WIDTH:
            problems.append(f"{where}: wider than the grid")
        if panel.get("type") == "row":
            continue
        if not str(panel.get("description", "")).strip():
            problems.append(f"{where}: no description")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{where}: no unit in fieldConfig.defaults")
        if not panel.get("targets"):
            problems.append(f"{where}: no queries")
    return problems + _overlaps(board)


def _overlaps(board: Json) -> list[str]:
    placed = [(panel, panel.get("gridPos", {})) for panel in board.get("panels", [])]
    problems = []
    for index, (panel, a) in enumerate(placed):
        for other, b in placed[index + 1 :]:
            try:
                apart = (
                    a["x"] + a["w"] <= b["x"]
                    or b["x"] + b["w"] <= a["x"]
                    or a["y"] + a["h"] <= b["y"]
                    or b["y"] + b["h"] <= a["y"]
                )
            except KeyError:
                continue  # reported by lint_panels
            if not apart:
                problems.append(f"{_where(board, panel)}: overlaps {other.get('title')!r}")
    return problems


def _unit_of(panel: Json, ref_id: str) -> str:
    """The unit a query's values get: an override by refId or by table column, else the default."""
    field_config = panel.get("fieldConfig", {})
    unit = str(field_config.get("defaults", {}).get("unit", ""))
    for override in field_config.get("overrides", []):
        matcher = override.get("matcher", {})
        if (matcher.get("id"), matcher.get("options")) in {
            ("byFrameRefID", ref_id),
            ("byName", f"Value #{ref_id}"),
        }:
            for prop in override.get("properties", []):
                if prop.get("id") == "unit":
                    unit = str(prop.get("value"))
    return unit


def lint_queries(board: Json) -> list[str]:
    variables = {variable.get("name", "") for variable in _variables(board)[1:]}
    problems = []
    for panel in _panels(board):
        for target in panel.get("targets", []):
            where = f"{_where(board, panel)} [{target.get('refId')}]"
            expr = str(target.get("expr", ""))
            if not expr.strip():
                problems.append(f"{where}: empty expr")
                continue
            problems += lint_expr(expr, variables, where)
            problems += _lint_time_unit(expr, _unit_of(panel, str(target.get("refId"))), where)
            if "team" in variables and TEAM_FILTER not in _VARIABLE_BRACES.sub(r"$\1", expr):
                problems.append(f"{where}: not filtered on {TEAM_FILTER} (join group_info): {expr}")
    return problems


def _lint_time_unit(expr: str, unit: str, where: str) -> list[str]:
    if unit.startswith("dateTime") and not _TIMES_1000.search(expr):
        return [f"{where}: unit {unit} needs the Unix seconds multiplied by 1000: {expr}"]
    if "_timestamp_seconds" in expr and "time()" not in expr and not unit.startswith("dateTime"):
        return [f"{where}: a timestamp needs unit dateTimeAsIso (and * 1000), not {unit!r}"]
    return []


def lint_links(board: Json, boards: dict[str, Json]) -> list[str]:
    """Links to /d/<uid> point at a shipped dashboard and set only variables it has."""
    problems = []
    for path, node in _walk(board):
        url = node.get("url")
        if not isinstance(url, str):
            continue
        for uid in re.findall(r"/d/([\w-]+)", url):
            if uid not in boards:
                problems.append(f"{_where(board)}{path}: link to unknown dashboard {uid!r}")
                continue
            known = {variable.get("name") for variable in _variables(boards[uid])}
            problems += [
                f"{_where(board)}{path}: link sets var-{name}, which {uid} has no variable for"
                for name in re.findall(r"var-(\w+)=", url)
                if name not in known
            ]
    return problems


def lint(board: Json, boards: dict[str, Json]) -> list[str]:
    return (
        lint_identity(board)
        + lint_variables(board)
        + lint_datasources(board)
        + lint_panels(board)
        + lint_queries(board)
        + lint_links(board, boards)
    )


# -- The committed dashboards ------------------------------------------------------------------


def _load(path: Path) -> Json:
    board: Json = json.loads(path.read_text(encoding="utf-8"))
    return board


@pytest.fixture(scope="module")
def boards() -> dict[str, Json]:
    return {board["uid"]: board for board in map(_load, FILES)}


def test_the_dashboards_are_committed(boards: dict[str, Json]) -> None:
    assert set(boards) == EXPECTED_UIDS
    assert len(FILES) == len(boards), "two files share a uid"


@pytest.mark.parametrize(
    "check", [lint_identity, lint_variables, lint_datasources, lint_panels, lint_queries]
)
@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_dashboard(path: Path, check: Callable[[Json], list[str]]) -> None:
    problems = check(_load(path))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_links_point_at_shipped_dashboards(path: Path, boards: dict[str, Json]) -> None:
    problems = lint_links(_load(path), boards)
    assert not problems, "\n".join(problems)


def test_overview_links_each_group_to_the_group_dashboard(boards: dict[str, Json]) -> None:
    overview = json.dumps(boards["aloudata-can-overview"])
    assert "/d/aloudata-can-group/" in overview
    assert "var-group=${__data.fields.group}" in overview


def test_the_slo_dashboard_lists_the_fastest_burning_groups_first(
    boards: dict[str, Json],
) -> None:
    panels = {panel["title"]: panel for panel in boards["aloudata-can-slo"]["panels"]}
    table = panels["SLOs"]
    assert table["options"]["sortBy"] == [{"displayName": "Burn 1h", "desc": True}]
    names = {
        prop["value"]
        for override in table["fieldConfig"]["overrides"]
        for prop in override["properties"]
        if prop["id"] == "displayName"
    }
    assert {"Objective", "SLI 28d", "Budget remaining", "Burn 1h", "Burn 3d"} <= names
    order = table["transformations"][1]["options"]["indexByName"]
    assert {"team", "owner"} <= set(order)
    assert "var-group=${__data.fields.group}" in json.dumps(table)
    assert "/d/aloudata-can-group/" in json.dumps(table)
    lines = [
        step["value"]
        for title in ("Burn rate over 1h", "Burn rate over 6h", "Burn rate over 1d")
        for step in panels[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    ]
    assert {1, 3, 6, 14.4} <= set(lines)


def test_recording_rules_are_known_series(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n"
        "  - name: a\n"
        "    rules:\n"
        "      - record: aloudata_can:x:5m\n"
        "        expr: vector(1)\n"
        "      - alert: X\n"
        "        expr: vector(1)\n"
        "  - name: empty\n"
        "    rules: []\n",
        encoding="utf-8",
    )
    assert recorded_series(rules) == {"aloudata_can:x:5m": RECORDED_LABELS}
    # Whatever the repo records is known, with the labels job, instance, target and group.
    for name, labels in recorded_series().items():
        assert EXPORTED[name] == labels


def test_a_team_dashboard_filters_every_query_on_team() -> None:
    board = copy.deepcopy(build_dashboards.slo())
    target = _target(board, "SLOs", "D")
    target["expr"] = target["expr"].replace(', team=~"$team"', "")
    problems = lint_queries(board)
    assert any(f"SLOs [D]: not filtered on {TEAM_FILTER}" in problem for problem in problems)
    assert not any("[A]: not filtered" in problem for problem in problems)


def test_the_group_dashboard_shows_one_group(boards: dict[str, Json]) -> None:
    variables = {
        variable["name"]: variable for variable in _variables(boards["aloudata-can-group"])
    }
    assert not variables["group"]["multi"]
    assert not variables["group"]["includeAll"]
    assert variables["plan"]["multi"]
    assert variables["plan"]["includeAll"]


def test_the_group_dashboard_lists_missing_plans(boards: dict[str, Json]) -> None:
    panels = {panel["title"]: panel for panel in boards["aloudata-can-group"]["panels"]}
    missing = panels["Missing plans"]
    assert missing["type"] == "table"
    (target,) = missing["targets"]
    assert "aloudata_can_plan_missing{" in target["expr"]
    assert 'plan=~"$plan"' in target["expr"]
    assert target["instant"]


def test_committed_json_is_the_generator_output() -> None:
    problems = build_dashboards.stale_files(DASHBOARD_DIR)
    assert not problems, "\n".join(problems)


def test_the_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    build_dashboards.write(tmp_path)
    assert build_dashboards.main(["--check", "--output", str(tmp_path)]) == 0
    stale = tmp_path / "aloudata-can-group.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("Data lag", "Lag"), encoding="utf-8")
    (tmp_path / "aloudata-can-exporter.json").unlink()
    (tmp_path / "extra.json").write_text("{}", encoding="utf-8")
    hint = "run python scripts/build_dashboards.py"
    assert build_dashboards.stale_files(tmp_path) == [
        f"{stale}: stale; {hint}",
        f"{tmp_path / 'aloudata-can-exporter.json'}: missing; {hint}",
        f"{tmp_path / 'extra.json'}: not generated by scripts/build_dashboards.py",
    ]
    assert build_dashboards.main(["--check", "--output", str(tmp_path)]) == 1


def test_the_state_expression_is_shared() -> None:
    state = build_dashboards.state_expr()
    for check in ("poll", "not_ready", "data_lag", "refresh_age"):
        assert f'"check", "{check}"' in state
    overview = json.dumps(build_dashboards.overview())
    assert overview.count(json.dumps(state)[1:-1]) == 5  # four counts and the table's column


# -- Provisioning ------------------------------------------------------------------------------


def _yaml(relative: str) -> Json:
    document: Json = yaml.safe_load((PROVISIONING_DIR / relative).read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize(
    "path",
    sorted(PROVISIONING_DIR.rglob("*.y*ml")),
    ids=lambda path: str(path.relative_to(PROVISIONING_DIR)),
)
def test_provisioning_files_parse(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    assert document.get("apiVersion") == 1


def test_dashboard_provider_points_at_the_dashboards() -> None:
    providers = _yaml("dashboards/aloudata-can.yml")["providers"]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["name"] == "aloudata-can"
    assert provider["folder"] == "Aloudata CAN"
    assert provider["type"] == "file"
    assert provider["disableDeletion"] is False
    assert provider["updateIntervalSeconds"] == 30
    assert provider["allowUiUpdates"] is False
    assert provider["options"] == {
        "path": "/var/lib/grafana/dashboards/aloudata-can",
        "foldersFromFilesStructure": False,
    }


def test_datasource_is_the_dashboards_default(boards: dict[str, Json]) -> None:
    sources = _yaml("datasources/prometheus.yml")["datasources"]
    assert len(sources) == 1
    source = sources[0]
    assert source["name"] == "Prometheus"
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True
    assert source["jsonData"]["timeInterval"] == "15s"
    for board in boards.values():
        assert _variables(board)[0]["current"]["value"] == source["uid"] == "prometheus"


# -- The lint can fail -------------------------------------------------------------------------


def _target(board: Json, title: str, ref_id: str = "A") -> Json:
    panel = next(panel for panel in _panels(board) if panel.get("title") == title)
    target: Json = next(target for target in panel["targets"] if target["refId"] == ref_id)
    return target


def _set_expr(title: str, expr: str, ref_id: str = "A") -> Callable[[Json], None]:
    def mutate(board: Json) -> None:
        _target(board, title, ref_id)["expr"] = expr

    return mutate


def _drop_variable(board: Json) -> None:
    board["templating"]["list"].pop(0)


def _duplicate_id(board: Json) -> None:
    board["panels"][1]["id"] = board["panels"][0]["id"]


def _overlap(board: Json) -> None:
    board["panels"][1]["gridPos"] = dict(board["panels"][0]["gridPos"])


def _link_elsewhere(board: Json) -> None:
    board["panels"][4]["fieldConfig"]["overrides"][-1]["properties"][0]["value"][0]["url"] = (
        "/d/aloudata-can-plans/x?var-group=${__data.fields.group}"
    )


def _link_unknown_variable(board: Json) -> None:
    board["panels"][4]["fieldConfig"]["overrides"][-1]["properties"][0]["value"][0]["url"] = (
        "/d/aloudata-can-group/x?var-groups=${__data.fields.group}"
    )


SELECTOR = 'job=~"$job", instance=~"$instance", target=~"$target", group=~"$group"'

BROKEN: list[tuple[str, Callable[[Json], None], str]] = [
    ("title", lambda board: board.update(title="Overview"), "title 'Overview' must start"),
    ("tag", lambda board: board.update(tags=[]), "tag 'aloudata-can' missing"),
    ("uid", lambda board: board.update(uid="overview"), "uid must start"),
    ("inputs", lambda board: board.update(__inputs=[]), "__inputs"),
    ("links", lambda board: board.update(links=[]), "needs one dashboards link"),
    ("variable order", _drop_variable, "variables ['job'"),
    (
        "variable datasource",
        lambda board: board["templating"]["list"][2].update(datasource={"uid": "P1"}),
        "variable instance: datasource must be",
    ),
    (
        "variable filter",
        lambda board: board["templating"]["list"][3].update(
            query="label_values(aloudata_can_poll_success, target)"
        ),
        "variable target: aloudata_can_poll_success selector without label matchers",
    ),
    (
        "panel datasource",
        lambda board: board["panels"][0].update(datasource={"type": "prometheus", "uid": "P1"}),
        "Fresh groups: panel datasource must be",
    ),
    (
        "target datasource",
        lambda board: _target(board, "Data lag by group").update(datasource=None),
        "Data lag by group: target A datasource must be",
    ),
    ("description", lambda board: board["panels"][0].pop("description"), "Fresh groups: no desc"),
    (
        "unit",
        lambda board: board["panels"][5]["fieldConfig"]["defaults"].pop("unit"),
        "Data lag by group: no unit",
    ),
    ("panel id", _duplicate_id, "Warning groups: duplicate panel id 1 (Fresh groups)"),
    ("overlap", _overlap, "Fresh groups: overlaps 'Warning groups'"),
    (
        "job filter",
        _set_expr("Data lag by group", 'aloudata_can_data_lag_seconds{instance=~"$instance"}'),
        'Data lag by group [A]: aloudata_can_data_lag_seconds selector missing job=~"$job"',
    ),
    (
        "group filter",
        _set_expr(
            "Data lag by group", 'aloudata_can_data_lag_seconds{job=~"$job", instance=~"$instance"}'
        ),
        'aloudata_can_data_lag_seconds selector missing group=~"$group"',
    ),
    (
        "bare metric",
        _set_expr("Fresh groups", "count(aloudata_can_poll_success) or vector(0)"),
        "Fresh groups [A]: aloudata_can_poll_success selector without label matchers",
    ),
    (
        "unknown metric",
        _set_expr("Data lag by group", f"aloudata_can_data_lag{{{SELECTOR}}}"),
        "Data lag by group [A]: unknown metric aloudata_can_data_lag",
    ),
    (
        "counter suffix",
        _set_expr(
            "Data lag by group", f"rate(aloudata_can_poll_errors{{{SELECTOR}}}[$__rate_interval])"
        ),
        "unknown metric aloudata_can_poll_errors ",
    ),
    (
        "rate window",
        _set_expr("Data lag by group", f"rate(aloudata_can_poll_errors_total{{{SELECTOR}}}[5m])"),
        "Data lag by group [A]: range [5m] must be [$__rate_interval]",
    ),
    (
        "timestamp unit",
        _set_expr("Groups", f"aloudata_can_last_success_timestamp_seconds{{{SELECTOR}}}", "J"),
        "Groups [J]: unit dateTimeAsIso needs the Unix seconds multiplied by 1000",
    ),
    (
        "timestamp without unit",
        _set_expr("Groups", f"aloudata_can_latest_data_timestamp_seconds{{{SELECTOR}}}", "B"),
        "Groups [B]: a timestamp needs unit dateTimeAsIso",
    ),
    ("link target", _link_elsewhere, "link to unknown dashboard 'aloudata-can-plans'"),
    ("link variable", _link_unknown_variable, "link sets var-groups"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(mutate, expected, id=name) for name, mutate, expected in BROKEN],
)
def test_lint_catches(mutate: Callable[[Json], None], expected: str) -> None:
    boards = {name.removesuffix(".json"): board for name, board in build_dashboards.build().items()}
    board = copy.deepcopy(boards["aloudata-can-overview"])
    assert lint(board, boards) == []
    mutate(board)
    problems = lint(board, boards)
    assert any(expected in problem for problem in problems), "\n".join(problems)
