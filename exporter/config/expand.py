"""``${VAR}`` expansion in the parsed YAML, naming the key path of each unset variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from exporter.config.errors import ConfigError

_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: Any, environ: Mapping[str, str], path: str = "") -> Any:
    """Expand ``${VAR}`` in every string; ``$$`` stands for a literal ``$``.

    Raises ConfigError naming each key path whose variable is unset.
    """
    problems: list[str] = []
    expanded = _expand(value, environ, path, problems)
    if problems:
        raise ConfigError(problems)
    return expanded


def _expand(value: Any, environ: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        return _expand_string(value, environ, path, problems)
    if isinstance(value, dict):
        return {
            key: _expand(item, environ, _join(path, key), problems) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_expand(item, environ, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    return value


def _expand_string(text: str, environ: Mapping[str, str], path: str, problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in environ:
            problems.append(f"{path or '<root>'}: environment variable {name} is not set")
            return ""
        return environ[name]

    return _ENV_REFERENCE.sub(replace, text)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)
