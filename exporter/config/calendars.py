"""Business calendars: which days count, and how many business seconds lie between two instants.

A ``calendars`` entry names its weekend days, its public holidays (from the ``holidays``
package, with the make-up working days it carries, such as China's adjusted working
Saturdays), extra holidays and extra working days. A business day is a whole local day, 00:00
to 24:00 in the calendar's zone (23 or 25 hours across a DST change); a business second is a
second of one. Everything here is pure and computed when the config loads: the package's
holidays and every day's start for ``HOLIDAY_YEARS_AROUND`` years either side of the load's
year, so a scrape only looks things up (bisection over a few thousand days).

Outside those years the package's holidays are not known (the configured dates still count),
and days are 24 hours long at the zone's offset at the nearest edge: an hour of DST error, at
most, on data more than ten years old.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from exporter.config.zones import first_instant_at_or_after

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The package's holidays and the days' exact lengths are computed for the years from this many
# before to this many after the year the config loads in.
HOLIDAY_YEARS_AROUND = 10
_DAY = 86400.0
_FIRST_ORDINAL = date.min.toordinal() + 1
_LAST_ORDINAL = date.max.toordinal() - 1


@dataclass(frozen=True, slots=True)
class _Table:
    """Precomputed days of the calendar's years: ``first`` is the first day's ordinal."""

    first: int
    starts: tuple[float, ...]  # the Unix time each day starts, and the day after the last
    prefix: tuple[float, ...]  # business seconds of the whole days before each day
    removed: tuple[int, ...]  # sorted ordinals of weekdays that are not business days
    added: tuple[int, ...]  # sorted ordinals of weekend days that are business days


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """A resolved calendar; build it with ``make_calendar``. Instants are Unix seconds."""

    name: str
    zone: tzinfo
    weekends: frozenset[int]  # date.weekday() numbers: 5 and 6 for sat, sun
    holidays: frozenset[date]  # the package's, in the covered years, and extra_holidays
    workdays: frozenset[date]  # the package's make-up working days, and workdays
    years: tuple[int, int]  # the first and last year covered exactly
    _table: _Table = field(compare=False, repr=False, hash=False)

    def is_business_day(self, day: date) -> bool:
        """A configured or make-up working day, or a day off neither weekend nor holiday."""
        if day in self.workdays:
            return True
        return day.weekday() not in self.weekends and day not in self.holidays

    def today_is_business_day(self, now: float) -> bool:
        """Whether ``now``'s date, in the calendar's zone, is a business day."""
        return self.is_business_day(date.fromordinal(self._day_of(now)))

    def day_span(self, instant: float) -> tuple[float, float]:
        """When the local day holding ``instant`` starts, and when the next one does."""
        ordinal = self._day_of(instant)
        return self._start(ordinal), self._start(ordinal + 1)

    def business_seconds(self, start: float, end: float) -> float:
        """Seconds of business days within [start, end]; negative when ``end`` is earlier."""
        return self._elapsed(end) - self._elapsed(start)

    def add_business_seconds(self, start: float, seconds: float) -> float:
        """The instant after which more than ``seconds`` business seconds have elapsed since
        ``start``: ``business_seconds(start, t) > seconds`` exactly when ``t`` is later.
        ``inf`` when that is past year 9999."""
        target = self._elapsed(start) + seconds
        low, high = _FIRST_ORDINAL, _LAST_ORDINAL
        if self._before(high + 1) <= target:
            return math.inf
        # The first day whose end has more than ``target`` business seconds before it.
        while low < high:
            middle = (low + high) // 2
            if self._before(middle + 1) > target:
                high = middle
            else:
                low = middle + 1
        return self._start(low) + max(0.0, target - self._before(low))

    def previous_business_days(self, day: date, count: int) -> date:
        """The ``count``-th business day before ``day`` (``day`` itself for 0)."""
        return self._step(day, count, -1)

    def next_business_days(self, day: date, count: int) -> date:
        """The ``count``-th business day after ``day`` (``day`` itself for 0)."""
        return self._step(day, count, 1)

    def business_days_after(self, day: date, until: date) -> int:
        """Business days after ``day`` up to ``until`` included; 0 when ``until`` is not later."""
        if until <= day:
            return 0
        return self._count(day.toordinal() + 1, until.toordinal() + 1)

    def _step(self, day: date, count: int, direction: int) -> date:
        ordinal = day.toordinal()
        while count > 0:
            ordinal += direction
            if not _FIRST_ORDINAL <= ordinal <= _LAST_ORDINAL:
                return date.min if direction < 0 else date.max
            if self.is_business_day(date.fromordinal(ordinal)):
                count -= 1
        return date.fromordinal(ordinal)

    # --- business seconds since the first covered day, as a function of the instant ---------

    def _elapsed(self, instant: float) -> float:
        ordinal = self._day_of(instant)
        start = self._start(ordinal)
        into = min(max(0.0, instant - start), self._start(ordinal + 1) - start)
        business = self.is_business_day(date.fromordinal(ordinal))
        return self._before(ordinal) + (into if business else 0.0)

    def _day_of(self, instant: float) -> int:
        """The ordinal of the local day holding ``instant`` (clamped to years 1 to 9999)."""
        table = self._table
        last = len(table.starts) - 1
        if not math.isfinite(instant):
            return _FIRST_ORDINAL if instant < 0 else _LAST_ORDINAL
        if table.starts[0] <= instant < table.starts[last]:
            return table.first + bisect.bisect_right(table.starts, instant) - 1
        if instant < table.starts[0]:
            ordinal = table.first + math.floor((instant - table.starts[0]) / _DAY)
        else:
            ordinal = table.first + last + math.floor((instant - table.starts[last]) / _DAY)
        return min(max(ordinal, _FIRST_ORDINAL), _LAST_ORDINAL)

    def _start(self, ordinal: int) -> float:
        """When the local day ``ordinal`` starts: exact in the covered years, 24-hour days
        from their edges outside."""
        table = self._table
        last = len(table.starts) - 1
        index = ordinal - table.first
        if index < 0:
            return table.starts[0] + index * _DAY
        if index > last:
            return table.starts[last] + (index - last) * _DAY
        return table.starts[index]

    def _before(self, ordinal: int) -> float:
        """Business seconds of the whole days from the first covered day to ``ordinal``
        (negative before it)."""
        table = self._table
        last = len(table.prefix) - 1
        index = ordinal - table.first
        if index < 0:
            return -_DAY * self._count(ordinal, table.first)
        if index > last:
            return table.prefix[last] + _DAY * self._count(table.first + last, ordinal)
        return table.prefix[index]

    def _count(self, low: int, high: int) -> int:
        """Business days among the ordinals [low, high)."""
        table = self._table
        weekdays = _weekdays_between(low, high, self.weekends)
        removed = bisect.bisect_left(table.removed, high) - bisect.bisect_left(table.removed, low)
        added = bisect.bisect_left(table.added, high) - bisect.bisect_left(table.added, low)
        return weekdays - removed + added


def _weekdays_between(low: int, high: int, weekends: frozenset[int]) -> int:
    """Days among the ordinals [low, high) whose weekday is not a weekend day."""
    if high <= low:
        return 0
    weeks, rest = divmod(high - low, 7)
    count = weeks * (7 - len(weekends))
    first = date.fromordinal(low).weekday()
    return count + sum(1 for offset in range(rest) if (first + offset) % 7 not in weekends)


@dataclass(frozen=True, slots=True)
class CalendarSpec:
    """What a ``calendars`` entry says, zone aside."""

    name: str
    weekends: frozenset[int] = frozenset((5, 6))
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()


@functools.lru_cache(maxsize=64)
def make_calendar(spec: CalendarSpec, zone: tzinfo, years: tuple[int, int]) -> BusinessCalendar:
    """The calendar in ``zone``, its package holidays for ``years`` (first, last) looked up
    once and shared by every group (and reload) with the same settings."""
    holidays, make_up = package_holidays(spec.country, spec.subdivision, years)
    all_holidays = frozenset(holidays) | spec.extra_holidays
    all_workdays = frozenset(make_up) | spec.workdays
    table = _build_table(zone, spec.weekends, all_holidays, all_workdays, years)
    return BusinessCalendar(
        spec.name, zone, spec.weekends, all_holidays, all_workdays, years, table
    )


def package_holidays(
    country: str | None, subdivision: str | None, years: tuple[int, int]
) -> tuple[frozenset[date], frozenset[date]]:
    """The ``holidays`` package's public holidays of a country (and subdivision) over the
    years, and its working days moved onto weekends (``weekend_workdays``) in those years."""
    if country is None:
        return frozenset(), frozenset()
    import holidays as package  # noqa: PLC0415 - 50 ms; only configs with holidays pay it

    span = range(years[0], years[1] + 1)
    # expand=False: a lookup outside the years must not compute another year at scrape time.
    found = package.country_holidays(country, subdiv=subdivision, years=span, expand=False)
    make_up = frozenset(day for day in found.weekend_workdays if years[0] <= day.year <= years[1])
    return frozenset(found.keys()), make_up


def check_country(country: str, subdivision: str | None) -> tuple[str | None, str | None]:
    """Problems with a country code and subdivision, as (country's, subdivision's)."""
    import holidays as package  # noqa: PLC0415

    supported = package.list_supported_countries()
    if country not in supported:
        return (
            f"unknown country {country!r}: use an ISO 3166-1 alpha-2 code the holidays "
            "package supports, such as CN or US",
            None,
        )
    if subdivision is not None and subdivision not in supported[country]:
        codes = supported[country]
        if not codes:
            return None, f"unknown subdivision {subdivision!r}: {country} has none in holidays"
        known = ", ".join(codes[:8]) + (", ..." if len(codes) > 8 else "")
        return None, f"unknown subdivision {subdivision!r} of {country} (known: {known})"
    return None, None


def covered_years(year: int) -> tuple[int, int]:
    """The years a calendar loaded in ``year`` covers exactly."""
    return max(1, year - HOLIDAY_YEARS_AROUND), min(9998, year + HOLIDAY_YEARS_AROUND)


def weekday_numbers(names: Iterable[str]) -> frozenset[int]:
    return frozenset(WEEKDAYS.index(name) for name in names)


def _build_table(
    zone: tzinfo,
    weekends: frozenset[int],
    holidays: frozenset[date],
    workdays: frozenset[date],
    years: tuple[int, int],
) -> _Table:
    first = date(years[0], 1, 1).toordinal()
    after = date(years[1], 12, 31).toordinal() + 1
    days = range(first, after + 1)
    starts = tuple(_day_start(date.fromordinal(ordinal), zone) for ordinal in days)
    prefix = [0.0]
    for index, ordinal in enumerate(range(first, after)):
        day = date.fromordinal(ordinal)
        business = day in workdays or (day.weekday() not in weekends and day not in holidays)
        length = starts[index + 1] - starts[index]
        prefix.append(prefix[-1] + (length if business else 0.0))
    removed = sorted(
        day.toordinal() for day in holidays if day.weekday() not in weekends and day not in workdays
    )
    added = sorted(day.toordinal() for day in workdays if day.weekday() in weekends)
    return _Table(first, starts, tuple(prefix), tuple(removed), tuple(added))


def _day_start(day: date, zone: tzinfo) -> float:
    """The first instant whose wall clock in ``zone`` reads ``day`` 00:00 or later (a midnight
    a spring-forward skips, as in Santiago or Beirut, starts the day at the jump)."""
    midnight = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - a wall-clock time
    return first_instant_at_or_after(midnight, zone)
