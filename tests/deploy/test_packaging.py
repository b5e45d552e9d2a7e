"""Every data file the package reads at run time is declared as package data."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def test_every_data_file_is_shipped_in_the_wheel() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data: dict[str, list[str]] = pyproject["tool"]["setuptools"]["package-data"]
    data_files = [
        path
        for path in (ROOT / "exporter").rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]
    assert data_files, "expected demo.yml and the simulator scenarios"
    for path in data_files:
        declared = any(
            fnmatch.fnmatch(path.relative_to(ROOT / package.replace(".", "/")).as_posix(), pattern)
            for package, patterns in package_data.items()
            if path.is_relative_to(ROOT / package.replace(".", "/"))
            for pattern in patterns
        )
        assert declared, f"{path.relative_to(ROOT)} is not in [tool.setuptools.package-data]"
