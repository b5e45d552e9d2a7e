"""Listen addresses (``host:port``, ``:port``, ``[v6]:port``) and the flags' environment prefix.

Standard library only: ``exporter.cli`` builds its parser from these before the heavier
modules are imported.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

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
