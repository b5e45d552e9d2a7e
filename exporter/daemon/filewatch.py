"""Notices when secret files change, so a rotated credential is picked up without a restart.

Kubernetes updates a mounted Secret by swapping a symlink, Vault agents and operators rewrite
the file; either way the content changes. Comparing a digest of the content every few seconds
catches all of them with no platform-specific API, for the handful of files a config names.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from exporter.config.files import SECRET_FILE_MAX_BYTES, FileReadError, read_regular_file

log = logging.getLogger("exporter.filewatch")

DEFAULT_CHECK_INTERVAL = 10.0


def file_digest(path: Path) -> bytes | None:
    """A digest of the file's content; None while it cannot be read (mid-rotation, removed).

    The file is read as the config reads it, never blocking and at most 64 KiB. One that
    turned into something the config refuses (a FIFO, a device, a larger file) gets a digest of
    that reason, so the change is reported and the reload says what is wrong.
    """
    try:
        return hashlib.sha256(read_regular_file(path, SECRET_FILE_MAX_BYTES)).digest()
    except FileReadError as exc:
        if exc.unreadable:
            return None
        return hashlib.sha256(b"unusable: " + exc.reason.encode()).digest()


class FileWatcher:
    """Remembers the content of the files ``paths()`` names and reports the ones that changed."""

    def __init__(self, paths: Callable[[], Iterable[Path]]) -> None:
        self._paths = paths
        self._digests: dict[Path, bytes | None] = {}
        self.check()

    def check(self) -> list[Path]:
        """The watched files whose content changed since the last check.

        A file the configuration names for the first time is remembered, not reported.
        """
        current = {path: file_digest(path) for path in self._paths()}
        changed = [
            path
            for path, digest in current.items()
            if path in self._digests and digest is not None and digest != self._digests[path]
        ]
        # An unreadable moment keeps the last good digest, so the change shows once it is back.
        self._digests = {
            path: digest if digest is not None else self._digests.get(path)
            for path, digest in current.items()
        }
        return sorted(changed)

    async def run(
        self,
        on_change: Callable[[list[Path]], Awaitable[object]],
        interval: float = DEFAULT_CHECK_INTERVAL,
    ) -> None:
        """Check every ``interval`` seconds until cancelled; call ``on_change`` with the changes."""
        while True:
            await asyncio.sleep(interval)
            changed = await asyncio.to_thread(self.check)
            if changed:
                log.info(
                    "secret file changed; reloading",
                    extra={"files": ",".join(str(path) for path in changed)},
                )
                await on_change(changed)
