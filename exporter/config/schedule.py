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
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

from exporter.config.calendars import BusinessCalendar
from exporter.config.cron import first_fire, last_fire, parse_crontab
from exporter.config.zones import first_instant_at_or_after

# How many days off in a row a fire is looked past on a calendar (a cron that fires only on
# days off has no deadline).
_DAYS_OFF_LIMIT = 400


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
    crontab: str = field(compare=False, repr=False)  # the expression as cronsim reads it
    _cache: _Cache = field(default_factory=_Cache, compare=False, repr=False)
    # A fire on a day that is not a business day of the calendar sets no deadline.
    calendar: BusinessCalendar | None = None

    def deadline(self, now: float) -> Deadline | None:
        """The last deadline at or before ``now``; None when the cron never fired before it.

        Computed once per deadline: until the next deadline passes, the cached one is returned.
        """
        window = self._cache.window
        if window is not None and window.start <= now < window.until:
            return window.deadline
        if window is not None and window.next_fire is not None and window.until <= now:
            # Usually only the next deadline has passed since the last scrape: one step on.
            following = self._first(window.next_fire + 1)
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
        fire = self._first(math.ceil(refresh_time))
        return math.inf if fire is None else fire + self.grace

    def _compute(self, now: float) -> _Window:
        latest = math.floor(now - self.grace)
        fire = self._last(latest)
        if fire is None:
            upcoming = self._first(latest + 1)
            return _Window(None, -math.inf, self._deadline_of(upcoming), upcoming)
        return self._window(fire, self._first(fire + 1))

    def _first(self, moment: int) -> int | None:
        """The first fire at or after ``moment`` that is on a business day (any day without a
        calendar)."""
        fire = first_fire(self.crontab, self.zone, moment)
        for _ in range(_DAYS_OFF_LIMIT):
            if fire is None or self.calendar is None or self.calendar.today_is_business_day(fire):
                return fire
            _, day_end = self.calendar.day_span(fire)
            fire = first_fire(self.crontab, self.zone, max(fire + 1, math.ceil(day_end)))
        return None

    def _last(self, moment: int) -> int | None:
        """The last fire at or before ``moment`` on a business day, as ``_first``."""
        fire = last_fire(self.crontab, self.zone, moment)
        for _ in range(_DAYS_OFF_LIMIT):
            if fire is None or self.calendar is None or self.calendar.today_is_business_day(fire):
                return fire
            day_start, _ = self.calendar.day_span(fire)
            fire = last_fire(self.crontab, self.zone, min(fire - 1, math.ceil(day_start) - 1))
        return None

    def _window(self, fire: int, following: int | None) -> _Window:
        deadline = fire + self.grace
        return _Window(Deadline(fire, deadline), deadline, self._deadline_of(following), following)

    def _deadline_of(self, fire: int | None) -> float:
        return math.inf if fire is None else fire + self.grace


@functools.lru_cache(maxsize=4096)
def make_schedule(
    refresh_cron: str, zone: tzinfo, grace: float, calendar: BusinessCalendar | None = None
) -> Schedule:
    """A schedule, shared by every group (and every reload) with the same settings, so its
    deadline is computed once for all of them. Raises ValueError for a bad expression."""
    return Schedule(refresh_cron, zone, grace, parse_crontab(refresh_cron), calendar=calendar)


@dataclass(frozen=True, slots=True)
class DataPeriods:
    """How a group's data time is expected to advance: ``data_granularity`` and
    ``expected_data_delay``, counted on the wall clock of ``zone``."""

    granularity: Granularity
    expected_delay: float
    zone: tzinfo
    # Daily periods count its business days: see ``_business_behind``.
    calendar: BusinessCalendar | None = None

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
        if self.calendar is not None and self.granularity is Granularity.DAY:
            return _business_behind(self.calendar, self.expected_delay, now, self.zone, data)
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
            if self.calendar is not None and self.granularity is Granularity.DAY:
                wall = _business_behind_from(self.calendar, self.expected_delay, data)
            else:
                wall = data + step + timedelta(seconds=self.expected_delay)
        except OverflowError:
            return math.inf
        return first_instant_at_or_after(wall, self.zone)


def _business_behind(
    calendar: BusinessCalendar, delay: float, now: float, zone: tzinfo, data: datetime
) -> int:
    """Business days after the data's day up to the expected one. The delay's whole days count
    business days back from the date of now less its remainder, on the zone's wall clock: T-1
    on a Monday, a Saturday or a Sunday expects Friday's data."""
    days, rest = divmod(delay, 86400)
    wall = datetime.fromtimestamp(now, zone).replace(tzinfo=None) - timedelta(seconds=rest)
    expected = calendar.previous_business_days(wall.date(), int(days))
    return calendar.business_days_after(data.date(), expected)


def _business_behind_from(calendar: BusinessCalendar, delay: float, data: datetime) -> datetime:
    """The wall-clock time from which ``_business_behind`` is 1 or more: when the expected day
    reaches the first business day after the data's. With T-n, that is the day after the n-th
    business day counted from it (a Saturday, for Friday's with T-1), plus the delay's
    remainder; with T-0, that day itself."""
    days, rest = divmod(delay, 86400)
    day = calendar.next_business_days(data.date(), 1)
    if days >= 1:
        day = calendar.next_business_days(day, int(days) - 1) + timedelta(days=1)
    return datetime(day.year, day.month, day.day) + timedelta(seconds=rest)  # noqa: DTZ001


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
