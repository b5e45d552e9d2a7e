"""What a metric declaration says: its name, type, level (which family of series), help and
labels. The declarations themselves are in ``declarations``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


class Level(StrEnum):
    """Which family of series a metric belongs to: what one of its series stands for."""

    TARGET = "target"
    GROUP = "group"
    PLAN = "plan"
    EXPORTER = "exporter"


GAUGE, COUNTER, HISTOGRAM = MetricType.GAUGE, MetricType.COUNTER, MetricType.HISTOGRAM
TARGET, GROUP, PLAN, EXPORTER = Level.TARGET, Level.GROUP, Level.PLAN, Level.EXPORTER

# The labels every series of a level carries, in the order they are given.
LEVEL_LABELS: dict[Level, tuple[str, ...]] = {
    TARGET: ("target",),
    GROUP: ("target", "group"),
    PLAN: ("target", "group", "plan"),
    EXPORTER: (),
}


# eq=False: each metric is one object, hashed by identity, a cheap key for the renderers.
@dataclass(frozen=True, slots=True, eq=False)
class MetricSpec:
    # A counter's without _total: prometheus_client appends it (see exposed_name).
    name: str
    type: MetricType
    level: Level
    # HELP: what the value is, naming the original CAN field.
    help: str
    # Labels beyond the level's: a fixed enum such as severity or reason.
    extra_labels: tuple[str, ...] = ()
    # The level's labels, then the extra ones.
    labels: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", LEVEL_LABELS[self.level] + self.extra_labels)

    @property
    def exposed_name(self) -> str:
        """The name in the exposition: a counter's with ``_total``."""
        return f"{self.name}_total" if self.type is COUNTER else self.name

    @property
    def unit(self) -> str:
        """The base unit the name ends with (STYLE.md section 6): ``seconds`` for durations
        and ages, ``timestamp_seconds`` for Unix times, ``""`` for counts and 0/1 states."""
        for unit in ("timestamp_seconds", "seconds"):
            if self.name.endswith(f"_{unit}"):
                return unit
        return ""
