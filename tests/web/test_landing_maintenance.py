"""The landing page's attention cell during a maintenance window."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from exporter.can.models import PollResult
from exporter.config.maintenance import MaintenanceWindow
from exporter.state.snapshots import GroupSnapshot, next_snapshot
from exporter.web.landing import render_landing_page
from tests.helpers.builders import NOW, make_group, make_reading


def test_a_group_in_maintenance_says_until_when_and_why_escaped() -> None:
    window = MaintenanceWindow(NOW.timestamp(), NOW.timestamp() + 3600, "<b>CAN</b> & co")
    group = replace(make_group(), maintenance=(window,))
    snapshot = next_snapshot(
        GroupSnapshot(group), PollResult(make_reading(NOW - timedelta(hours=1)), None, 0.1), NOW
    )
    page = render_landing_page([snapshot], NOW, "/metrics")
    assert (
        '<td class="maint">maintenance until 2024-09-02 05:00:00 UTC, '
        "&lt;b&gt;CAN&lt;/b&gt; &amp; co</td></tr>"
    ) in page
    assert "<b>CAN" not in page
