"""Process options: flags, each also settable through an environment variable.

Flags win over ``ALOUDATA_CAN_EXPORTER_*`` variables, which win over the defaults. The plan
groups live in the YAML file (``exporter.config``), never here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from exporter.sharding import Shard

DEFAULT_PORT = 9873
ENV_PREFIX = "ALOUDATA_CAN_EXPORTER_"


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str | None  # None: every interface
    port: int

    def __str__(self) -> str:
        host = self.host or ""
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``host:port``, ``:port`` or ``[v6]:port`` as Prometheus exporters do."""
    host, separator, port_text = text.rpartition(":")
    if not separator or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(
            f"invalid listen address {text!r}: expected host:port, like :{DEFAULT_PORT}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid listen address {text!r}: bad IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"invalid listen address {text!r}: write IPv6 hosts as [addr]:port")
    return ListenAddress(host or None, int(port_text))


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
