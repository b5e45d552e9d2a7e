"""A TCP relay on 127.0.0.1 that keeps every byte its clients send: what a proxy behind it sees.

Put in front of tinyproxy, it shows what the exporter sent the proxy (a CONNECT request and its
headers, or a whole plain HTTP request), which tinyproxy's own log does not: it logs request
lines only. One thread per connection, sockets closed and threads joined by ``stop()``.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType
from typing import Self

_POLL_SECONDS = 0.2
_CONNECT_SECONDS = 5.0


class Wiretap:
    """Relays 127.0.0.1:``port`` to 127.0.0.1:``upstream_port``; ``sent()`` is what came in."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sent = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="wiretap-accept", daemon=True)

    def __enter__(self) -> Self:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def sent(self) -> bytes:
        """Every byte the relay's clients sent, connections one after another."""
        with self._lock:
            return bytes(self._sent)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        alive = [t.name for t in [self._acceptor, *threads] if t.is_alive()]
        if alive:
            raise AssertionError(f"wiretap threads outlived stop(): {alive}")

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=self._relay, args=(client,), name="wiretap-relay", daemon=True
            )
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(
                ("127.0.0.1", self._upstream_port), timeout=_CONNECT_SECONDS
            )
        except OSError:
            client.close()
            return
        with client, upstream, selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            with contextlib.suppress(OSError):
                while not self._stop.is_set():
                    for key, _ in selector.select(_POLL_SECONDS):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(65536)
                        if not data:
                            return
                        if source is client:
                            with self._lock:
                                self._sent += data
                        key.data.sendall(data)
