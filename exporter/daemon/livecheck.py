"""``--check-config --live``: ask CAN about every configured plan, one plan per request.

A plan is asked once per target and key (ID or name), however many groups list it, with the
longest timeout of those groups. A target's plans are asked concurrently through one
``CanClient``, so its max_concurrency, rate_limit, TLS settings, timeouts and retries apply.

Each target's plans are first asked one at a time until CAN answers about one. When the first
``PROBES`` of them all fail at the target level (no connection, timeouts, credentials refused,
an answer that is not the API's), the target's other plans are not asked: a wrong URL then
costs a few timeouts, not one per plan.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from exporter.can.client import CanClient
from exporter.can.models import FailureReason, PollResult
from exporter.config.model import Group, PlanKey, Target
from exporter.polling.resilience import TARGET_FAILURES
from exporter.textsafe import escape_controls

PROBES = 3

_COLUMNS = ("TARGET", "PLAN", "BY", "STATUS", "GROUPS", "DETAIL")
_KEY_NAMES = {PlanKey.IDS: "id", PlanKey.NAMES: "name"}


class PlanStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    NOT_READY = "not ready"
    FAILED = "failed"
    NOT_CHECKED = "not checked"


# Any of these makes the exit code 1: a plan that does not exist, or a check left incomplete.
_FATAL = frozenset({PlanStatus.MISSING, PlanStatus.FAILED, PlanStatus.NOT_CHECKED})
# The table's order: what fails the check first, then the warnings; config order within each.
_TABLE_ORDER = (PlanStatus.MISSING, PlanStatus.FAILED, PlanStatus.NOT_CHECKED, PlanStatus.NOT_READY)


@dataclass(frozen=True, slots=True)
class PlanCheck:
    """One plan to ask about, and the groups that list it."""

    target: str
    plan_key: PlanKey
    plan: str
    groups: tuple[str, ...]
    timeout: float


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    check: PlanCheck
    status: PlanStatus
    reason: FailureReason | None = None
    detail: str = ""

    @property
    def label(self) -> str:
        if self.status is PlanStatus.FAILED and self.reason is not None:
            return f"failed: {self.reason}"
        return self.status.value

    @property
    def reached_can(self) -> bool:
        """CAN answered about the plan, whatever it said."""
        return self.status is not PlanStatus.NOT_CHECKED and self.reason not in TARGET_FAILURES


def distinct_plans(groups: Iterable[Group]) -> list[PlanCheck]:
    """The plans to ask about, in the order the groups list them first."""
    owners: dict[tuple[str, PlanKey, str], list[Group]] = {}
    for group in groups:
        for plan in group.plans:
            owners.setdefault((group.target, group.plan_key, plan), []).append(group)
    return [
        PlanCheck(
            target=target,
            plan_key=plan_key,
            plan=plan,
            groups=tuple(group.name for group in listed_in),
            timeout=max(group.timeout for group in listed_in),
        )
        for (target, plan_key, plan), listed_in in owners.items()
    ]


def outcome_of(check: PlanCheck, result: PollResult) -> PlanOutcome:
    """What CAN's answer about one plan means for it."""
    error = result.error
    if error is not None:
        if error.reason is FailureReason.PLAN_NOT_FOUND:
            # The status already says what our message would; keep CAN's errorMsg and traceId.
            detail = error.describe().removeprefix(error.message).lstrip()
            return PlanOutcome(check, PlanStatus.MISSING, error.reason, detail)
        return PlanOutcome(check, PlanStatus.FAILED, error.reason, error.describe())
    reading = result.reading
    assert reading is not None  # a PollResult holds a reading or an error
    if not reading.has_not_ready:
        return PlanOutcome(check, PlanStatus.OK)
    # hasNotReady covers all the plan's tables; a plan with no refresh time has never run.
    if reading.latest_refresh_time is None:
        why = "never refreshed"
    else:
        why = "a table has empty partitions or was never refreshed"
    if reading.trace_id:
        why += f"; traceId={reading.trace_id}"
    return PlanOutcome(check, PlanStatus.NOT_READY, detail=why)


def not_checked(check: PlanCheck, failed_probes: int) -> PlanOutcome:
    return PlanOutcome(
        check,
        PlanStatus.NOT_CHECKED,
        detail=f"not asked: the target's first {failed_probes} plans could not be checked",
    )


def exit_code(outcomes: Iterable[PlanOutcome]) -> int:
    """1 when a plan is missing or could not be checked; not ready alone is only a warning."""
    return 1 if any(outcome.status in _FATAL for outcome in outcomes) else 0


def summary(outcomes: Sequence[PlanOutcome]) -> str:
    """``live check: 9 plans, 6 ok, 1 missing, 2 not ready``; other zero counts are left out."""
    counts = Counter(outcome.status for outcome in outcomes)
    plans = f"{len(outcomes)} plan" + ("" if len(outcomes) == 1 else "s")
    others = [f"{counts[s]} {s}" for s in PlanStatus if s is not PlanStatus.OK and counts[s]]
    return "live check: " + ", ".join([plans, f"{counts[PlanStatus.OK]} ok", *others])


def render_problems(outcomes: Iterable[PlanOutcome]) -> str:
    """A fixed-width table of the plans that are not ok, or nothing when every plan is."""
    problems = sorted(
        (outcome for outcome in outcomes if outcome.status is not PlanStatus.OK),
        key=lambda outcome: _TABLE_ORDER.index(outcome.status),
    )
    if not problems:
        return ""
    # Plans and details hold CAN's texts and config values: no control character gets through.
    rows = [list(_COLUMNS), *([escape_controls(cell) for cell in _row(o)] for o in problems)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def _row(outcome: PlanOutcome) -> list[str]:
    check = outcome.check
    return [
        check.target,
        check.plan,
        _KEY_NAMES[check.plan_key],
        outcome.label,
        ",".join(check.groups),
        outcome.detail or "-",
    ]


class PlanClient(Protocol):
    """What the live check needs of a ``CanClient``."""

    async def poll(self, plan_key: PlanKey, plans: Sequence[str], timeout: float) -> PollResult: ...

    async def aclose(self) -> None: ...


async def check_plans(
    targets: Mapping[str, Target],
    checks: Sequence[PlanCheck],
    client_factory: Callable[[Target], PlanClient] = CanClient,
) -> list[PlanOutcome]:
    """Ask CAN about each of ``checks``; the outcomes come back in the same order."""
    by_target: dict[str, list[PlanCheck]] = {}
    for check in checks:
        by_target.setdefault(check.target, []).append(check)
    clients: dict[str, PlanClient] = {}
    try:
        for name in by_target:
            clients[name] = _client(client_factory, targets[name])
        per_target = await asyncio.gather(
            *(_check_target(clients[name], plans) for name, plans in by_target.items())
        )
    finally:
        await asyncio.gather(*(client.aclose() for client in clients.values()))
    outcomes = {outcome.check: outcome for outcomes in per_target for outcome in outcomes}
    return [outcomes[check] for check in checks]


class ClientSetupError(Exception):
    """A target's client could not be built (an unusable CA file); nothing was asked of it."""


def _client(client_factory: Callable[[Target], PlanClient], target: Target) -> PlanClient:
    try:
        return client_factory(target)
    except OSError as exc:  # ssl.SSLError included
        raise ClientSetupError(f"target {target.name!r}: cannot set up TLS: {exc}") from None


async def _check_target(client: PlanClient, checks: Sequence[PlanCheck]) -> list[PlanOutcome]:
    pending = deque(checks)
    outcomes: list[PlanOutcome] = []
    while pending and len(outcomes) < PROBES:
        outcome = await _ask(client, pending.popleft())
        outcomes.append(outcome)
        if outcome.reached_can:
            outcomes += await asyncio.gather(*(_ask(client, check) for check in pending))
            return outcomes
    return outcomes + [not_checked(check, len(outcomes)) for check in pending]


async def _ask(client: PlanClient, check: PlanCheck) -> PlanOutcome:
    result = await client.poll(check.plan_key, [check.plan], check.timeout)
    return outcome_of(check, result)
