"""The HTTP clients bench/transports.py compares, each run in a child process of its own.

    python -m bench.http_clients --client NAME --port PORT --requests N --concurrency C \\
        --plans p00,p01,... [--exporter DIR]

sends N POSTs of the latestTime API (its headers, a JSON body naming one plan, the answer's JSON
parsed) to the simulator on 127.0.0.1:PORT, at most C in flight, connections opened inside the
timing, and prints one JSON line: wall seconds, this process's CPU seconds over the same span,
and how many answers were not a success. Nothing from ``exporter`` is imported before
``--exporter`` (another checkout) is put first on the path, so its ``CanClient`` is the one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

LATEST_TIME_PATH = "/anymetrics/api/v1/accelerate/latestTime"
TENANT_ID = "10001"  # the simulator scenarios'
APIKEY = "bench-apikey"  # bench/run.py's generated scenario's
HEADERS = {
    "tenant-id": TENANT_ID,
    "auth-type": "APIKEY",
    "auth-value": APIKEY,
    "content-type": "application/json",
    "accept": "application/json",
}
# httpx's own transport as PERFORMANCE.md found it best: small clients, keep-alive = connections.
HTTPX_CLIENT_CONNECTIONS = 5

# One request: the index of the plan it asks about -> whether the answer was a success.
Send = Callable[[int], Awaitable[bool]]


def _ok(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("success") is True


def _bodies(plans: Sequence[str]) -> list[bytes]:
    return [json.dumps({"planNameList": [plan]}).encode() for plan in plans]


async def _run_workers(send: Send, requests: int, concurrency: int, plans: int) -> int:
    """``concurrency`` workers share the ``requests``; returns the failures."""
    work: Iterator[int] = iter(range(requests))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for index in work:
            try:
                ok = await send(index % plans)
            except Exception:  # a failed request is counted, not fatal
                ok = False
            failures += not ok

    await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
    return failures


async def _aiohttp(url: str, plans: Sequence[str], requests: int, concurrency: int) -> int:
    bodies = _bodies(plans)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(plan: int) -> bool:
            async with session.post(url, data=bodies[plan], headers=HEADERS) as response:
                return _ok(await response.json())

        return await _run_workers(send, requests, concurrency, len(plans))


async def _httpx(url: str, plans: Sequence[str], requests: int, concurrency: int) -> int:
    bodies = _bodies(plans)
    size = HTTPX_CLIENT_CONNECTIONS
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    clients = [httpx.AsyncClient(limits=limits) for _ in range(max(1, concurrency // size))]
    turn = 0

    async def send(plan: int) -> bool:
        nonlocal turn
        turn += 1
        client = clients[turn % len(clients)]
        response = await client.post(url, content=bodies[plan], headers=HEADERS)
        return _ok(response.json())

    try:
        return await _run_workers(send, requests, concurrency, len(plans))
    finally:
        for client in clients:
            await client.aclose()


async def _httpx_aiohttp(url: str, plans: Sequence[str], requests: int, concurrency: int) -> int:
    bodies = _bodies(plans)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async with httpx.AsyncClient(transport=AiohttpTransport(client=session)) as client:

        async def send(plan: int) -> bool:
            response = await client.post(url, content=bodies[plan], headers=HEADERS)
            return _ok(response.json())

        return await _run_workers(send, requests, concurrency, len(plans))


async def _httpx_aiohttp_transport(
    url: str, plans: Sequence[str], requests: int, concurrency: int
) -> int:
    """The same transport, its public handle_async_request called without an AsyncClient."""
    bodies = _bodies(plans)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    transport = AiohttpTransport(client=session)

    async def send(plan: int) -> bool:
        request = httpx.Request("POST", url, content=bodies[plan], headers=HEADERS)
        response = await transport.handle_async_request(request)
        try:
            return _ok(json.loads(await response.aread()))
        finally:
            await response.aclose()

    try:
        return await _run_workers(send, requests, concurrency, len(plans))
    finally:
        await transport.aclose()


async def _can_client(base_url: str, plans: Sequence[str], requests: int, concurrency: int) -> int:
    # Imported here, from whichever checkout main() put first on the path.
    from exporter.can.client import CanClient  # noqa: PLC0415
    from exporter.config.load import parse_config  # noqa: PLC0415
    from exporter.config.model import PlanKey  # noqa: PLC0415

    config = parse_config(
        f"""
targets:
  - name: can
    url: "{base_url}"
    tenant_id: "{TENANT_ID}"
    auth: {{type: APIKEY, value: {APIKEY}}}
    timezone: Asia/Shanghai
    max_concurrency: {concurrency}
groups:
  - {{name: g, target: can, plan_names: [{plans[0]}]}}
""",
        environ={},
    )
    client = CanClient(config.targets["can"])

    async def send(plan: int) -> bool:
        result = await client.poll(PlanKey.NAMES, [plans[plan]], 10.0)
        return result.error is None

    try:
        return await _run_workers(send, requests, concurrency, len(plans))
    finally:
        await client.aclose()


async def _raw(base_url: str, plans: Sequence[str], requests: int, concurrency: int) -> int:
    from bench.run import raw_cycle  # noqa: PLC0415 - it imports the exporter's package

    port = int(base_url.rsplit(":", 1)[1])
    return await raw_cycle("127.0.0.1", port, requests, concurrency)


Client = Callable[[str, Sequence[str], int, int], Awaitable[int]]
CLIENTS: dict[str, tuple[Client, bool]] = {
    # name -> (the client, whether it takes the API's URL rather than the base URL)
    "raw": (_raw, False),
    "aiohttp": (_aiohttp, True),
    "httpx": (_httpx, True),
    "httpx-aiohttp": (_httpx_aiohttp, True),
    "httpx-aiohttp-transport": (_httpx_aiohttp_transport, True),
    "canclient": (_can_client, False),
}


def measure(
    client: Client, url: str, plans: Sequence[str], requests: int, concurrency: int
) -> dict[str, float]:
    async def timed() -> tuple[float, float, int]:
        cpu, started = time.process_time(), time.perf_counter()
        failures = await client(url, plans, requests, concurrency)
        return time.perf_counter() - started, time.process_time() - cpu, failures

    seconds, cpu_seconds, failures = asyncio.run(timed())
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "failures": failures}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_clients")
    parser.add_argument("--client", choices=sorted(CLIENTS), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--plans", required=True, help="comma-separated plan names")
    parser.add_argument("--exporter", type=Path, help="the checkout whose CanClient runs")
    args = parser.parse_args(argv)
    if args.exporter is not None:
        sys.path.insert(0, str(args.exporter.resolve()))
    client, takes_api_url = CLIENTS[args.client]
    base_url = f"http://127.0.0.1:{args.port}"
    url = base_url + LATEST_TIME_PATH if takes_api_url else base_url
    figures = measure(client, url, args.plans.split(","), args.requests, args.concurrency)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
