"""Reading the configuration file: bounded read, YAML, ``${VAR}``, schema, resolution.

``load_config(path)`` returns a ``Config`` whose groups carry every inherited setting, or
raises ``ConfigError`` with one line per problem, each naming the key path. It does no network
I/O and no logging: allowed but suspicious settings come back in ``Config.warnings``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exporter.config.errors import ConfigError
from exporter.config.expand import expand_env
from exporter.config.files import (
    CONFIG_FILE_MAX_BYTES,
    FileReadError,
    read_text_file,
)
from exporter.config.model import Config
from exporter.config.proxy import inline_proxy_secrets
from exporter.config.resolve import resolve
from exporter.config.schema import ConfigFile
from exporter.config.yamlfile import (
    YamlError,
    load_yaml,
    validation_problems,
)
from exporter.redact import MIN_SECRET_LENGTH, redact


def parse_yaml(text: str) -> Any:
    """Parse YAML safely; raise ConfigError with the position on syntax errors."""
    try:
        return load_yaml(text)
    except YamlError as exc:
        raise ConfigError([str(exc)]) from None


def load_config(
    path: str | Path, environ: Mapping[str, str] | None = None, *, now: float | None = None
) -> Config:
    """Read and validate the configuration file at ``path``; ``now`` (Unix time, the clock's by
    default) is when maintenance windows that have ended are ignored from."""
    source = str(path)
    try:
        text = read_text_file(Path(path), CONFIG_FILE_MAX_BYTES)
    except FileReadError as exc:
        raise ConfigError([exc.describe("config file")], source) from None
    try:
        return parse_config(text, environ, base_dir=Path(path).parent, source=source, now=now)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None


def parse_config(
    text: str,
    environ: Mapping[str, str] | None = None,
    *,
    base_dir: Path = Path(),
    source: str | None = None,
    now: float | None = None,
) -> Config:
    """Validate configuration text; relative ``*_file`` paths resolve against ``base_dir``;
    ``now`` as for ``load_config``."""
    raw = parse_yaml(text)
    if raw is None:
        raise ConfigError(["the file is empty; it needs at least a targets list"])
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping with targets and groups"])
    environ = os.environ if environ is None else environ
    raw = expand_env(raw, environ)
    # An auth value written into the wrong key would otherwise be echoed by its error.
    inline_secrets = [*_inline_secrets(raw), *inline_proxy_secrets(raw)]
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_redacted(validation_problems(exc), inline_secrets)) from None
    return resolve(parsed, base_dir, source, inline_secrets, environ, now=now)


def _inline_secrets(raw: dict[str, Any]) -> list[str]:
    targets = raw.get("targets")
    auths = (
        [t.get("auth") for t in targets if isinstance(t, dict)] if isinstance(targets, list) else []
    )
    # A short one is a refused credential or a user's UID: masked in an error line that it
    # did not come from (none quotes its input), it would only garble the line.
    return [
        auth["value"]
        for auth in auths
        if isinstance(auth, dict)
        and isinstance(auth.get("value"), str)
        and len(auth["value"]) >= MIN_SECRET_LENGTH
    ]


def _redacted(problems: Iterable[str], secrets: Sequence[str]) -> list[str]:
    return [redact(problem, secrets) for problem in problems]
