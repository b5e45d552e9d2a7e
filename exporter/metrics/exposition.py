"""The group metrics in Prometheus' text format, fast enough for tens of thousands of groups.

``generate_latest`` over the collector builds a metric family object and a sample object
for every value on every scrape: about a second for 10,000 groups, with a memory spike to
match. This formatter writes the same bytes straight from the snapshots, in one pass over the
groups, with ages computed at the scrape's time. It is fed the same values as the collector
(both are sinks of ``samples``) and takes names and headers from the declarations; a test holds
the two to the same bytes. It keeps nothing between scrapes, so it costs no memory per group.
The collector stays for the OpenMetrics format and as the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client.utils import floatToGoString

from exporter.clock import Clock
from exporter.config.model import Group
from exporter.metrics.collector import CanCollector, bucket_bound
from exporter.metrics.declarations import SCRAPED, MetricSpec
from exporter.metrics.samples import GroupLabels, write_group, write_targets
from exporter.state.snapshots import DURATION_BUCKETS, DurationHistogram, SnapshotStore

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


def _header(spec: MetricSpec) -> str:
    help_text = spec.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {spec.exposed_name} {help_text}\n# TYPE {spec.exposed_name} {spec.type}\n"


class Exposition:
    """Renders the store's groups and targets as exposition text (format 0.0.4)."""

    def __init__(self, store: SnapshotStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.collector = CanCollector(store, clock)

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
        text = _Text()
        snapshots = self._store.snapshots()
        write_targets(text, self._store.targets(), now)
        for count, snapshot in enumerate(snapshots, start=1):
            write_group(text, snapshot, now)
            if count % _FLUSH_EVERY == 0:
                text.flush()
        text.flush()
        return text.chunks()


class _Text:
    """One scrape's text, a list of lines per metric: the exposition's ``Sink``.

    Label names sort as group < le < plan < reason < severity < target, as prometheus_client
    writes them: every group-level line shares a head (group) and a tail (target), with the
    other labels in between.
    """

    __slots__ = ("_encoded", "_group", "_head", "_labels", "_out", "_plan", "_tail")

    def __init__(self) -> None:
        # Each metric's lines so far and its name: one lookup per sample.
        self._out = {spec: ([_header(spec)], spec.exposed_name) for spec in SCRAPED}
        self._encoded: list[list[bytes]] = [[] for _ in SCRAPED]
        self._group: Group | None = None
        self._head = self._tail = self._labels = self._plan = ""

    def flush(self) -> None:
        """Move each metric's lines so far to its encoded chunks."""
        for (lines, _), chunks in zip(self._out.values(), self._encoded, strict=True):
            if lines:
                chunks.append("".join(lines).encode())
                lines.clear()

    def chunks(self) -> list[bytes]:
        return [chunk for chunks in self._encoded for chunk in chunks]

    def target(self, spec: MetricSpec, target: str, value: float) -> None:
        labels = f'{{target="{_escape(target)}"}} '
        lines, name = self._out[spec]
        lines.append(f"{name}{labels}{_go_float(value)}\n")

    def begin_group(self, group: Group) -> None:
        self._group = group
        self._head = head = f'{{group="{_escape(group.name)}"'
        self._tail = tail = f'target="{_escape(group.target)}"}} '
        self._labels = f"{head},{tail}"

    def info(self, spec: MetricSpec, labels: GroupLabels, value: float) -> None:
        text = self._labels
        if labels and self._group is not None:
            # The group's own labels sort in among target and group.
            group = self._group
            pairs = sorted((("group", group.name), ("target", group.target), *labels))
            text = "{" + ",".join(f'{name}="{_escape(text)}"' for name, text in pairs) + "} "
        lines, name = self._out[spec]
        lines.append(f"{name}{text}{_go_float(value)}\n")

    def group(self, spec: MetricSpec, value: float) -> None:
        lines, name = self._out[spec]
        lines.append(f"{name}{self._labels}{_go_float(value)}\n")

    def labelled(self, spec: MetricSpec, label: str, value: float) -> None:
        # The extra label (reason, severity) sorts between group and target.
        labels = f'{self._head},{spec.extra_labels[0]}="{label}",{self._tail}'
        lines, name = self._out[spec]
        lines.append(f"{name}{labels}{_go_float(value)}\n")

    def histogram(self, spec: MetricSpec, durations: DurationHistogram) -> None:
        (out, name), head, tail = self._out[spec], self._head, self._tail
        total = 0
        for le, (_, total) in zip(_BUCKET_LABELS, durations.cumulative(), strict=True):
            out.append(f"{name}_bucket{head}{le}{tail}{_count(total)}\n")
        out.append(f"{name}_count{self._labels}{_count(total)}\n")
        out.append(f"{name}_sum{self._labels}{_go_float(durations.total)}\n")

    def begin_plan(self, plan: str) -> None:
        self._plan = f'{self._head},plan="{_escape(plan)}",{self._tail}'

    def plan(self, spec: MetricSpec, value: float) -> None:
        lines, name = self._out[spec]
        lines.append(f"{name}{self._plan}{_go_float(value)}\n")


def _escape(value: str) -> str:
    """Label value escaping, as prometheus_client does it."""
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
