"""The group metrics in Prometheus' text format, fast enough for tens of thousands of groups.

``generate_latest`` over the collector builds a metric family object and a sample object
for every value on every scrape: about a second for 10,000 groups, with a memory spike to
match. This formatter writes the same bytes straight from the snapshots (a test holds the
two to it), in one pass over the groups, with ages computed at the scrape's time. It keeps
nothing between scrapes, so it costs no memory per group. The collector stays for the
OpenMetrics format and as the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from exporter.can.models import Reading
from exporter.clock import Clock
from exporter.config.model import Group, ThresholdValues
from exporter.metrics import declarations as m
from exporter.metrics.collector import CanCollector, Families, bucket_bound, schedule_values
from exporter.state import (
    DURATION_BUCKETS,
    REASONS,
    GroupSnapshot,
    SnapshotStore,
    TargetSnapshot,
)

_float_to_go_string: Callable[[float], str] = floatToGoString
# Counts are small integers most of the time: their text is looked up, not formatted.
_COUNT_TEXT = tuple(_float_to_go_string(count) for count in range(1024))
# Groups rendered between two encodings of the lines so far (about 20 KiB of text per family,
# 250 KiB for the duration histogram).
_FLUSH_EVERY = 256
_BUCKET_LABELS = tuple(f',le="{bucket_bound(bound)}",' for bound in (*DURATION_BUCKETS, math.inf))


def _go_float(value: float) -> str:
    """prometheus_client's float text (Go's), with a fast path for the common plain floats."""
    text = repr(value)
    if "e" in text or "n" in text or (value > 0 and text.find(".") > 6):
        return _float_to_go_string(value)  # exponents, inf and nan: Go's rules
    return text


def _count(value: int) -> str:
    return _COUNT_TEXT[value] if 0 <= value < len(_COUNT_TEXT) else _float_to_go_string(value)


def _family_index() -> dict[str, int]:
    return {family.name: index for index, family in enumerate(Families().all())}


_INDEX = _family_index()
_GROUP_INFO = _INDEX[m.GROUP_INFO.name]
_DATA_LAG = _INDEX[m.DATA_LAG.name]
_REFRESH_AGE = _INDEX[m.REFRESH_AGE.name]
_NOT_READY = _INDEX[m.NOT_READY.name]
_LATEST_DATA = _INDEX[m.LATEST_DATA_TIMESTAMP.name]
_LATEST_REFRESH = _INDEX[m.LATEST_REFRESH_TIMESTAMP.name]
_POLL_SUCCESS = _INDEX[m.POLL_SUCCESS.name]
_LAST_SUCCESS = _INDEX[m.LAST_SUCCESS_TIMESTAMP.name]
_NEXT_POLL = _INDEX[m.NEXT_POLL_TIMESTAMP.name]
_CONSECUTIVE = _INDEX[m.CONSECUTIVE_FAILURES.name]
_DATA_LAG_THRESHOLD = _INDEX[m.DATA_LAG_THRESHOLD.name]
_REFRESH_AGE_THRESHOLD = _INDEX[m.REFRESH_AGE_THRESHOLD.name]
_SCHEDULE = {
    spec.name: _INDEX[spec.name]
    for spec in (m.REFRESH_DEADLINE_TIMESTAMP, m.REFRESH_OVERDUE, m.DATA_LAG_PERIODS)
}
_REFRESHES_WITHOUT_NEW_DATA = _INDEX[m.REFRESHES_WITHOUT_NEW_DATA.name]
_REFRESHES_WITHOUT_NEW_DATA_THRESHOLD = _INDEX[m.REFRESHES_WITHOUT_NEW_DATA_THRESHOLD.name]
_DATA_TIME_LAST_CHANGE = _INDEX[m.DATA_TIME_LAST_CHANGE.name]
_PLAN_DATA_LAG = _INDEX[m.PLAN_DATA_LAG.name]
_PLAN_REFRESH_AGE = _INDEX[m.PLAN_REFRESH_AGE.name]
_PLAN_NOT_READY = _INDEX[m.PLAN_NOT_READY.name]
_PLAN_POLL_SUCCESS = _INDEX[m.PLAN_POLL_SUCCESS.name]
_PLAN_MISSING = _INDEX[m.PLAN_MISSING.name]
_CIRCUIT_OPEN = _INDEX[m.TARGET_CIRCUIT_OPEN.name]
_DURATIONS = _INDEX[m.POLL_DURATION.name]
_ERRORS = _INDEX[m.POLL_ERRORS.name]
_REGRESSIONS = _INDEX[m.DATA_TIME_REGRESSIONS.name]
_REQUESTS = _INDEX[m.TARGET_REQUESTS.name]


class Exposition:
    """Renders the store's groups and targets as exposition text (format 0.0.4)."""

    def __init__(self, store: SnapshotStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.collector = CanCollector(store, clock)
        families = Families().all()
        self._headers = [_header(family) for family in families]
        self._names = [_exposed_name(family) for family in families]

    def render(self) -> bytes:
        """The same bytes as ``generate_latest`` of the collector, at the clock's time."""
        return b"".join(self.render_chunks())

    def render_chunks(self) -> list[bytes]:
        """``render()`` in pieces of up to a few hundred kilobytes, to be compressed or
        written one by one.

        Lines are encoded every ``_FLUSH_EVERY`` groups: a line held as a ``str`` costs
        several times its text, so holding all of them until the end (10,000 groups make
        300,000 lines) would cost about 40 MiB on top of the text itself, every scrape.
        """
        now = self._clock.now().timestamp()
        lines: list[list[str]] = [[header] for header in self._headers]
        encoded: list[list[bytes]] = [[] for _ in self._headers]
        for target in self._store.targets():
            _add_target(lines, self._names, target)
        for count, snapshot in enumerate(self._store.snapshots(), start=1):
            _add_group(lines, self._names, snapshot, now)
            if count % _FLUSH_EVERY == 0:
                _flush(lines, encoded)
        _flush(lines, encoded)
        return [chunk for family in encoded for chunk in family]


def _flush(lines: list[list[str]], encoded: list[list[bytes]]) -> None:
    """Move each family's lines so far to its encoded chunks."""
    for family, chunks in zip(lines, encoded, strict=True):
        if family:
            chunks.append("".join(family).encode())
            family.clear()


def _add_target(lines: list[list[str]], names: list[str], target: TargetSnapshot) -> None:
    labels = f'{{target="{_escape(target.name)}"}} '
    lines[_CIRCUIT_OPEN].append(
        f"{names[_CIRCUIT_OPEN]}{labels}{'1.0' if target.circuit_open else '0.0'}\n"
    )
    lines[_REQUESTS].append(f"{names[_REQUESTS]}{labels}{_count(target.requests_sent)}\n")


def _add_group(
    lines: list[list[str]], names: list[str], snapshot: GroupSnapshot, now: float
) -> None:
    group = snapshot.group
    # Label names sort as group < le < plan < reason < severity < target, as prometheus_client
    # writes them; every group-level line shares these two halves.
    head = f'{{group="{_escape(group.name)}"'
    tail = f'target="{_escape(group.target)}"}} '
    labels = f"{head},{tail}"

    def add(index: int, value: float, labelled: str = labels) -> None:
        lines[index].append(f"{names[index]}{labelled}{_go_float(value)}\n")

    add(_GROUP_INFO, 1.0, _info_labels(group) if group.labels else labels)
    _add_thresholds(add, _DATA_LAG_THRESHOLD, group.data_lag, head, tail)
    _add_thresholds(add, _REFRESH_AGE_THRESHOLD, group.refresh_age, head, tail)
    _add_thresholds(
        add, _REFRESHES_WITHOUT_NEW_DATA_THRESHOLD, group.refreshes_without_new_data, head, tail
    )
    if snapshot.reading is not None:
        _add_reading(add, snapshot.reading, now)
    if group.schedule is not None or group.data_periods is not None:
        for spec, value in schedule_values(group, snapshot.reading, now):
            add(_SCHEDULE[spec.name], value)
    if snapshot.poll_success is not None:
        add(_POLL_SUCCESS, 1.0 if snapshot.poll_success else 0.0)
    if snapshot.last_success_time is not None:
        add(_LAST_SUCCESS, snapshot.last_success_time.timestamp())
    if snapshot.next_poll_time is not None:
        add(_NEXT_POLL, snapshot.next_poll_time.timestamp())
    if snapshot.polled:
        add(_CONSECUTIVE, float(snapshot.consecutive_failures))
    _add_changes(add, snapshot)
    _add_durations(lines[_DURATIONS], names[_DURATIONS], snapshot, head, tail)
    for reason, count in zip(REASONS, snapshot.errors, strict=True):
        if count:
            add(_ERRORS, float(count), f'{head},reason="{reason.value}",{tail}')
    _add_plans(add, snapshot, head, tail, now)


def _info_labels(group: Group) -> str:
    """group_info's labels: the group's own sort in among target and group."""
    pairs = sorted((("group", group.name), ("target", group.target), *group.labels))
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "} "


def _add_reading(add: Callable[[int, float], None], reading: Reading, now: float) -> None:
    add(_NOT_READY, 1.0 if reading.has_not_ready else 0.0)
    if reading.latest_data_time is not None:
        data_time = reading.latest_data_time.timestamp()
        add(_LATEST_DATA, data_time)
        add(_DATA_LAG, now - data_time)
    if reading.latest_refresh_time is not None:
        refresh_time = reading.latest_refresh_time.timestamp()
        add(_LATEST_REFRESH, refresh_time)
        add(_REFRESH_AGE, now - refresh_time)


def _add_changes(add: Callable[[int, float], None], snapshot: GroupSnapshot) -> None:
    changes = snapshot.changes
    if snapshot.polled:
        add(_REFRESHES_WITHOUT_NEW_DATA, float(changes.refreshes_without_new_data))
        add(_REGRESSIONS, float(changes.regressions))
    if changes.last_change_time is not None:
        add(_DATA_TIME_LAST_CHANGE, changes.last_change_time.timestamp())


def _add_plans(
    add: Callable[[int, float, str], None],
    snapshot: GroupSnapshot,
    head: str,
    tail: str,
    now: float,
) -> None:
    for plan in snapshot.plans:
        plan_labels = f'{head},plan="{_escape(plan.plan)}",{tail}'
        if plan.poll_success is not None:
            add(_PLAN_POLL_SUCCESS, 1.0 if plan.poll_success else 0.0, plan_labels)
        if plan.missing:
            add(_PLAN_MISSING, 1.0, plan_labels)
        plan_reading = plan.reading
        if plan_reading is not None:
            add(_PLAN_NOT_READY, 1.0 if plan_reading.has_not_ready else 0.0, plan_labels)
            if plan_reading.latest_data_time is not None:
                lag = now - plan_reading.latest_data_time.timestamp()
                add(_PLAN_DATA_LAG, lag, plan_labels)
            if plan_reading.latest_refresh_time is not None:
                age = now - plan_reading.latest_refresh_time.timestamp()
                add(_PLAN_REFRESH_AGE, age, plan_labels)


def _add_thresholds(
    add: Callable[[int, float, str], None],
    index: int,
    values: ThresholdValues,
    head: str,
    tail: str,
) -> None:
    if values.warning is not None:
        add(index, values.warning, f'{head},severity="warning",{tail}')
    if values.critical is not None:
        add(index, values.critical, f'{head},severity="critical",{tail}')


def _add_durations(
    out: list[str], name: str, snapshot: GroupSnapshot, head: str, tail: str
) -> None:
    durations = snapshot.durations
    labels = f"{head},{tail}"
    total = 0
    for le, (_, total) in zip(_BUCKET_LABELS, durations.cumulative(), strict=True):
        out.append(f"{name}_bucket{head}{le}{tail}{_count(total)}\n")
    out.append(f"{name}_count{labels}{_count(total)}\n")
    out.append(f"{name}_sum{labels}{_go_float(durations.total)}\n")


def _exposed_name(family: Metric) -> str:
    # As generate_latest munges OpenMetrics names: counters are exposed with _total.
    return f"{family.name}_total" if family.type == "counter" else family.name


def _header(family: Metric) -> str:
    name = _exposed_name(family)
    documentation = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {documentation}\n# TYPE {name} {family.type}\n"


def _escape(value: str) -> str:
    """Label value escaping, as prometheus_client does it."""
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
