"""A reload that adds a maintenance window takes effect at once: no restart, no poll needed."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from pytest_httpx import HTTPXMock

from exporter.can.models import LATEST_TIME_PATH
from exporter.clock import FixedClock
from exporter.config.load import parse_config
from exporter.config.model import Config
from exporter.metrics.exposition import Exposition
from exporter.polling.poller import Poller
from exporter.state.snapshots import SnapshotStore
from tests.helpers.builders import CAN_OK_BODY, NOW

URL = "http://can.test"
CONFIG = """
targets:
  - name: prod
    url: http://can.test
    tenant_id: "10001"
    auth: {type: APIKEY, value: "s3cret-value"}
    timezone: UTC
TARGET_MAINTENANCE
groups:
  - {name: a, target: prod, plan_ids: [p1]}
  - {name: b, target: prod, plan_ids: [p2]}
"""
# From NOW + 30m to NOW + 3h (NOW is 2024-09-02 04:00 UTC).
WINDOW = """\
    maintenance:
      - {start: "2024-09-02T04:30:00Z", end: "2024-09-02T07:00:00Z", reason: CAN upgrade}
"""


def _config(window: str, clock: FixedClock) -> Config:
    return parse_config(
        CONFIG.replace("TARGET_MAINTENANCE\n", window), environ={}, now=clock.at.timestamp()
    )


def _samples(store: SnapshotStore, clock: FixedClock) -> dict[tuple[str, str], float]:
    """(metric, group or target) to value, of the maintenance and freshness series."""
    text = Exposition(store, clock).render().decode()
    return {
        (sample.name, sample.labels.get("group", sample.labels["target"])): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "maintenance" in sample.name
        or sample.name.startswith("aloudata_can_fresh")
        or sample.name.startswith("aloudata_can_observed")
    }


async def test_a_reload_adding_a_window_for_now_puts_the_groups_in_maintenance(
    poller: Poller, store: SnapshotStore, clock: FixedClock, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=URL + LATEST_TIME_PATH, json=CAN_OK_BODY, is_reusable=True)
    poller.apply(_config("", clock))
    await poller.poll_group(("prod", "a"))
    await poller.poll_group(("prod", "b"))
    before = _samples(store, clock)
    assert before[("aloudata_can_maintenance", "a")] == 0
    assert before[("aloudata_can_target_maintenance", "prod")] == 0

    clock.at = NOW + timedelta(hours=1)
    poller.apply(_config(WINDOW, clock))
    after = _samples(store, clock)
    end = (NOW + timedelta(hours=3)).timestamp()
    for group in ("a", "b"):
        assert after[("aloudata_can_maintenance", group)] == 1
        assert after[("aloudata_can_maintenance_end_timestamp_seconds", group)] == end
        assert ("aloudata_can_fresh", group) not in after
        # The hour before the reload stays counted; nothing from the reload on.
        assert after[("aloudata_can_observed_seconds_total", group)] == 3600
    assert after[("aloudata_can_target_maintenance", "prod")] == 1
    clock.at = NOW + timedelta(hours=2)
    assert _samples(store, clock)[("aloudata_can_observed_seconds_total", "a")] == 3600


async def test_a_target_window_shows_on_a_target_without_groups_here(
    poller: Poller, store: SnapshotStore, clock: FixedClock
) -> None:
    """A target whose groups are all on other shards (here: it has none) is still in its own
    window, and a reload that takes the window away takes the target out at once."""
    lonely = CONFIG.partition("groups:")[0].replace("TARGET_MAINTENANCE\n", WINDOW)
    clock.at = NOW + timedelta(hours=1)
    poller.apply(parse_config(lonely, environ={}, now=clock.at.timestamp()))
    assert _samples(store, clock) == {("aloudata_can_target_maintenance", "prod"): 1}
    poller.apply(parse_config(lonely.replace(WINDOW, ""), environ={}, now=clock.at.timestamp()))
    assert _samples(store, clock) == {("aloudata_can_target_maintenance", "prod"): 0}
