"""The poller the polling tests drive: not started, on the shared store and stopped clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from exporter.clock import FixedClock
from exporter.polling.poller import Poller
from exporter.state.snapshots import SnapshotStore


@pytest.fixture
def poller_rng() -> random.Random | None:
    """The poller's jitter source; a module overrides it to pin the jitter."""
    return None


@pytest.fixture
async def poller(
    store: SnapshotStore, clock: FixedClock, poller_rng: random.Random | None
) -> AsyncIterator[Poller]:
    poller = Poller(store, clock, rng=poller_rng)
    yield poller
    await poller.stop(grace_seconds=1)
