"""Time zones: IANA names from the config, and this machine's own zone for CAN's naive times."""

from __future__ import annotations

import contextlib
import functools
import os
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # OSError: a directory of the zone database (`Asia`) or a name too long for a path.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as UTC") from None


def local_zone() -> tzinfo:
    """This machine's zone with its DST rules: ``$TZ``, else ``/etc/localtime``."""
    return _local_zone(os.environ.get("TZ"))


@functools.lru_cache(maxsize=4)
def _local_zone(tz_variable: str | None) -> tzinfo:
    name = (tz_variable or "").removeprefix(":")
    if name:
        with contextlib.suppress(ValueError, ZoneInfoNotFoundError):
            return ZoneInfo(name)
    with contextlib.suppress(OSError, ValueError), open("/etc/localtime", "rb") as localtime:
        return ZoneInfo.from_file(localtime, key="localtime")
    # No zone database: a fixed offset, right except across a DST change.
    return datetime.now().astimezone().tzinfo or UTC


def first_instant_at_or_after(wall: datetime, zone: tzinfo) -> float:
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
