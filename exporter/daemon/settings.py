"""Process options: flags, each also settable through an environment variable.

Flags win over ``ALOUDATA_CAN_EXPORTER_*`` variables, which win over the defaults. The plan
groups live in the YAML file (``exporter.config``), never here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from exporter.config.sharding import Shard
from exporter.listen import DEFAULT_PORT, ENV_PREFIX, ListenAddress, parse_listen_address


def _check_listen_address(text: str) -> str:
    parse_listen_address(text)
    return text


def _empty_is_unset(value: object) -> object:
    return None if value == "" else value


def _check_path(path: str) -> str:
    if not path.startswith("/") or path in ("/", "/healthz", "/readyz", "/-/reload"):
        raise ValueError(f"invalid telemetry path {path!r}: must start with / and not clash")
    return path


def _check_shard_total(total: int) -> int:
    Shard(0, total)
    return total


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    config_file: Path = Path("exporter.yml")
    # exporter-toolkit's TLS and basic auth file; an empty value means none, as in Go.
    web_config_file: Annotated[Path | None, BeforeValidator(_empty_is_unset)] = None
    web_listen_address: Annotated[str, AfterValidator(_check_listen_address)] = f":{DEFAULT_PORT}"
    web_telemetry_path: Annotated[str, AfterValidator(_check_path)] = "/metrics"
    web_enable_lifecycle: bool = False
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    log_format: Literal["logfmt", "json"] = "logfmt"
    # The total comes first: the index is checked against it.
    shard_total: Annotated[int, AfterValidator(_check_shard_total)] = 1
    shard_index: int = 0

    @field_validator("shard_index")
    @classmethod
    def _check_shard_index(cls, index: int, info: ValidationInfo) -> int:
        total = info.data.get("shard_total")
        # An invalid total has its own error; then check the index on its own.
        Shard(index, total if total is not None else max(index + 1, 1))
        return index

    @property
    def listen_address(self) -> ListenAddress:
        return parse_listen_address(self.web_listen_address)

    @property
    def shard(self) -> Shard:
        return Shard(self.shard_index, self.shard_total)
