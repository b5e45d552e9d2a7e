"""`aloudata-can-exporter --demo`: one command, nothing else running, real metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.processes import Exporter

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    process = Exporter(["--demo"], tmp_path_factory.mktemp("demo"))
    yield process
    process.stop()


def _over(demo: Exporter, group: str, metric: str, threshold: str, severity: str) -> bool:
    labels = {"target": "demo", "group": group}
    value = demo.value(metric, **labels)
    limit = demo.value(threshold, **labels, severity=severity)
    assert value is not None, f"{metric} for {group} is missing"
    assert limit is not None
    return value > limit


def test_demo_shows_fresh_lagging_never_refreshed_and_missing_groups(demo: Exporter) -> None:
    lag, lag_limit = "aloudata_can_data_lag_seconds", "aloudata_can_data_lag_threshold_seconds"
    age, age_limit = (
        "aloudata_can_refresh_age_seconds",
        "aloudata_can_refresh_age_threshold_seconds",
    )
    for fresh in ("sales_dashboard", "orders_realtime"):
        assert not _over(demo, fresh, lag, lag_limit, "warning"), fresh
        assert not _over(demo, fresh, age, age_limit, "warning"), fresh
    assert _over(demo, "finance_report", lag, lag_limit, "critical")
    assert _over(demo, "finance_report", age, age_limit, "critical")

    assert demo.value("aloudata_can_not_ready", target="demo", group="inventory_new") == 1
    assert demo.value(lag, target="demo", group="inventory_new") is None
    assert demo.value("aloudata_can_not_ready", target="demo", group="marketing_campaigns") == 1

    assert demo.value("aloudata_can_poll_success", target="demo", group="retired_dashboard") == 0
    assert (
        demo.value(
            "aloudata_can_poll_errors_total",
            target="demo",
            group="retired_dashboard",
            reason="plan_not_found",
        )
        == 1
    )


def test_demo_per_plan_group_names_the_stale_plan(demo: Exporter) -> None:
    labels = {"target": "demo", "group": "executive_overview"}
    fresh = demo.value("aloudata_can_plan_data_lag_seconds", **labels, plan="kpi_daily")
    stale = demo.value("aloudata_can_plan_data_lag_seconds", **labels, plan="revenue_daily_lagging")
    group_lag = demo.value("aloudata_can_data_lag_seconds", **labels)
    assert fresh is not None
    assert stale is not None
    assert fresh < stale
    assert group_lag == pytest.approx(stale, abs=5)


def test_demo_auto_group_names_only_its_missing_plan(demo: Exporter) -> None:
    samples = demo.scrape()
    labels = {"target": "demo", "group": "customer_support"}
    plan_series = {
        (name, dict(series)["plan"]): value
        for (name, series), value in samples.items()
        if dict(series).get("group") == "customer_support" and "plan" in dict(series)
    }
    # The fresh plan is healthy, so only the missing one has plan-level series.
    assert plan_series == {
        ("aloudata_can_plan_missing", "1d2c3b4a59687706f5e4d3c2b1a09f8e"): 1.0,
        ("aloudata_can_plan_poll_success", "1d2c3b4a59687706f5e4d3c2b1a09f8e"): 0.0,
    }
    assert samples[("aloudata_can_poll_success", frozenset(labels.items()))] == 0
    # A group that never asks about a plan alone says nothing about which one is gone.
    assert not any(
        name == "aloudata_can_plan_missing" and dict(series)["group"] == "retired_dashboard"
        for name, series in samples
    )


def test_demo_group_info_carries_the_configured_owners(demo: Exporter) -> None:
    owned = {"target": "demo", "group": "finance_report"}
    assert (
        demo.value("aloudata_can_group_info", **owned, team="finance", owner="Finance data team")
        == 1
    )
    # A group without labels has its info series all the same, with target and group only.
    assert demo.value("aloudata_can_group_info", target="demo", group="sales_dashboard") == 1


def test_demo_landing_page_lists_the_groups(demo: Exporter) -> None:
    page = httpx.get(demo.url + "/", timeout=5).text
    assert "retired_dashboard" in page
    assert "failed: plan_not_found" in page
    assert 'href="/metrics"' in page


def test_demo_shows_an_on_time_and_a_late_schedule(demo: Exporter) -> None:
    on_time = {"target": "demo", "group": "sales_dashboard"}
    late = {"target": "demo", "group": "finance_report"}
    now = time.time()
    for labels in (on_time, late):
        deadline = demo.value("aloudata_can_refresh_deadline_timestamp_seconds", **labels)
        assert deadline is not None
        assert deadline <= now
    # Hourly runs from :00 that end by :12, due at :15: always on time, with today's data.
    assert demo.value("aloudata_can_refresh_overdue_seconds", **on_time) == 0
    assert demo.value("aloudata_can_data_lag_periods", **on_time) == 0
    # Stopped three days ago: its last deadline (03:00 in Shanghai) passed with no refresh
    # after its fire, and its data is four days old where T-1 expects yesterday's.
    overdue = demo.value("aloudata_can_refresh_overdue_seconds", **late)
    assert overdue is not None
    assert 0 < overdue <= 24 * 3600
    assert demo.value("aloudata_can_data_lag_periods", **late) == 3
    # Groups without a schedule have none of these series.
    orders = {"target": "demo", "group": "orders_realtime"}
    assert demo.value("aloudata_can_refresh_deadline_timestamp_seconds", **orders) is None
    assert demo.value("aloudata_can_data_lag_periods", **orders) is None


def test_demo_has_one_group_inside_its_freshness_budget_and_one_burning_it(demo: Exporter) -> None:
    samples = demo.scrape()

    def value(name: str, group: str) -> float | None:
        return samples.get((name, frozenset({"target": "demo", "group": group}.items())))

    assert value("aloudata_can_slo_objective_ratio", "sales_dashboard") == 0.995
    assert value("aloudata_can_slo_objective_ratio", "finance_report") == 0.99
    assert value("aloudata_can_fresh", "sales_dashboard") == 1
    assert value("aloudata_can_fresh", "finance_report") == 0
    observed = value("aloudata_can_observed_seconds_total", "sales_dashboard")
    assert observed is not None
    assert observed > 0
    assert value("aloudata_can_fresh_seconds_total", "sales_dashboard") == observed
    assert value("aloudata_can_fresh_seconds_total", "finance_report") == 0
    # Groups without an slo still have the SLI, but no objective.
    assert value("aloudata_can_fresh", "orders_realtime") == 1
    assert value("aloudata_can_slo_objective_ratio", "orders_realtime") is None


def test_demo_has_one_group_in_maintenance(demo: Exporter) -> None:
    def value(metric: str, group: str) -> float | None:
        return demo.value(metric, target="demo", group=group)

    assert value("aloudata_can_maintenance", "marketing_campaigns") == 1
    assert value("aloudata_can_maintenance", "sales_dashboard") == 0
    # Two hours from the start, give or take the time the demo has been running.
    end = value("aloudata_can_maintenance_end_timestamp_seconds", "marketing_campaigns")
    assert end is not None
    assert 0 < end - time.time() <= 2 * 3600
    assert value("aloudata_can_maintenance_end_timestamp_seconds", "sales_dashboard") is None
    # Neither fresh nor stale meanwhile, and its time is not counted.
    assert value("aloudata_can_fresh", "marketing_campaigns") is None
    assert value("aloudata_can_observed_seconds_total", "marketing_campaigns") == 0
    # The group's own window, not its target's.
    assert demo.value("aloudata_can_target_maintenance", target="demo") == 0
    page = httpx.get(demo.url + "/", timeout=5).text
    (row,) = [row for row in page.split("<tr>") if "<td>marketing_campaigns</td>" in row]
    assert '<td class="maint">maintenance until ' in row
    assert " UTC, CAN upgrade (demo); " in row


def test_demo_calendar_group_over_its_simulated_weekend(demo: Exporter) -> None:
    """Two-day-old data: over the wall-clock thresholds, under them in business time, as
    yesterday and today are holidays of its calendar."""
    group = "weekday_report"
    lag, lag_limit = "aloudata_can_data_lag_seconds", "aloudata_can_data_lag_threshold_seconds"
    age, age_limit = (
        "aloudata_can_refresh_age_seconds",
        "aloudata_can_refresh_age_threshold_seconds",
    )
    assert _over(demo, group, lag, lag_limit, "warning")
    assert _over(demo, group, age, age_limit, "warning")
    business_lag = "aloudata_can_data_lag_business_seconds"
    business_age = "aloudata_can_refresh_age_business_seconds"
    assert not _over(demo, group, business_lag, lag_limit, "warning")
    assert not _over(demo, group, business_age, age_limit, "warning")
    assert demo.value("aloudata_can_business_day", target="demo", group=group) == 0
    # Groups without a calendar have none of the business series.
    assert demo.value(business_lag, target="demo", group="finance_report") is None
    assert demo.value("aloudata_can_business_day", target="demo", group="finance_report") is None
