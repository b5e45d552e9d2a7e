"""Reading a file named in a config: a regular file only, and never more than a bound.

A path in a config may name anything: a FIFO no one writes to (reading it would hang), a device
that never ends (``/dev/zero``), a directory, a socket, or a file far larger than it should be.
``read_regular_file`` opens without blocking, checks the kind of file on the open descriptor
(so no swap between a check and the read can get past it) and reads at most one byte past the
bound. Symlinks are followed: Kubernetes mounts Secrets as symlinks into ``..data``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

# A 10,000-group config with five plans, labels, thresholds and a schedule per group is about
# 4.8 MB; one plan per group and nothing else, 0.6 MB.
CONFIG_FILE_MAX_BYTES = 16 * MIB
# TLS file names, headers and a few hundred bcrypt hashes.
WEB_CONFIG_FILE_MAX_BYTES = 1 * MIB
# An auth value is a line of text; 64 KiB is far more than any token.
SECRET_FILE_MAX_BYTES = 64 * KIB
# A CA bundle, a certificate chain or a key: the system CA bundle is about 220 KiB.
PEM_FILE_MAX_BYTES = 4 * MIB

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 64 * KIB
_INVALID_PATH = "not a valid path"

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
)


class FileReadError(Exception):
    """The file cannot be used; ``reason`` says why without quoting any of its content."""

    def __init__(self, path: Path, reason: str, *, unreadable: bool = False) -> None:
        self.path = path
        self.reason = reason
        # True: the system refused to open it (``reason`` is its message), as for a missing file.
        self.unreadable = unreadable
        super().__init__(self.describe())

    def describe(self, subject: str | None = None) -> str:
        """``cannot read /x: No such file or directory`` or ``/x is a FIFO, not a regular file``;
        ``subject`` names the file another way (``config file``)."""
        if self.reason == _INVALID_PATH:
            return _INVALID_PATH  # the path holds a NUL byte: not worth echoing
        name = str(self.path) if subject is None else subject
        return f"cannot read {name}: {self.reason}" if self.unreadable else f"{name} {self.reason}"


def read_regular_file(path: Path, limit: int) -> bytes:
    """The content of the regular file at ``path``, at most ``limit`` bytes long.

    Raises FileReadError at once for anything else: a FIFO, a device, a directory, a socket,
    a larger file, or a file that cannot be opened.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _open_error(path, exc) from None
    except ValueError:  # a NUL byte in the path
        raise FileReadError(path, _INVALID_PATH) from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise FileReadError(
                path,
                _not_regular(status.st_mode),
            )
        if status.st_size > limit:
            raise _too_large(path, limit)
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise FileReadError(path, _strerror(exc), unreadable=True) from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after fstat
        raise _too_large(path, limit)
    return data


def read_text_file(path: Path, limit: int) -> str:
    """``read_regular_file``'s content as UTF-8 text; content that is not is a FileReadError."""
    data = read_regular_file(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileReadError(path, type(exc).__name__, unreadable=True) from None


def format_size(size: int) -> str:
    """``64 KiB``, ``16 MiB``: a bound as the README writes it."""
    for unit, scale in (("MiB", MIB), ("KiB", KIB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def _read_at_most(fd: int, count: int) -> bytes:
    chunks: list[bytes] = []
    remaining = count
    while remaining > 0:
        chunk = os.read(fd, min(remaining, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _open_error(path: Path, exc: OSError) -> FileReadError:
    # Opening a Unix socket fails with ENXIO, which says nothing useful: name the kind instead.
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        mode = None
    if mode is not None and stat.S_ISSOCK(mode):
        return FileReadError(
            path,
            _not_regular(mode),
        )
    return FileReadError(path, _strerror(exc), unreadable=True)


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"is {kind}, not a regular file"


def _too_large(path: Path, limit: int) -> FileReadError:
    return FileReadError(
        path,
        f"is larger than {format_size(limit)}",
    )


def _strerror(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
