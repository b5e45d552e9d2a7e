"""Small fakes the web tests share: a hand-moved monotonic clock, files replaced in place,
basic-auth headers."""

from __future__ import annotations

import base64
import os
from pathlib import Path


class FakeMonotonic:
    """A monotonic clock that moves only when a test sets ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replace_file(path: Path, text: str) -> None:
    """Replace the file as editors and Kubernetes do: a new inode renamed into place."""
    new = path.with_name(path.name + ".new")
    new.write_text(text)
    os.replace(new, path)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
