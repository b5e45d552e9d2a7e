"""A reload's apply in steps: the event loop runs between them, the end state is apply's."""

from __future__ import annotations

import asyncio

from exporter.clock import FixedClock
from exporter.config.model import Config
from exporter.polling.poller import _APPLY_STEP, Poller
from exporter.state.snapshots import SnapshotStore
from tests.helpers.builders import NOW, config_for

MANY = 3 * _APPLY_STEP + 7


def _config(groups: int, interval: str = "1m") -> Config:
    lines = "".join(
        f"  - {{name: g{n}, target: prod, plan_ids: [p{n}], interval: {interval}}}\n"
        for n in range(groups)
    )
    return config_for("http://can.test", lines or "  []")


async def _watch_while(work: asyncio.Task[None], poller: Poller) -> set[int]:
    """How many jobs the poller had each time the loop ran this watcher until ``work`` ended."""
    seen: set[int] = set()
    while not work.done():
        seen.add(len(poller.scheduled()))
        await asyncio.sleep(0)
    await work
    return seen


async def test_the_loop_runs_between_steps_of_adding_groups(poller: Poller) -> None:
    config = _config(MANY)
    seen = await _watch_while(asyncio.create_task(poller.apply_in_steps(config)), poller)
    assert any(0 < count < MANY for count in seen), seen
    assert len(poller.scheduled()) == MANY


async def test_the_loop_runs_between_steps_of_removing_groups(poller: Poller) -> None:
    poller.apply(_config(MANY))
    seen = await _watch_while(asyncio.create_task(poller.apply_in_steps(_config(0))), poller)
    assert any(0 < count < MANY for count in seen), seen
    assert poller.scheduled() == []


async def test_in_steps_ends_where_apply_does() -> None:
    stepped, at_once = SnapshotStore(), SnapshotStore()
    pollers = [Poller(stepped, FixedClock(NOW)), Poller(at_once, FixedClock(NOW))]
    try:
        first, second = _config(MANY), _config(MANY // 2, interval="2m")
        pollers[0].apply(first)
        pollers[1].apply(first)
        await pollers[0].apply_in_steps(second)
        pollers[1].apply(second)
        assert pollers[0].scheduled() == pollers[1].scheduled()
        assert stepped.snapshots() == at_once.snapshots()
        key = ("prod", "g1")
        assert pollers[0].next_run_time(key) == pollers[1].next_run_time(key)
    finally:
        for poller in pollers:
            await poller.stop(grace_seconds=1)
