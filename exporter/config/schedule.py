"""Expected schedules: when a group's refresh is due, and how many data periods it is behind.

A group's ``schedule.refresh_cron`` fires in the schedule's zone (cronsim computes the fires, with
crontab's meaning, on its wall clock); a refresh is due ``grace`` after each fire.
``Schedule.deadline(now)`` gives the last deadline that has passed and the fire it belongs to.
``DataPeriods`` counts the whole days or hours between a group's data time and the data time
expected at ``now``. Both are pure: they take the time they work at and do no I/O.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

from cronsim import CronSim, CronSimError

# Where the check that an expression fires at all starts from (cronsim looks 50 years on).
_CHECK_FROM = datetime(2000, 1, 1)  # noqa: DTZ001 - a wall-clock time
_SECOND = timedelta(seconds=1)
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = {
    3: ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    4: ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
}
# A term of a field: *, a value or a range of values (numbers or names), and a step.
_TERM = re.compile(r"(?:\*|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?")


class Granularity(StrEnum):
    """The period a group's data comes in: ``data_granularity`` in the configuration."""

    DAY = "day"
    HOUR = "hour"


@dataclass(frozen=True, slots=True)
class Deadline:
    """The last refresh deadline that has passed, as Unix times."""

    fire: float  # the cron fire the deadline belongs to
    deadline: float  # fire + grace

    def overdue(self, refresh_time: float | None, now: float) -> float:
        """Seconds past the deadline when no refresh ended after the fire (None: never), else 0."""
        if refresh_time is not None and refresh_time > self.fire:
            return 0.0
        return now - self.deadline


@dataclass(frozen=True, slots=True)
class _Window:
    """``deadline`` is the answer for every ``now`` in [start, until)."""

    deadline: Deadline | None
    start: float
    until: float
    next_fire: int | None  # the fire whose deadline is ``until``


class _Cache:
    """The last window a schedule computed; replaced in one assignment, so scrapes on several
    threads at worst compute the same window twice."""

    __slots__ = ("window",)

    def __init__(self) -> None:
        self.window: _Window | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A group's resolved ``schedule``; build it with ``make_schedule``."""

    refresh_cron: str
    zone: tzinfo
    grace: float
    trigger: str = field(compare=False, repr=False)  # the expression as cronsim reads it
    _cache: _Cache = field(default_factory=_Cache, compare=False, repr=False)

    def deadline(self, now: float) -> Deadline | None:
        """The last deadline at or before ``now``; None when the cron never fired before it.

        Computed once per deadline: until the next deadline passes, the cached one is returned.
        """
        window = self._cache.window
        if window is not None and window.start <= now < window.until:
            return window.deadline
        if window is not None and window.next_fire is not None and window.until <= now:
            # Usually only the next deadline has passed since the last scrape: one step on.
            following = next_fire(self.trigger, self.zone, window.next_fire)
            window = self._window(window.next_fire, following)
            if now < window.until:
                self._cache.window = window
                return window.deadline
        window = self._compute(now)
        self._cache.window = window
        return window.deadline

    def overdue_from(self, refresh_time: float | None) -> float:
        """The Unix time after which a group last refreshed at ``refresh_time`` is overdue:
        the deadline of the first fire at or after the refresh (a refresh must end after a
        fire to count for it). ``-inf`` without a refresh; ``inf`` when the cron fires no more.
        """
        if refresh_time is None:
            return -math.inf
        fire = first_fire(self.trigger, self.zone, math.ceil(refresh_time))
        return math.inf if fire is None else fire + self.grace

    def _compute(self, now: float) -> _Window:
        latest = math.floor(now - self.grace)
        fire = last_fire(self.trigger, self.zone, latest)
        if fire is None:
            upcoming = first_fire(self.trigger, self.zone, latest + 1)
            return _Window(None, -math.inf, self._deadline_of(upcoming), upcoming)
        return self._window(fire, next_fire(self.trigger, self.zone, fire))

    def _window(self, fire: int, following: int | None) -> _Window:
        deadline = fire + self.grace
        return _Window(Deadline(fire, deadline), deadline, self._deadline_of(following), following)

    def _deadline_of(self, fire: int | None) -> float:
        return math.inf if fire is None else fire + self.grace


@functools.lru_cache(maxsize=4096)
def make_schedule(refresh_cron: str, zone: tzinfo, grace: float) -> Schedule:
    """A schedule, shared by every group (and every reload) with the same three settings, so
    its deadline is computed once for all of them. Raises ValueError for a bad expression."""
    return Schedule(refresh_cron, zone, grace, cron_trigger(refresh_cron, zone))


def cron_trigger(expression: str, zone: tzinfo) -> str:
    """The expression as cronsim reads it; ValueError with the reason when it is no crontab
    expression or never fires. ``zone`` is unused: fires are computed on the wall clock."""
    del zone
    if not expression.isascii():
        # Only cron's own digits and names: not other scripts' digits ("٣"), nor no-break spaces.
        raise ValueError(
            f"invalid cron expression {expression!r}: only ASCII characters (digits, names, "
            "* , - /) are allowed"
        )
    fields = expression.lower().split()
    if len(fields) != len(_FIELDS):
        raise ValueError(
            f"invalid cron expression {expression!r}: Wrong number of fields; "
            f"got {len(fields)}, expected {len(_FIELDS)}"
        )
    try:
        crontab = " ".join(_field(index, field) for index, field in enumerate(fields))
        next(CronSim(crontab, _CHECK_FROM))
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None
    except (CronSimError, StopIteration):
        # cronsim refuses a day of month no month has ("30 2"), and stops after 50 years.
        raise ValueError(f"invalid cron expression {expression!r}: it never fires") from None
    return crontab


def _field(index: int, field: str) -> str:
    """One field checked term by term and written for cronsim: ``last`` (the last day of the
    month, which APScheduler took) as ``L``, and ``sun`` ending a range as 7 (``mon-sun``; but
    ``sun-sun`` is Sunday)."""
    terms = []
    for term in field.split(","):
        if index == 2 and term == "last":
            terms.append("L")
            continue
        match = _TERM.fullmatch(term)
        if match is None:
            raise ValueError(f"bad {_FIELDS[index]} field {field!r}")
        first, last, step = match.groups()
        high = low = 0
        if first is not None:
            low = _value(index, first, end=False)
            if last is not None and (high := _value(index, last, end=low > 0)) < low:
                raise ValueError(f"the range {first}-{last} ends before it starts")
        if step is not None and int(step) == 0:
            raise ValueError(f"the step in {term!r} is 0")
        terms.append(term.replace("-sun", "-7") if index == 4 and high == 7 else term)
    return ",".join(terms)


def _value(index: int, text: str, *, end: bool) -> int:
    """A number or a name in field ``index``, in its range; Sunday is 7 at the end of a range."""
    names = _NAMES.get(index, ())
    if text in names:
        value = names.index(text) + (1 if index == 3 else 0)
        return 7 if end and value == 0 and index == 4 else value
    low, high = _RANGES[index]
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a {_FIELDS[index]}")
    if not low <= int(text) <= high:
        raise ValueError(f"the {_FIELDS[index]} {text} is outside {low}-{high}")
    return int(text)


def last_fire(trigger: str, zone: tzinfo, moment: int) -> int | None:
    """The last fire at or before ``moment`` (Unix seconds).

    Fires are wall times in ``zone``, each at its first occurrence: a wall time the fall-back
    hour repeats fires once, as cron runs a 02:30 job once on that night, and one the
    spring-forward skips fires as much later as the clocks jump (02:30 at 03:30 summer time).
    """
    # After a fall-back, wall times ahead of the moment's (its repeated hour) fired before it.
    latest = _wall(moment, zone) + timedelta(seconds=max(0, -_jump(moment, zone)))
    best: int | None = None
    for wall in CronSim(trigger, latest + _SECOND, reverse=True):
        fire = _instant(wall, zone)
        if fire <= moment and (best is None or fire > best):
            best = fire
        # Only a skipped wall time fires later than a later wall time, by the jump at most.
        if best is not None and wall <= _wall(best, zone) - _near_jump(best, zone):
            break
    return best


def next_fire(trigger: str, zone: tzinfo, fire: int) -> int | None:
    """The fire after ``fire``."""
    return first_fire(trigger, zone, fire + 1)


def first_fire(trigger: str, zone: tzinfo, moment: int) -> int | None:
    """The first fire at or after ``moment``, fires read as in ``last_fire``."""
    # Just after a spring-forward, the wall times it skipped fire after the moment.
    earliest = _wall(moment, zone) - timedelta(seconds=max(0, _jump(moment, zone)))
    best: int | None = None
    for wall in CronSim(trigger, earliest - _SECOND):
        fire = _instant(wall, zone)
        if fire >= moment and (best is None or fire < best):
            best = fire
        # A wall time fires at itself or later: none after this one fires before ``best``.
        if best is not None and wall >= _wall(best, zone):
            break
    return best


def _wall(moment: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(moment, zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: tzinfo) -> int:
    """A wall time's first occurrence; a skipped one read with the offset before the jump."""
    return int(wall.replace(tzinfo=zone).timestamp())


def _jump(moment: int, zone: tzinfo) -> float:
    """Seconds the zone's clocks moved in the day up to ``moment``: + forward, - back."""
    return _offset(moment, zone) - _offset(moment - 86400, zone)


def _near_jump(moment: int, zone: tzinfo) -> timedelta:
    """The size of a spring-forward within a day of ``moment``, else 0."""
    return timedelta(
        seconds=max(0.0, _offset(moment + 86400, zone) - _offset(moment - 86400, zone))
    )


def _offset(moment: int, zone: tzinfo) -> float:
    offset = datetime.fromtimestamp(moment, zone).utcoffset()
    return 0.0 if offset is None else offset.total_seconds()


@dataclass(frozen=True, slots=True)
class DataPeriods:
    """How a group's data time is expected to advance: ``data_granularity`` and
    ``expected_data_delay``, counted on the wall clock of ``zone``."""

    granularity: Granularity
    expected_delay: float
    zone: tzinfo

    def behind(self, data_time: float, now: float) -> int | None:
        """Whole periods from the data's period back to the expected one; 0 when not behind.

        The expected period is ``now - expected_delay`` on the zone's wall clock (``1d`` is the
        same time yesterday across a DST change), floored to the day or hour. Periods are
        counted on the wall clock too: days are calendar days; the hour a spring-forward skips
        counts as one, and the hour a fall-back repeats counts once. None when the data time
        has no date in the schedule's zone (past year 9999 there).
        """
        expected = _expected_period(now, self.zone, self.granularity, self.expected_delay)
        try:
            data = _data_period(data_time, self.zone, self.granularity)
        except (OverflowError, ValueError):
            # A "max date" such as 9999-12-31 23:00 in the target's zone can be past year 9999
            # in the schedule's: no period to count, and no reason to fail the whole scrape.
            return None
        if self.granularity is Granularity.DAY:
            return max(0, (expected - data).days)
        return max(0, (expected - data) // timedelta(hours=1))

    def behind_from(self, data_time: float) -> float:
        """The Unix time from which ``behind(data_time, now)`` is 1 or more: when the wall
        clock, less the expected delay, reaches the period after the data's. ``inf`` when the
        data time has no period in the zone."""
        try:
            data = _data_period(data_time, self.zone, self.granularity)
        except (OverflowError, ValueError):
            return math.inf
        step = timedelta(days=1) if self.granularity is Granularity.DAY else timedelta(hours=1)
        try:
            wall = data + step + timedelta(seconds=self.expected_delay)
        except OverflowError:
            return math.inf
        return _first_instant_at_or_after(wall, self.zone)


def _first_instant_at_or_after(wall: datetime, zone: tzinfo) -> float:
    """The first Unix time whose wall clock in ``zone`` reads ``wall`` or later."""
    first = wall.replace(tzinfo=zone, fold=0).timestamp()
    other = wall.replace(tzinfo=zone, fold=1).timestamp()
    if other >= first:
        return first  # a plain wall time, or the first of a fall-back's two
    # A wall time a spring-forward skips: the first instant after it is the jump itself.
    low, high = other, first
    while high - low > 0.001:
        middle = (low + high) / 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


@functools.lru_cache(maxsize=256)
def _expected_period(now: float, zone: tzinfo, granularity: Granularity, delay: float) -> datetime:
    # Every group with the same settings asks this with the same scrape time.
    wall = datetime.fromtimestamp(now, zone).replace(tzinfo=None)
    return _floor(wall - timedelta(seconds=delay), granularity)


@functools.lru_cache(maxsize=4096)
def _data_period(data_time: float, zone: tzinfo, granularity: Granularity) -> datetime:
    # Groups fed by the same pipeline share their data time (a day's partition, say).
    return _floor(datetime.fromtimestamp(data_time, zone), granularity)


def _floor(moment: datetime, granularity: Granularity) -> datetime:
    """The start of ``moment``'s day or hour, as a naive wall-clock time."""
    if granularity is Granularity.DAY:
        return datetime(moment.year, moment.month, moment.day)  # noqa: DTZ001 - wall clock
    return datetime(moment.year, moment.month, moment.day, moment.hour)  # noqa: DTZ001
