#!/usr/bin/env python3
"""Generates the Grafana dashboards in ``grafana/dashboards/`` (the JSON there is committed).

    python scripts/build_dashboards.py           # rewrite the JSON files
    python scripts/build_dashboards.py --check   # exit 1 if a committed file differs

Edit this file, never the JSON. The panel builders below set the data source, units,
descriptions and layout in one place; ``tests/dashboards/test_dashboard_lint.py`` checks
the conventions (STYLE.md section 9) on the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = ROOT / "grafana" / "dashboards"

TAG = "aloudata-can"
TITLE_PREFIX = "Aloudata CAN / "
OVERVIEW_UID = "aloudata-can-overview"
GROUP_UID = "aloudata-can-group"
EXPORTER_UID = "aloudata-can-exporter"
SLO_UID = "aloudata-can-slo"
DEFAULT_JOB = "aloudata-can-exporter"
# The uid the provisioned data source has (grafana/provisioning/datasources/prometheus.yml).
DEFAULT_DATASOURCE_UID = "prometheus"
SCHEMA_VERSION = 39
GRID_WIDTH = 24
RATE_INTERVAL = "$__rate_interval"

DATASOURCE: Mapping[str, str] = {"type": "prometheus", "uid": "${datasource}"}

# Which template variables filter a selector; each is matched as label=~"$label".
EXPORTER_SCOPE = ("job", "instance")
GROUP_SCOPE = (*EXPORTER_SCOPE, "target", "group")
PLAN_SCOPE = (*GROUP_SCOPE, "plan")
GROUP_KEY = "job, instance, target, group"
PLAN_KEY = f"{GROUP_KEY}, plan"

# Value mappings: value -> (text, color).
STATE_TEXTS = {0: ("Fresh", "green"), 1: ("Warning", "orange"), 2: ("Critical", "red")}
STATE_MAPPING = {**STATE_TEXTS, 3: ("Failing", "purple")}
POLL_MAPPING = {0: ("Failing", "red"), 1: ("OK", "green")}
NOT_READY_MAPPING = {0: ("Ready", "green"), 1: ("Not ready", "orange")}
MISSING_MAPPING = {1: ("Does not exist", "red")}
UP_MAPPING = {0: ("Down", "red"), 1: ("Up", "green")}
RELOAD_MAPPING = {0: ("Failed", "red"), 1: ("OK", "green")}
BUSINESS_DAY_MAPPING = {0: ("Day off", "blue"), 1: ("Business day", "green")}
MAINTENANCE_MAPPING = {0: ("None", "green"), 1: ("In maintenance", "purple")}

# Units (Grafana ids).
SECONDS = "s"
TIMESTAMP = "dateTimeAsIso"
COUNT = "none"
SHORT = "short"
BYTES = "bytes"
RATIO = "percentunit"
PER_SECOND = "reqps"
BURN_RATE = "suffix:x"

# -- PromQL ------------------------------------------------------------------------------------


def selector(metric: str, scope: Sequence[str], **fixed: str) -> str:
    """``metric{job=~"$job", ...}`` filtered on every variable in ``scope`` plus fixed labels."""
    matchers = [f'{label}=~"${label}"' for label in scope]
    matchers += [f'{label}="{value}"' for label, value in fixed.items()]
    return f"{metric}{{{', '.join(matchers)}}}"


def rate(metric: str, scope: Sequence[str], function: str = "rate") -> str:
    return f"{function}({selector(metric, scope)}[{RATE_INTERVAL}])"


def max_by(labels: str, expr: str) -> str:
    return f"max by ({labels}) ({expr})"


def as_millis(expr: str) -> str:
    """Grafana's time units expect milliseconds; the exporter exports Unix seconds."""
    return f"{expr} * 1000"


def _over_thresholds(value: str, threshold: str, scope: Sequence[str]) -> str:
    """0 or 1 per configured warning threshold, 0 or 2 per critical one.

    ``group_right`` keeps the threshold's ``severity`` label, so the two comparisons stay
    distinct series under ``or``, and a severity that is disabled (its series absent) simply
    adds nothing instead of dropping the whole comparison as ``+`` would.
    """
    lag = _business_or_wall(value, scope)

    def over(severity: str) -> str:
        limit = selector(threshold, scope, severity=severity)
        return f"({lag} > bool ignoring(severity) group_right {limit})"

    return f"{over('warning')} or 2 * {over('critical')}"


def _business_or_wall(value: str, scope: Sequence[str]) -> str:
    """A lag or age as the alerts compare it: in business seconds for a group with a calendar
    (its ``_business_seconds`` series exists only for those), on the wall clock elsewhere."""
    business = value.replace("_seconds", "_business_seconds")
    return f"({selector(business, scope)} or {selector(value, scope)})"


def state_expr(scope: Sequence[str] = GROUP_SCOPE) -> str:
    """The state of each group: 0 fresh, 1 warning, 2 critical, 3 failing (the worst check wins).

    Each branch gets its own ``check`` label because ``or`` matches on labels and ignores
    metric names: without it, a later branch with the same target/group would be dropped.
    A group whose polls fail keeps its last lag values, and the poll branch makes it 3.
    """
    branches = {
        "poll": f"3 * (1 - {selector('aloudata_can_poll_success', scope)})",
        "not_ready": selector("aloudata_can_not_ready", scope),
        "data_lag": _over_thresholds(
            "aloudata_can_data_lag_seconds", "aloudata_can_data_lag_threshold_seconds", scope
        ),
        "refresh_age": _over_thresholds(
            "aloudata_can_refresh_age_seconds",
            "aloudata_can_refresh_age_threshold_seconds",
            scope,
        ),
    }
    lines = [
        f'label_replace({expr}, "check", "{check}", "", "")' for check, expr in branches.items()
    ]
    return f"max by ({GROUP_KEY}) (\n    " + "\n  or ".join(lines) + "\n)"


def quantiles(metric: str, scope: Sequence[str], by: str = "le") -> list[Query]:
    buckets = f"sum by ({by}) ({rate(metric + '_bucket', scope)})"
    return [
        Query(f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)
    ]


# -- Panels ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str = "__auto"


@dataclass(frozen=True, slots=True)
class Column:
    """One value column of a table: an instant query whose labels are the row key."""

    title: str
    expr: str
    unit: str
    mapping: Mapping[int, tuple[str, str]] | None = None
    cell: str = "auto"  # or "color-background", "color-text"
    thresholds: Json | None = None  # the colours of a color-* cell, instead of the table's
    decimals: int | None = None


def _ref(index: int) -> str:
    return chr(ord("A") + index)


def _target(query: Query, index: int, *, instant: bool, table: bool = False) -> Json:
    return {
        "datasource": dict(DATASOURCE),
        "refId": _ref(index),
        "expr": query.expr,
        "legendFormat": query.legend,
        "range": not instant,
        "instant": instant,
        "format": "table" if table else "time_series",
        "editorMode": "code",
    }


def _mappings(mapping: Mapping[int, tuple[str, str]] | None) -> list[Json]:
    if not mapping:
        return []
    options = {
        str(value): {"text": text, "color": color, "index": index}
        for index, (value, (text, color)) in enumerate(mapping.items())
    }
    return [{"type": "value", "options": options}]


def _steps(base: str, *steps: tuple[float, str]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def _panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    targets: list[Json],
    *,
    defaults: Json | None = None,
    overrides: Sequence[Json] = (),
    options: Json,
    transformations: Sequence[Json] = (),
) -> Json:
    panel: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": dict(DATASOURCE),
        "fieldConfig": {
            "defaults": {"unit": unit, **(defaults or {})},
            "overrides": list(overrides),
        },
        "options": options,
        "targets": targets,
    }
    if transformations:
        panel["transformations"] = list(transformations)
    return panel


def stat(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    mapping: Mapping[int, tuple[str, str]] | None = None,
    thresholds: Json | None = None,
    text_mode: str = "auto",
    color_mode: str = "background",
) -> Json:
    return _panel(
        "stat",
        title,
        description,
        unit,
        [_target(query, i, instant=True) for i, query in enumerate(queries)],
        defaults={
            "color": {"mode": "thresholds"},
            "mappings": _mappings(mapping),
            "thresholds": thresholds or _steps("text"),
        },
        options={
            "reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""},
            "orientation": "auto",
            "textMode": text_mode,
            "colorMode": color_mode,
            "graphMode": "none",
            "justifyMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
        },
    )


def dashed(ref_id: str, color: str) -> Json:
    """An override drawing one query's series (a threshold, a limit) as a dashed line."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [
            {"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        ],
    }


def timeseries(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    overrides: Sequence[Json] = (),
    links: Sequence[Json] = (),
    bars: bool = False,
    log_scale: bool = False,
    thresholds: Json | None = None,
) -> Json:
    """A graph; ``thresholds`` are drawn as dashed horizontal lines, one per step."""
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 50 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
    }
    if log_scale:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    else:
        custom["axisSoftMin"] = 0
    defaults: Json = {"color": {"mode": "palette-classic"}, "custom": custom}
    if thresholds:
        custom["thresholdsStyle"] = {"mode": "dashed"}
        defaults["thresholds"] = thresholds
    if links:
        defaults["links"] = list(links)
    return _panel(
        "timeseries",
        title,
        description,
        unit,
        [_target(query, i, instant=False) for i, query in enumerate(queries)],
        defaults=defaults,
        overrides=overrides,
        options={
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def table(
    title: str,
    description: str,
    key: Sequence[str],
    columns: Sequence[Column],
    *,
    sort_by: str,
    links: Mapping[str, Json] | None = None,
) -> Json:
    """One row per ``key`` label set: every column is an instant query merged on the key."""
    overrides: list[Json] = []
    for index, column in enumerate(columns):
        properties: list[Json] = [
            {"id": "displayName", "value": column.title},
            {"id": "unit", "value": column.unit},
        ]
        if column.mapping:
            properties.append({"id": "mappings", "value": _mappings(column.mapping)})
        if column.cell != "auto":
            properties.append({"id": "custom.cellOptions", "value": {"type": column.cell}})
        if column.thresholds:
            properties.append({"id": "thresholds", "value": column.thresholds})
        if column.decimals is not None:
            properties.append({"id": "decimals", "value": column.decimals})
        overrides.append(
            {
                "matcher": {"id": "byName", "options": f"Value #{_ref(index)}"},
                "properties": properties,
            }
        )
    for name, link in (links or {}).items():
        overrides.append(
            {
                "matcher": {"id": "byName", "options": name},
                "properties": [{"id": "links", "value": [link]}],
            }
        )
    order = [*key, *(f"Value #{_ref(i)}" for i in range(len(columns)))]
    return _panel(
        "table",
        title,
        description,
        COUNT,
        [
            _target(Query(column.expr, ""), i, instant=True, table=True)
            for i, column in enumerate(columns)
        ],
        defaults={
            "color": {"mode": "thresholds"},
            "thresholds": _steps("text"),
            "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True},
        },
        overrides=overrides,
        options={
            "showHeader": True,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "fields": "", "countRows": False},
            "sortBy": [{"displayName": sort_by, "desc": True}],
        },
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {name: i for i, name in enumerate(order)},
                    "renameByName": {},
                },
            },
        ],
    )


def info_table(title: str, description: str, expr: str, *, link_column: str) -> Json:
    """One row per series of an info metric, a column per label; ``link_column`` holds URLs.

    The columns come from the series' labels, so a label added in the exporter's config shows
    up without a change here.
    """
    link = {"title": "Open ${__value.raw}", "url": "${__value.raw}", "targetBlank": True}
    return _panel(
        "table",
        title,
        description,
        COUNT,
        [_target(Query(expr, ""), 0, instant=True, table=True)],
        defaults={
            "color": {"mode": "thresholds"},
            "thresholds": _steps("text"),
            "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": False},
        },
        overrides=[
            {
                "matcher": {"id": "byName", "options": link_column},
                "properties": [{"id": "links", "value": [link]}],
            }
        ],
        options={
            "showHeader": True,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "fields": "", "countRows": False},
        },
        transformations=[
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "Value": True},
                    "indexByName": {"target": 0, "group": 1},
                    "renameByName": {},
                },
            },
        ],
    )


def group_link(fields: str) -> Json:
    """A data link to the group dashboard for one instance/target/group.

    ``fields`` is where the labels are: ``__data.fields`` (a table row) or ``__field.labels``
    (a series). The link keeps the data source, job and time range.
    """
    url = (
        f"/d/{GROUP_UID}/{GROUP_UID}?var-datasource=${{datasource}}&var-job=${{job}}"
        f"&var-instance=${{{fields}.instance}}&var-target=${{{fields}.target}}"
        f"&var-group=${{{fields}.group}}&${{__url_time_range}}"
    )
    return {"title": "Open the group dashboard", "url": url, "targetBlank": False}


# -- Variables ---------------------------------------------------------------------------------


def _datasource_variable() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": DEFAULT_DATASOURCE_UID},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def _query_variable(
    name: str, label: str, query: str, *, multi: bool, current: Json | None = None
) -> Json:
    if current is None:
        current = {"text": ["All"], "value": ["$__all"]} if multi else {}
    variable: Json = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": dict(DATASOURCE),
        "query": query,
        "definition": query,
        "current": current,
        "hide": 0,
        "includeAll": multi,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }
    if multi:
        variable["allValue"] = ".*"
    return variable


def variables(*names: str, groups_from: str = "aloudata_can_poll_success") -> list[Json]:
    """The template variables, always in this order; ``names`` picks those after ``instance``.

    ``groups_from`` is the metric the target and group values come from. ``team`` comes from the
    groups' config labels (aloudata_can_group_info); the other metrics have no team label, so
    the variables after it are not filtered on it: queries join group_info instead
    (``in_team``).
    """
    scope: list[str] = list(EXPORTER_SCOPE)
    result = [
        _datasource_variable(),
        _query_variable(
            "job",
            "Job",
            "label_values(aloudata_can_exporter_build_info, job)",
            multi=False,
            current={"text": DEFAULT_JOB, "value": DEFAULT_JOB},
        ),
        _query_variable(
            "instance",
            "Instance",
            f"label_values({selector('aloudata_can_exporter_build_info', ['job'])}, instance)",
            multi=True,
        ),
    ]
    sources = {
        "team": ("Team", "aloudata_can_group_info", True),
        "target": ("Target", groups_from, True),
        "group": ("Group", groups_from, True),
        "single_group": ("Group", groups_from, False),
        "plan": ("Plan", "aloudata_can_plan_poll_success", True),
    }
    for name in names:
        label, metric, multi = sources[name]
        label_name = name.removeprefix("single_")
        query = f"label_values({selector(metric, scope)}, {label_name})"
        result.append(_query_variable(label_name, label, query, multi=multi))
        if label_name != "team":
            scope.append(label_name)
    return result


# -- Layout and dashboards ---------------------------------------------------------------------


@dataclass
class Layout:
    """Places panels left to right, wrapping at the grid width, and numbers them."""

    panels: list[Json] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _line_height: int = 0

    def _newline(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def _place(self, panel: Json, width: int, height: int) -> None:
        if self._x + width > GRID_WIDTH:
            self._newline()
        grid = {"h": height, "w": width, "x": self._x, "y": self._y}
        self.panels.append({"id": len(self.panels) + 1, "gridPos": grid, **panel})
        self._x += width
        self._line_height = max(self._line_height, height)

    def row(self, title: str) -> None:
        self._newline()
        self._place(
            {"type": "row", "title": title, "collapsed": False, "panels": []}, GRID_WIDTH, 1
        )
        self._newline()

    def add(self, width: int, height: int, *panels: Json) -> None:
        for panel in panels:
            self._place(panel, width, height)


def dashboard(
    uid: str, title: str, description: str, templating: list[Json], layout: Layout
) -> Json:
    return {
        "uid": uid,
        "title": TITLE_PREFIX + title,
        "description": description,
        "tags": [TAG],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "version": 1,
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "title": "Aloudata CAN",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
                "icon": "external link",
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": templating},
        "panels": layout.panels,
    }


_STATE_HELP = (
    "State per group: Fresh, Warning (data lag or refresh age over the warning threshold, or CAN "
    "reports not-ready tables), Critical (over a critical threshold) or Failing (the last poll of "
    "CAN failed). A group with a calendar is judged on its business lag and age, as its alerts are."
)


def overview() -> Json:
    scope = GROUP_SCOPE
    state = state_expr(scope)
    layout = Layout()
    count_help = "Number of groups whose state is {}. " + _STATE_HELP
    layout.add(
        6,
        4,
        *(
            stat(
                f"{text} groups",
                count_help.format(text),
                COUNT,
                Query(f"count(({state}) == {value}) or vector(0)", text.lower()),
                # Any group out of the fresh state turns its count the state's colour.
                thresholds=_steps("green") if value == 0 else _steps("green", (1, colour)),
            )
            for value, (text, colour) in STATE_MAPPING.items()
        ),
    )

    def column(title: str, metric: str, unit: str, **fixed: str) -> Column:
        return Column(title, max_by(GROUP_KEY, selector(metric, scope, **fixed)), unit)

    columns = [
        Column("State", state, COUNT, STATE_MAPPING, "color-background"),
        column("Data lag", "aloudata_can_data_lag_seconds", SECONDS),
        column(
            "Lag warning", "aloudata_can_data_lag_threshold_seconds", SECONDS, severity="warning"
        ),
        column(
            "Lag critical", "aloudata_can_data_lag_threshold_seconds", SECONDS, severity="critical"
        ),
        column("Refresh age", "aloudata_can_refresh_age_seconds", SECONDS),
        column(
            "Refresh warning",
            "aloudata_can_refresh_age_threshold_seconds",
            SECONDS,
            severity="warning",
        ),
        column(
            "Refresh critical",
            "aloudata_can_refresh_age_threshold_seconds",
            SECONDS,
            severity="critical",
        ),
        Column(
            "Not ready",
            max_by(GROUP_KEY, selector("aloudata_can_not_ready", scope)),
            COUNT,
            NOT_READY_MAPPING,
            "color-text",
        ),
        Column(
            "Last poll",
            max_by(GROUP_KEY, selector("aloudata_can_poll_success", scope)),
            COUNT,
            POLL_MAPPING,
            "color-text",
        ),
        Column(
            "Last successful poll",
            as_millis(
                max_by(GROUP_KEY, selector("aloudata_can_last_success_timestamp_seconds", scope))
            ),
            TIMESTAMP,
        ),
    ]
    layout.add(
        24,
        11,
        table(
            "Groups",
            f"Every plan group at a glance, worst state first. {_STATE_HELP} Data lag and "
            "refresh age are empty when CAN never returned that time (a never-refreshed plan) or "
            "no poll has succeeded yet; the thresholds are the group's configured ones. Click a "
            "group to open its dashboard.",
            ["job", "instance", "target", "group"],
            columns,
            sort_by="State",
            links={"group": group_link("__data.fields")},
        ),
    )
    field_link = group_link("__field.labels")
    layout.add(
        12,
        9,
        timeseries(
            "Data lag by group",
            "Seconds from CAN's latest data time to now, per group (the oldest over the group's "
            "plans). It keeps growing while polls fail, since the last known value is kept.",
            SECONDS,
            Query(selector("aloudata_can_data_lag_seconds", scope), "{{target}} / {{group}}"),
            links=[field_link],
        ),
        timeseries(
            "Refresh age by group",
            "Seconds since CAN's latest refresh task of the group ended.",
            SECONDS,
            Query(selector("aloudata_can_refresh_age_seconds", scope), "{{target}} / {{group}}"),
            links=[field_link],
        ),
    )
    return dashboard(
        OVERVIEW_UID,
        "Overview",
        "Freshness of every Aloudata CAN plan group the exporter polls.",
        variables("target", "group"),
        layout,
    )


def _against_thresholds(
    title: str, description: str, metric: str, threshold: str, unit: str = SECONDS
) -> Json:
    scope = GROUP_SCOPE
    return timeseries(
        title,
        description + " Dashed lines: the group's warning (orange) and critical (red) thresholds.",
        unit,
        Query(selector(metric, scope), "{{group}}"),
        Query(selector(threshold, scope, severity="warning"), "{{group}} warning"),
        Query(selector(threshold, scope, severity="critical"), "{{group}} critical"),
        overrides=[dashed("B", "orange"), dashed("C", "red")],
    )


LAST_CHANGE = "aloudata_can_data_time_last_change_timestamp_seconds"


def group() -> Json:
    scope = GROUP_SCOPE
    layout = Layout()
    layout.add(
        24,
        3,
        info_table(
            "Owner and labels",
            "The group's labels from the exporter's config (groups[].labels, over "
            "defaults.labels): who owns it (team, owner), where its own dashboard is "
            "(dashboard_url, a link) and any others, from aloudata_can_group_info. The alerts "
            "carry its team and owner. Only target and group when it has no labels.",
            f"max without (job, instance) ({selector('aloudata_can_group_info', scope)})",
            link_column="dashboard_url",
        ),
    )
    layout.add(
        5,
        4,
        stat(
            "State",
            _STATE_HELP,
            COUNT,
            Query(state_expr(scope), "{{group}}"),
            mapping=STATE_MAPPING,
        ),
        stat(
            "Data lag",
            "Seconds from CAN's latest data time (latestDateTime, the oldest over the group's "
            "plans) to now. No value when CAN returned no data time.",
            SECONDS,
            Query(selector("aloudata_can_data_lag_seconds", scope), "{{group}}"),
            color_mode="value",
        ),
        stat(
            "Refresh age",
            "Seconds since CAN's latest refresh task of the group ended (latestRefreshTime). No "
            "value when the plans were never refreshed.",
            SECONDS,
            Query(selector("aloudata_can_refresh_age_seconds", scope), "{{group}}"),
            color_mode="value",
        ),
    )
    layout.add(
        3,
        4,
        stat(
            "Not ready",
            "Whether CAN reports hasNotReady for the group: a materialized table was never "
            "refreshed or has empty partitions.",
            COUNT,
            Query(selector("aloudata_can_not_ready", scope), "{{group}}"),
            mapping=NOT_READY_MAPPING,
        ),
        stat(
            "Last poll",
            "Whether the exporter's last poll of CAN for this group gave a valid reading.",
            COUNT,
            Query(selector("aloudata_can_poll_success", scope), "{{group}}"),
            mapping=POLL_MAPPING,
        ),
        stat(
            "Failures in a row",
            "Polls of the group that failed in a row. From the second one on, the exporter "
            "backs off: the next poll moves out, doubling up to the group's max_backoff.",
            COUNT,
            Query(selector("aloudata_can_poll_consecutive_failures", scope), "{{group}}"),
            thresholds=_steps("green", (1, "orange"), (3, "red")),
        ),
    )
    layout.add(
        6,
        4,
        stat(
            "Latest data time",
            "CAN's latestDateTime for the group (from the last successful poll).",
            TIMESTAMP,
            Query(
                as_millis(selector("aloudata_can_latest_data_timestamp_seconds", scope)),
                "{{group}}",
            ),
            color_mode="none",
        ),
        stat(
            "Latest refresh time",
            "CAN's latestRefreshTime for the group (from the last successful poll).",
            TIMESTAMP,
            Query(
                as_millis(selector("aloudata_can_latest_refresh_timestamp_seconds", scope)),
                "{{group}}",
            ),
            color_mode="none",
        ),
        stat(
            "Last successful poll",
            "When the exporter last polled CAN successfully for this group.",
            TIMESTAMP,
            Query(
                as_millis(selector("aloudata_can_last_success_timestamp_seconds", scope)),
                "{{group}}",
            ),
            color_mode="none",
        ),
        stat(
            "Next poll",
            "When the exporter polls CAN for this group next; more than an interval away while "
            "it backs off after failures.",
            TIMESTAMP,
            Query(
                as_millis(selector("aloudata_can_next_poll_timestamp_seconds", scope)),
                "{{group}}",
            ),
            color_mode="none",
        ),
    )
    layout.add(
        12,
        9,
        _against_thresholds(
            "Data lag against thresholds",
            "Seconds from CAN's latest data time to now.",
            "aloudata_can_data_lag_seconds",
            "aloudata_can_data_lag_threshold_seconds",
        ),
        _against_thresholds(
            "Refresh age against thresholds",
            "Seconds since CAN's latest refresh task ended.",
            "aloudata_can_refresh_age_seconds",
            "aloudata_can_refresh_age_threshold_seconds",
        ),
    )

    layout.row("Schedule (groups with a schedule or a data_granularity)")
    scheduled = " Only groups with a schedule.refresh_cron in the exporter's config export it."
    periods_note = " Only groups with a data_granularity in the exporter's config export it."
    layout.add(
        8,
        4,
        stat(
            "Refresh deadline",
            "The group's last refresh deadline that has passed: the last fire of its "
            "schedule.refresh_cron plus its grace, in the schedule's time zone." + scheduled,
            TIMESTAMP,
            Query(
                as_millis(selector("aloudata_can_refresh_deadline_timestamp_seconds", scope)),
                "{{group}}",
            ),
            color_mode="none",
        ),
        stat(
            "Refresh overdue",
            "How long ago that deadline passed while no refresh has ended since the cron fire "
            "it belongs to (CAN's latestRefreshTime); 0 when the scheduled run has refreshed."
            + scheduled,
            SECONDS,
            Query(selector("aloudata_can_refresh_overdue_seconds", scope), "{{group}}"),
            thresholds=_steps("green", (1, "red")),
        ),
        stat(
            "Data periods behind",
            "Whole days or hours (data_granularity) that CAN's latest data time is behind the "
            "period expected by now (now minus expected_data_delay); 0 when on time or ahead."
            + periods_note,
            COUNT,
            Query(selector("aloudata_can_data_lag_periods", scope), "{{group}}"),
            thresholds=_steps("green", (1, "orange"), (2, "red")),
        ),
    )
    layout.add(
        12,
        8,
        timeseries(
            "Refresh overdue",
            "Seconds past the group's last refresh deadline without a refresh after its cron "
            "fire; it drops to 0 when a refresh ends, and a new deadline starts it again."
            + scheduled,
            SECONDS,
            Query(selector("aloudata_can_refresh_overdue_seconds", scope), "{{group}}"),
        ),
        timeseries(
            "Data periods behind",
            "Whole days or hours the group's data is behind the expected period, over time; "
            "it steps up as each expected period begins without its data." + periods_note,
            COUNT,
            Query(selector("aloudata_can_data_lag_periods", scope), "{{group}}"),
        ),
    )

    layout.row("Business calendar (groups with a calendar)")
    calendar_note = (
        " Only groups with a calendar in the exporter's config export it; the lag and age "
        "alerts compare these figures for them, as the State does."
    )
    layout.add(
        4,
        8,
        stat(
            "Today",
            "Whether today, in the calendar's time zone, is a business day of the group's "
            "calendar (weekends, holidays and make-up working days)." + calendar_note,
            COUNT,
            Query(selector("aloudata_can_business_day", scope), "{{group}}"),
            mapping=BUSINESS_DAY_MAPPING,
        ),
    )
    layout.add(
        10,
        8,
        _against_thresholds(
            "Business data lag against thresholds",
            "Seconds of business days from CAN's latest data time to now: weekends and "
            "holidays add nothing." + calendar_note,
            "aloudata_can_data_lag_business_seconds",
            "aloudata_can_data_lag_threshold_seconds",
        ),
        _against_thresholds(
            "Business refresh age against thresholds",
            "Seconds of business days since CAN's latest refresh task ended." + calendar_note,
            "aloudata_can_refresh_age_business_seconds",
            "aloudata_can_refresh_age_threshold_seconds",
        ),
    )

    layout.row("Maintenance")
    maintenance_note = (
        " Windows come from the maintenance lists of the group, defaults and its target in the "
        "exporter's config; during one the group's freshness and SLO alerts do not fire and its "
        "time counts neither fresh nor observed."
    )
    layout.add(
        4,
        8,
        stat(
            "Maintenance",
            "Whether a maintenance window covers the group now." + maintenance_note,
            COUNT,
            Query(selector("aloudata_can_maintenance", scope), "{{group}}"),
            mapping=MAINTENANCE_MAPPING,
        ),
        stat(
            "Maintenance ends",
            "When the window in force ends (the latest end among the windows covering the "
            "group now); empty outside a window." + maintenance_note,
            TIMESTAMP,
            Query(
                as_millis(selector("aloudata_can_maintenance_end_timestamp_seconds", scope)),
                "{{group}}",
            ),
            color_mode="none",
        ),
    )
    layout.add(
        16,
        8,
        timeseries(
            "Maintenance over time",
            "1 while a maintenance window covers the group, 0 otherwise: the stretches its "
            "alerts were silenced." + maintenance_note,
            COUNT,
            Query(selector("aloudata_can_maintenance", scope), "{{group}}"),
        ),
    )

    layout.row("Data changes")
    layout.add(
        8,
        8,
        timeseries(
            "Data time regressions",
            "Polls per $__rate_interval that saw CAN's latestDateTime earlier than the poll "
            "before: a rollback, or a backfill that rewrote older data. Empty or 0 normally.",
            SHORT,
            Query(rate("aloudata_can_data_time_regressions_total", scope, "increase"), "{{group}}"),
            bars=True,
        ),
        _against_thresholds(
            "Refreshes without new data",
            "Polls in a row that saw latestRefreshTime advance while latestDateTime stayed the "
            "same; back to 0 when the data time changes.",
            "aloudata_can_refreshes_without_new_data",
            "aloudata_can_refreshes_without_new_data_threshold",
            COUNT,
        ),
        timeseries(
            "Time since the data time changed",
            "Seconds since the exporter's poll that first saw the group's current latestDateTime. "
            "It starts again from the exporter's start or a change of the group's plans.",
            SECONDS,
            Query(f"time() - {selector(LAST_CHANGE, scope)}", "{{group}}"),
        ),
    )

    layout.row("Plans (per_plan: true, and per_plan: auto while the group is unhealthy)")
    plans = PLAN_SCOPE
    per_plan = (
        " Groups with per_plan: true export every plan; per_plan: auto groups only the plans "
        "that are missing, failing, not ready or over a warning threshold, while the group "
        "itself is unhealthy."
    )
    layout.add(
        12,
        8,
        timeseries(
            "Plan data lag",
            "Seconds from each plan's latest data time to now." + per_plan,
            SECONDS,
            Query(selector("aloudata_can_plan_data_lag_seconds", plans), "{{plan}}"),
        ),
        timeseries(
            "Plan refresh age",
            "Seconds since each plan's latest refresh task ended." + per_plan,
            SECONDS,
            Query(selector("aloudata_can_plan_refresh_age_seconds", plans), "{{plan}}"),
        ),
    )

    def plan_column(
        title: str, metric: str, unit: str, mapping: Mapping[int, tuple[str, str]] | None = None
    ) -> Column:
        cell = "color-text" if mapping else "auto"
        return Column(title, max_by(PLAN_KEY, selector(metric, plans)), unit, mapping, cell)

    layout.add(
        24,
        5,
        table(
            "Missing plans",
            "Plans CAN says do not exist (errorMsg 'Acceleration plan does not exist'), from "
            "aloudata_can_plan_missing: each makes every poll of the group fail with "
            "plan_not_found. Empty when none is missing, and for groups with per_plan: false, "
            "which never ask about a plan alone.",
            ["job", "instance", "target", "group", "plan"],
            [plan_column("Status", "aloudata_can_plan_missing", COUNT, MISSING_MAPPING)],
            sort_by="Status",
        ),
    )
    layout.add(
        24,
        8,
        table(
            "Plans",
            "Each plan of the group: whether its last poll gave a reading, whether CAN reports it "
            "not ready, and its own data lag and refresh age." + per_plan,
            ["job", "instance", "target", "group", "plan"],
            [
                plan_column("Last poll", "aloudata_can_plan_poll_success", COUNT, POLL_MAPPING),
                plan_column("Not ready", "aloudata_can_plan_not_ready", COUNT, NOT_READY_MAPPING),
                plan_column("Data lag", "aloudata_can_plan_data_lag_seconds", SECONDS),
                plan_column("Refresh age", "aloudata_can_plan_refresh_age_seconds", SECONDS),
            ],
            sort_by="Data lag",
        ),
    )

    layout.row("Polling")
    layout.add(
        12,
        8,
        timeseries(
            "Poll errors by reason",
            "Failed polls of the group per $__rate_interval, by reason (timeout, connection, "
            "http_status, auth, api_error, plan_not_found, invalid_response). Empty while every "
            "poll succeeds.",
            SHORT,
            Query(
                f"sum by (reason) ({rate('aloudata_can_poll_errors_total', scope, 'increase')})",
                "{{reason}}",
            ),
            bars=True,
        ),
        timeseries(
            "Poll duration",
            "Quantiles of the duration of the group's requests to CAN, from the histogram. Gaps "
            "mean no poll ended within the rate window (long poll intervals).",
            SECONDS,
            *quantiles("aloudata_can_poll_duration_seconds", scope),
        ),
    )
    return dashboard(
        GROUP_UID,
        "Group",
        "Freshness and polling of one Aloudata CAN plan group, with its plans when per_plan is on.",
        variables("target", "single_group", "plan"),
        layout,
    )


def exporter() -> Json:
    scope = EXPORTER_SCOPE
    # One histogram per polled group, present from the first poll on, successful or not.
    polls = selector("aloudata_can_poll_duration_seconds_count", scope)
    layout = Layout()
    layout.add(
        3,
        4,
        stat(
            "Up",
            "Whether Prometheus could scrape the exporter.",
            COUNT,
            Query(selector("up", scope), "{{instance}}"),
            mapping=UP_MAPPING,
        ),
        stat(
            "Version",
            "The exporter's version, from aloudata_can_exporter_build_info.",
            COUNT,
            Query(selector("aloudata_can_exporter_build_info", scope), "{{version}}"),
            text_mode="name",
            color_mode="none",
        ),
        stat(
            "Uptime",
            "Time since the exporter process started.",
            SECONDS,
            Query(f"time() - {selector('process_start_time_seconds', scope)}", "{{instance}}"),
            color_mode="none",
        ),
        stat(
            "Config reload",
            "Whether the last load of the configuration file (start, SIGHUP or /-/reload) "
            "succeeded. After a failed reload the exporter keeps running on the previous config.",
            COUNT,
            Query(
                selector("aloudata_can_exporter_config_last_reload_successful", scope),
                "{{instance}}",
            ),
            mapping=RELOAD_MAPPING,
        ),
    )
    layout.add(
        4,
        4,
        stat(
            "Last config load",
            "When the configuration was last loaded successfully.",
            TIMESTAMP,
            Query(
                as_millis(
                    selector(
                        "aloudata_can_exporter_config_last_reload_success_timestamp_seconds", scope
                    )
                ),
                "{{instance}}",
            ),
            color_mode="none",
        ),
        stat(
            "Groups",
            "Number of plan groups the exporter polls.",
            COUNT,
            Query(f"count({polls}) or vector(0)", "groups"),
            color_mode="none",
        ),
        stat(
            "Groups failing",
            "Number of groups whose last poll of CAN failed.",
            COUNT,
            Query(
                f"count({selector('aloudata_can_poll_success', scope)} == 0) or vector(0)",
                "failing",
            ),
            thresholds=_steps("green", (1, "red")),
        ),
        stat(
            "Shard",
            "Which shard of the job this instance is (0-based) when the groups are spread over "
            "several instances with --shard.index and --shard.total; 0 when unsharded.",
            COUNT,
            Query(selector("aloudata_can_exporter_shard_ordinal", scope), "{{instance}}"),
            color_mode="none",
        ),
        stat(
            "Targets with an open circuit",
            "Targets whose every group fails at the target level (timeouts, refused "
            "connections, 5xx, rejected credentials): the exporter holds its polls back to one "
            "probe at a time until CAN answers.",
            COUNT,
            Query(
                f"count({selector('aloudata_can_target_circuit_open', scope)} == 1) or vector(0)",
                "open",
            ),
            thresholds=_steps("green", (1, "red")),
        ),
    )
    layout.add(
        12,
        8,
        timeseries(
            "Polls per second by target",
            "Polls of CAN that ended per second (successful or not), by target.",
            PER_SECOND,
            Query(
                f"sum by (target) ({rate('aloudata_can_poll_duration_seconds_count', scope)})",
                "{{target}}",
            ),
        ),
        timeseries(
            "Requests to CAN per second by target",
            "HTTP requests the exporter sends to each target per second, retries and per-plan "
            "requests included. Backoff and the circuit keep this low while CAN fails.",
            PER_SECOND,
            Query(
                f"sum by (target) ({rate('aloudata_can_target_requests_total', scope)})",
                "{{target}}",
            ),
        ),
        timeseries(
            "Poll errors per second by reason",
            "Failed polls per second over all groups, by reason. Empty while every poll succeeds.",
            PER_SECOND,
            Query(
                f"sum by (reason) ({rate('aloudata_can_poll_errors_total', scope)})", "{{reason}}"
            ),
        ),
        timeseries(
            "Poll duration",
            "Quantiles of the duration of requests to CAN over all groups.",
            SECONDS,
            *quantiles("aloudata_can_poll_duration_seconds", scope),
        ),
        timeseries(
            "CPU",
            "CPU time the exporter process uses per second (100% is one core).",
            RATIO,
            Query(rate("process_cpu_seconds_total", scope), "{{instance}}"),
        ),
        timeseries(
            "Resident memory",
            "Resident set size of the exporter process.",
            BYTES,
            Query(selector("process_resident_memory_bytes", scope), "{{instance}}"),
        ),
        timeseries(
            "Open file descriptors",
            "Open file descriptors of the exporter process against its limit (dashed), on a log "
            "scale.",
            SHORT,
            Query(selector("process_open_fds", scope), "{{instance}} open"),
            Query(selector("process_max_fds", scope), "{{instance}} max"),
            overrides=[dashed("B", "red")],
            log_scale=True,
        ),
        timeseries(
            "Scrape duration",
            "How long Prometheus takes to scrape the exporter. Scrapes never wait for CAN: values "
            "come from the last poll.",
            SECONDS,
            Query(selector("scrape_duration_seconds", scope), "{{instance}}"),
        ),
        timeseries(
            "Samples scraped",
            "Samples per scrape of the exporter; grows with groups, plans and error reasons.",
            SHORT,
            Query(selector("scrape_samples_scraped", scope), "{{instance}}"),
        ),
    )
    return dashboard(
        EXPORTER_UID,
        "Exporter health",
        "Health of the aloudata-can-exporter process: scrapes, config reloads, polls of CAN.",
        variables(),
        layout,
    )


# -- Freshness SLOs ----------------------------------------------------------------------------

# The recording rules of deploy/prometheus/alerts.yml (group aloudata-can-slo), one series per
# group with an SLO, labels job, instance, target and group.
SLO_SCOPE = GROUP_SCOPE
BURN_WINDOWS = ("1h", "6h", "1d", "3d")
# The burn rate each window alerts at (multiwindow, multi-burn-rate): 2% of the 28-day budget
# in 1h, 5% in 6h, 10% in 1d, 10% in 3d.
BURN_ALERT = {"1h": 14.4, "6h": 6.0, "1d": 3.0, "3d": 1.0}
BURN_STEPS = _steps("green", (1, "yellow"), (3, "orange"), (14.4, "red"))
# Red when the budget is spent (<= 0), yellow while a quarter or less is left.
BUDGET_STEPS = _steps("red", (1e-9, "yellow"), (0.25, "green"))
SLO_LEGEND = "{{target}} / {{group}}"

_SLO_HELP = (
    " From the recording rules of deploy/prometheus/alerts.yml (group aloudata-can-slo): empty "
    "until Prometheus loads them, and only groups with an slo.objective."
)
_BURN_HELP = (
    "The burn rate is the error ratio over the window divided by the error budget "
    "(1 - objective): 1x spends exactly the 28-day budget in 28 days, 14.4x spends 2% of it in "
    "an hour."
)


def in_team(expr: str, scope: Sequence[str] = SLO_SCOPE) -> str:
    """``expr`` for the groups of the selected teams, with their team and owner labels.

    Only aloudata_can_group_info carries the groups' config labels, so the team filter is a
    join on it; a group without a team label passes when the variable is All.
    """
    info = selector("aloudata_can_group_info", (*scope, "team"))
    return f"({expr}) * on({GROUP_KEY}) group_left(team, owner) {info}"


def error_ratio(window: str) -> str:
    return selector(f"aloudata_can:freshness_error_ratio:{window}", SLO_SCOPE)


def burn_rate(window: str) -> str:
    objective = selector("aloudata_can_slo_objective_ratio", SLO_SCOPE)
    return in_team(f"{error_ratio(window)} / on({GROUP_KEY}) (1 - {objective})")


def budget_remaining() -> str:
    return in_team(selector("aloudata_can:freshness_budget_remaining:28d", SLO_SCOPE))


def slo() -> Json:
    objective = in_team(selector("aloudata_can_slo_objective_ratio", SLO_SCOPE))
    sli = in_team(f"1 - {error_ratio('28d')}")
    layout = Layout()
    layout.add(
        6,
        4,
        stat(
            "Groups with an SLO",
            "Number of groups with an slo.objective in the exporter's config (of the selected "
            "teams), from aloudata_can_slo_objective_ratio.",
            COUNT,
            Query(f"count({objective}) or vector(0)", "groups"),
            color_mode="none",
        ),
        stat(
            "Burning budget",
            "Number of groups whose burn rate over the last hour is above 1x: at that pace they "
            "spend more than their whole error budget in 28 days. " + _BURN_HELP + _SLO_HELP,
            COUNT,
            Query(f"count({burn_rate('1h')} > 1) or vector(0)", "burning"),
            thresholds=_steps("green", (1, "orange")),
        ),
        stat(
            "Budget exhausted",
            "Number of groups that have spent their whole error budget over the last 28 days "
            "(budget remaining at or below 0): they were fresh less than their objective."
            + _SLO_HELP,
            COUNT,
            Query(f"count({budget_remaining()} <= 0) or vector(0)", "exhausted"),
            thresholds=_steps("green", (1, "red")),
        ),
        stat(
            "Lowest budget remaining",
            "The smallest share of its 28-day error budget any group has left: 1 - (error ratio "
            "over 28 days) / (1 - objective). Red when spent, yellow at 25% or less." + _SLO_HELP,
            RATIO,
            Query(f"min({budget_remaining()})", "lowest"),
            thresholds=BUDGET_STEPS,
        ),
    )

    burn_columns = [
        Column(
            f"Burn {window}",
            burn_rate(window),
            BURN_RATE,
            cell="color-text",
            thresholds=BURN_STEPS,
            decimals=1,
        )
        for window in BURN_WINDOWS
    ]
    layout.add(
        24,
        11,
        table(
            "SLOs",
            "Every group with a freshness SLO, the fastest burning first (by its burn rate over "
            "the last hour). Objective: the share of time it is to be fresh. SLI: the share of "
            "the last 28 days it was fresh, of the time its freshness was known. Budget "
            "remaining: the share of its 28-day error budget left (red when spent). "
            + _BURN_HELP
            + " Team and owner come from the group's config labels. Click a group to open its "
            "dashboard." + _SLO_HELP,
            ["job", "instance", "target", "group", "team", "owner"],
            [
                Column("Objective", objective, RATIO, decimals=2),
                Column("SLI 28d", sli, RATIO, decimals=3),
                Column(
                    "Budget remaining",
                    budget_remaining(),
                    RATIO,
                    cell="color-background",
                    thresholds=BUDGET_STEPS,
                    decimals=1,
                ),
                *burn_columns,
            ],
            sort_by="Burn 1h",
            links={"group": group_link("__data.fields")},
        ),
    )
    field_link = group_link("__field.labels")
    layout.add(
        12,
        8,
        timeseries(
            "Error budget remaining",
            "The share of each group's 28-day error budget left, over time; below the dashed "
            "line at 0 the group missed its objective over the last 28 days." + _SLO_HELP,
            RATIO,
            Query(budget_remaining(), SLO_LEGEND),
            links=[field_link],
            thresholds=_steps("transparent", (0, "red")),
        ),
        timeseries(
            "SLI over 28 days",
            "The share of the last 28 days each group was fresh (1 - its error ratio over 28 "
            "days), against its objective (dashed)." + _SLO_HELP,
            RATIO,
            Query(sli, SLO_LEGEND),
            Query(objective, SLO_LEGEND + " objective"),
            overrides=[dashed("B", "red")],
            links=[field_link],
        ),
    )
    layout.add(
        12,
        8,
        *(
            timeseries(
                f"Burn rate over {window}",
                f"Each group's burn rate over the last {window}. {_BURN_HELP} Dashed: 1x and "
                f"{BURN_ALERT[window]:g}x, the rate a burn over {window} alerts at." + _SLO_HELP,
                BURN_RATE,
                Query(burn_rate(window), SLO_LEGEND),
                links=[field_link],
                thresholds=_steps(
                    "transparent", *sorted({1.0: "yellow", BURN_ALERT[window]: "red"}.items())
                ),
            )
            for window in BURN_WINDOWS
        ),
    )
    return dashboard(
        SLO_UID,
        "Freshness SLOs",
        "Freshness SLOs of the Aloudata CAN plan groups: objective, SLI and error budget over 28 "
        "days, burn rates. Needs the recording rules of deploy/prometheus/alerts.yml.",
        variables("team", "target", "group", groups_from="aloudata_can_slo_objective_ratio"),
        layout,
    )


# -- Output ------------------------------------------------------------------------------------


def build() -> dict[str, Json]:
    """Every dashboard by file name (``<uid>.json``)."""
    return {f"{board['uid']}.json": board for board in (overview(), group(), exporter(), slo())}


def render(board: Json) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def stale_files(directory: Path = OUTPUT_DIR) -> list[str]:
    """One line per file in ``directory`` that differs from, or is missing from, the output."""
    problems = []
    expected = {name: render(board) for name, board in build().items()}
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing; run python scripts/build_dashboards.py")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: stale; run python scripts/build_dashboards.py")
    for path in sorted(directory.glob("*.json")):
        if path.name not in expected:
            problems.append(f"{path}: not generated by scripts/build_dashboards.py")
    return problems


def write(directory: Path = OUTPUT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in build().items():
        path = directory / name
        path.write_text(render(board), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed dashboard is stale"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR, help="dashboards directory")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_files(args.output)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.output):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
