"""Each target's CAN client and circuit, and the retirement of clients a reload replaced.

A target new to the config, or changed (URL, credentials, limits), gets a new client and a
fresh circuit; the client it had is closed once the requests it still carries have had their
timeout. A target gone from the config loses both the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from exporter.can.client import CanClient
from exporter.config.model import Target
from exporter.polling.resilience import Circuit

ClientFactory = Callable[[Target], CanClient]


class TargetClients:
    def __init__(self, client_factory: ClientFactory) -> None:
        self._client_factory = client_factory
        self._clients: dict[str, CanClient] = {}
        self._circuits: dict[str, Circuit] = {}
        self._retired: set[asyncio.Task[None]] = set()

    def client(self, target: str) -> CanClient | None:
        return self._clients.get(target)

    def circuit(self, target: str) -> Circuit | None:
        return self._circuits.get(target)

    @property
    def retiring(self) -> set[asyncio.Task[None]]:
        """The replaced clients still waiting for their requests before they close."""
        return self._retired

    def replace(self, name: str, target: Target) -> None:
        """Give the target a new client and a fresh circuit, retiring the client it had."""
        self._retire(name)
        self._clients[name] = self._client_factory(target)
        # A changed target (new URL, new credentials) gets a fresh chance.
        self._circuits[name] = Circuit()

    def remove(self, name: str) -> None:
        self._retire(name)
        self._circuits.pop(name, None)

    async def aclose(self) -> None:
        """Close the clients in use (the retiring ones close on their own)."""
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))
        self._clients.clear()

    def _retire(self, name: str) -> None:
        client = self._clients.pop(name, None)
        if client is not None:
            # Requests in flight still hold it; close it once they have had their timeout.
            task = asyncio.get_running_loop().create_task(
                _close_later(client, client.target.timeout)
            )
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)


async def _close_later(client: CanClient, delay: float) -> None:
    try:
        await asyncio.sleep(delay)
    finally:
        await client.aclose()
