"""A real HTTP proxy for the proxy tests: Debian's tinyproxy on 127.0.0.1, in the foreground.

./scripts/test installs it; a missing tinyproxy fails the tests (``require_tool``), never skips
them. Each proxy gets its own config file, log and pid file in a temporary directory; its log,
at the ``Connect`` level, has one ``Request`` line per request it forwarded, which is how a test
tells that a request went through it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from pathlib import Path

from tests.helpers.programs import require_tool
from tests.integration.processes import STARTUP_TIMEOUT, Process, free_port, wait_for

_CONFIG = """\
Port {port}
Listen 127.0.0.1
Allow 127.0.0.1
Timeout 30
MaxClients 50
LogFile "{log}"
LogLevel Connect
PidFile "{pid}"
DisableViaHeader Yes
"""
# "Request (file descriptor 5): POST http://127.0.0.1:8080/path HTTP/1.1"
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (.+)$", re.MULTILINE)


class Tinyproxy(Process):
    """tinyproxy on a free loopback port; CONNECT only to ``connect_ports`` (none: refused)."""

    def __init__(
        self,
        directory: Path,
        *,
        connect_ports: Sequence[int] = (),
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proxy_log = directory / "tinyproxy.log"
        config = _CONFIG.format(port=self.port, log=self.proxy_log, pid=directory / "tinyproxy.pid")
        # With no ConnectPort line tinyproxy would tunnel to any port.
        config += "".join(f"ConnectPort {port}\n" for port in connect_ports or (0,))
        if basic_auth is not None:
            config += f"BasicAuth {basic_auth[0]} {basic_auth[1]}\n"
        config_file = directory / "tinyproxy.conf"
        config_file.write_text(config)
        binary = require_tool("tinyproxy")
        super().__init__([binary, "-d", "-c", str(config_file)], directory / "tinyproxy.stderr")
        wait_for(self._listening, STARTUP_TIMEOUT, "tinyproxy")

    def _listening(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"tinyproxy exited early:\n{self.log()}\n{self.proxy_log_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
        except OSError:
            return False
        return True

    def proxy_log_text(self) -> str:
        return self.proxy_log.read_text(errors="replace") if self.proxy_log.exists() else ""

    def requests(self) -> list[str]:
        """The request lines tinyproxy received, oldest first: ``CONNECT host:port HTTP/1.1``."""
        return _REQUEST.findall(self.proxy_log_text())
