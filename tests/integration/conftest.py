"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Simulator

SCENARIO = Path(__file__).parent.parent / "fixtures" / "scenarios" / "integration.yml"


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """The CAN simulator on the integration scenario, one per test module."""
    process = Simulator(SCENARIO, tmp_path_factory.mktemp("simulator"))
    yield process
    process.stop()
