"""Fixtures of the config tests: the full example configuration, parsed."""

from __future__ import annotations

import pytest

from exporter.config.load import parse_config
from exporter.config.model import Config
from tests.helpers.configs import FULL, FULL_ENV


@pytest.fixture
def full_config() -> Config:
    return parse_config(FULL, environ=FULL_ENV)
