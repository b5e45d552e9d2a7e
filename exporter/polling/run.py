"""One group's poll: what is sent to CAN and what comes back.

A group is asked about as a whole; a ``per_plan: true`` group also has each plan asked about
alone, and a ``per_plan: auto`` group has its plans asked about one by one while its own
answer shows it unhealthy (exporter.polling.drilldown decides when and which to keep). A
probe of an open circuit asks about the group only, once. The poller stores the results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from exporter.can.client import CanClient
from exporter.can.models import PollResult
from exporter.clock import Clock
from exporter.config.model import Group
from exporter.polling.drilldown import Drilldown, decide, offending, plans_to_ask
from exporter.state.snapshots import GroupKey

# The poller's logger: these lines are the poller's, whichever module writes them.
log = logging.getLogger("exporter.poller")

PlanResults = dict[str, PollResult]


class Asker:
    """Asks CAN about groups, one poll at a time; remembers which auto groups it has logged
    as limited to ``drilldown_max_plans`` (once per group, again after a reload changes it)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._truncation_logged: set[GroupKey] = set()

    async def ask(
        self, client: CanClient, group: Group, *, probe: bool, current: Callable[[], bool]
    ) -> tuple[PollResult, PlanResults | None]:
        """The group's result and the plan results to store (None: keep the last ones).

        ``current`` says whether the poll still counts (no reload replaced the client or the
        group's plans); once it does not, no more per-plan requests go out.
        """
        # A probe asks about the group only, not each of its plans as well, and once: a
        # retry would only double what a dead target is sent.
        per_plan = group.per_plan and not probe
        result, plan_results = await _poll(
            client, group, per_plan=per_plan, current=current, retry=not probe
        )
        if group.drilldown and not probe:
            plan_results = await self._drill_down(client, group, result, current)
        return result, plan_results

    def forget(self, key: GroupKey) -> None:
        """The group changed or left the config: log its truncation again if it comes up."""
        self._truncation_logged.discard(key)

    async def _drill_down(
        self, client: CanClient, group: Group, result: PollResult, current: Callable[[], bool]
    ) -> PlanResults | None:
        """An auto group's plan results to store: the offending plans after asking each plan
        while the group is unhealthy, none once it is healthy, None to keep the last ones."""
        decision = decide(group, result, self._clock.now())
        if decision is Drilldown.KEEP:
            return None
        if decision is Drilldown.CLEAR:
            return {}
        plans = plans_to_ask(group)
        if len(plans) < len(group.plans) and group.key not in self._truncation_logged:
            self._truncation_logged.add(group.key)
            log.info(
                "group has more plans than drilldown_max_plans; asking about the first ones only",
                extra={
                    "target": group.target,
                    "group": group.name,
                    "plans": len(group.plans),
                    "drilldown_max_plans": group.drilldown_max_plans,
                },
            )
        results = _one_plan_results(group, result) or await _poll_each(
            client, group, plans, current
        )
        found = offending(group, results, self._clock.now())
        log.debug(
            "drilldown",
            extra={
                "target": group.target,
                "group": group.name,
                "asked": len(plans),
                "offending": len(found),
            },
        )
        return found


async def _poll(
    client: CanClient,
    group: Group,
    *,
    per_plan: bool,
    current: Callable[[], bool],
    retry: bool = True,
) -> tuple[PollResult, PlanResults | None]:
    if not per_plan:
        return await client.poll(group.plan_key, group.plans, group.timeout, retry=retry), None
    if len(group.plans) == 1:
        result = await client.poll(group.plan_key, group.plans, group.timeout)
        return result, _one_plan_results(group, result)
    return await asyncio.gather(
        client.poll(group.plan_key, group.plans, group.timeout),
        _poll_each(client, group, group.plans, current),
    )


async def _poll_each(
    client: CanClient, group: Group, plans: tuple[str, ...], current: Callable[[], bool]
) -> PlanResults:
    """Ask about each plan alone (per_plan: true, and auto's drilldown), at most the target's
    max_concurrency at a time.

    The client's semaphore and rate limit bound what CAN receives anyway; the few workers here
    keep a group to that many pending requests, not one task per plan.
    """
    results: PlanResults = {}
    queue = iter(plans)

    async def work() -> None:
        for plan in queue:
            # A reload replaced the client (closed soon after) or the group: the poll's
            # result will be dropped, so CAN is asked nothing more for it.
            if not current():
                return
            results[plan] = await client.poll(group.plan_key, [plan], group.timeout)

    workers = min(len(plans), client.target.max_concurrency)
    await asyncio.gather(*(work() for _ in range(workers)))
    return {plan: results[plan] for plan in plans if plan in results}


def _one_plan_results(group: Group, result: PollResult) -> PlanResults | None:
    """A group of one plan asked CAN exactly what asking that plan alone would: the group's
    answer is the plan's, and CAN is not asked twice. None for a larger group."""
    return {group.plans[0]: result} if len(group.plans) == 1 else None
