"""Crontab expressions: checked with crontab's meaning, and their fires computed by cronsim on
the schedule zone's wall clock, each wall time at its first occurrence (a fall-back's repeated
hour fires once, as cron runs a 02:30 job once on that night)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

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


def parse_crontab(expression: str) -> str:
    """The expression as cronsim reads it; ValueError with the reason when it is no crontab
    expression or never fires. It has no zone: fires are computed on the wall clock."""
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


def last_fire(crontab: str, zone: tzinfo, moment: int) -> int | None:
    """The last fire at or before ``moment`` (Unix seconds).

    Fires are wall times in ``zone``, each at its first occurrence: a wall time the fall-back
    hour repeats fires once, as cron runs a 02:30 job once on that night, and one the
    spring-forward skips fires as much later as the clocks jump (02:30 at 03:30 summer time).
    """
    # After a fall-back, wall times ahead of the moment's (its repeated hour) fired before it.
    latest = _wall(moment, zone) + timedelta(seconds=max(0, -_jump(moment, zone)))
    best: int | None = None
    for wall in CronSim(crontab, latest + _SECOND, reverse=True):
        fire = _instant(wall, zone)
        if fire <= moment and (best is None or fire > best):
            best = fire
        # Only a skipped wall time fires later than a later wall time, by the jump at most.
        if best is not None and wall <= _wall(best, zone) - _near_jump(best, zone):
            break
    return best


def next_fire(crontab: str, zone: tzinfo, fire: int) -> int | None:
    """The fire after ``fire``."""
    return first_fire(crontab, zone, fire + 1)


def first_fire(crontab: str, zone: tzinfo, moment: int) -> int | None:
    """The first fire at or after ``moment``, fires read as in ``last_fire``."""
    # Just after a spring-forward, the wall times it skipped fire after the moment.
    earliest = _wall(moment, zone) - timedelta(seconds=max(0, _jump(moment, zone)))
    best: int | None = None
    for wall in CronSim(crontab, earliest - _SECOND):
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
