"""The landing page at ``/``: the version, links, open circuits and a row per group.

Rendered from the stored snapshots and targets (never by asking CAN), with each group's last
poll, data lag, refresh age, not-ready flag, next poll and what needs attention, worded by
exporter.metrics.report. Every value from config or CAN is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from exporter import __version__
from exporter.metrics.report import (
    Severity,
    describe_attention,
    describe_maintenance,
    describe_status,
    findings,
    format_age,
    format_until,
)
from exporter.state.snapshots import GroupSnapshot, TargetSnapshot


def render_landing_page(
    snapshots: list[GroupSnapshot],
    now: datetime,
    telemetry_path: str,
    targets: Sequence[TargetSnapshot] = (),
) -> str:
    rows = "\n".join(_landing_row(snapshot, now) for snapshot in snapshots)
    path = html.escape(telemetry_path)
    circuits = "".join(
        f'<p class="fail">Target {html.escape(target.name)}: every group is failing; polls are '
        "held back to one probe at a time until CAN answers.</p>\n"
        for target in targets
        if target.circuit_open
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Aloudata CAN exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}
.ok{{color:#2a7}}.warn{{color:#b70}}.fail{{color:#c33}}.maint{{color:#36c}}</style></head>
<body><h1>Aloudata CAN exporter</h1>
<p>Version {html.escape(__version__)}.
<a href="{path}">Metrics</a> · <a href="/healthz">Health</a> · <a href="/readyz">Readiness</a></p>
{circuits}<table><thead><tr><th>Target</th><th>Group</th><th>Plans</th><th>Last poll</th>
<th>Data lag</th><th>Refresh age</th><th>Not ready</th><th>Next poll</th><th>Attention</th>
</tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


def _landing_row(snapshot: GroupSnapshot, now: datetime) -> str:
    group = snapshot.group
    status = describe_status(snapshot)
    css = "ok" if snapshot.poll_success else "fail"
    reading = snapshot.reading
    cells = [
        group.target,
        group.name,
        str(len(group.plans)),
        status,
        format_age(reading.latest_data_time if reading else None, now),
        format_age(reading.latest_refresh_time if reading else None, now),
        ("yes" if reading.has_not_ready else "no") if reading else "-",
        format_until(snapshot.next_poll_time, now),
    ]
    tds = "".join(
        f'<td class="{css}">{html.escape(cell)}</td>'
        if index == 3
        else f"<td>{html.escape(cell)}</td>"
        for index, cell in enumerate(cells)
    )
    found = findings(snapshot, now)
    level = "" if not found else "fail" if found[0].severity is Severity.CRITICAL else "warn"
    # In a maintenance window its alerts are silenced: the cell says so, in its own colour.
    level = "maint" if describe_maintenance(snapshot, now) is not None else level
    attention = html.escape(describe_attention(snapshot, now))
    tds += f'<td class="{level}">{attention}</td>' if level else f"<td>{attention}</td>"
    return f"<tr>{tds}</tr>"
