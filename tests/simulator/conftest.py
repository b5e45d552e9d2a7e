"""Fixtures shared by the simulator tests."""

from collections.abc import Callable
from typing import Any

import pytest

from exporter.simulator import Scenario

ScenarioFactory = Callable[..., Scenario]


@pytest.fixture
def auth_headers() -> dict[str, str]:
    return {"tenant-id": "10001", "auth-type": "APIKEY", "auth-value": "demo-apikey"}


@pytest.fixture
def make_scenario() -> ScenarioFactory:
    """Build a scenario from plan mappings, with the demo tenant and credentials."""

    def make(*plans: dict[str, Any], timezone: str = "Asia/Shanghai") -> Scenario:
        return Scenario.model_validate(
            {
                "tenant_id": "10001",
                "auth": {"type": "APIKEY", "value": "demo-apikey"},
                "timezone": timezone,
                "plans": list(plans),
            }
        )

    return make
