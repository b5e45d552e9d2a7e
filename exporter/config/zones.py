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
