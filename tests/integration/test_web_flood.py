"""Basic auth under a flood, and rate_limit, against the real exporter process on loopback.

The flood comes from 127.0.0.2 (Linux routes all of 127.0.0.0/8 to the loopback), the valid
scraper from 127.0.0.1: the exporter tells them apart by address, as it would a Prometheus
server and an attacker. CAN is a closed port polled once an hour, as in test_web_tls.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Protocol

import bcrypt
import httpx
import pytest

from tests.helpers.fakes import replace_file
from tests.integration.processes import Exporter, free_port, one_quiet_group_config

pytestmark = pytest.mark.integration

# Cost 10, as htpasswd -B and the README suggest: about 0.06 s a check on one core.
COST = 10
PROBE_PASSWORD = "probe-Pa55word-1"
SCRAPER_PASSWORD = "scraper-Pa55word-2"
PROBE_HASH = bcrypt.hashpw(PROBE_PASSWORD.encode(), bcrypt.gensalt(rounds=COST)).decode()
SCRAPER_HASH = bcrypt.hashpw(SCRAPER_PASSWORD.encode(), bcrypt.gensalt(rounds=COST)).decode()
USERS = f"""
basic_auth_users:
  probe: '{PROBE_HASH}'
  scraper: '{SCRAPER_HASH}'
"""
FLOOD_ADDRESS = "127.0.0.2"
FLOOD_CONCURRENCY = 200
# Bounds on the flood itself: it stops once the scraper is done, or at these.
FLOOD_MAX_REQUESTS = 50_000
FLOOD_MAX_SECONDS = 30.0
# The scraper starts once the flood has had this many answers (or after the wait below).
FLOOD_ANSWERS_FIRST = 200
FLOOD_HEAD_START_SECONDS = 5.0
FLOOD_NICENESS = 10
# Issue 15: a valid user's scrape still answers in under 1 s during the flood.
SCRAPE_BOUND_SECONDS = 1.0
RELOAD_CHECK_SECONDS = 1.2  # past the web config's once-a-second change check


class EventLike(Protocol):
    """threading.Event or multiprocessing's."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...


def start(tmp_path: Path, web_config: str, **client_options: object) -> Exporter:
    config = tmp_path / "exporter.yml"
    config.write_text(one_quiet_group_config(free_port()))
    replace_file(tmp_path / "web.yml", web_config)
    args = ["--config.file", str(config), "--web.config.file", str(tmp_path / "web.yml")]
    return Exporter([*args, "--log.level", "debug"], tmp_path, client_options=client_options)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Exporter]:
    # The readiness checks use "probe", so "scraper" is never checked before the flood.
    process = start(tmp_path, USERS, auth=("probe", PROBE_PASSWORD))
    yield process
    process.stop()


class Flood:
    """Wrong passwords for the scraper's own user name, each one new, from 127.0.0.2.

    Raw keep-alive connections with ready-made requests: cheap for the sender, as a real
    flood is, so the test's own CPU goes to the exporter rather than to an HTTP client.
    """

    def __init__(self, url: str, answered: EventLike, stop: EventLike) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.address = (host, int(port))
        self.statuses: Counter[int] = Counter()
        self.refusal_seconds: list[float] = []
        self.errors: list[str] = []
        self.answered = answered  # set once FLOOD_ANSWERS_FIRST answers came back
        self.stop = stop
        self._sent = 0

    async def run(self) -> None:
        deadline = time.monotonic() + FLOOD_MAX_SECONDS
        await asyncio.gather(*(self._worker(deadline) for _ in range(FLOOD_CONCURRENCY)))

    def _more(self, deadline: float) -> bool:
        return (
            not self.stop.is_set()
            and self._sent < FLOOD_MAX_REQUESTS
            and time.monotonic() < deadline
        )

    async def _worker(self, deadline: float) -> None:
        try:
            reader, writer = await asyncio.open_connection(
                *self.address, local_addr=(FLOOD_ADDRESS, 0)
            )
        except OSError as exc:
            self.errors.append(type(exc).__name__)
            return
        try:
            while self._more(deadline):
                self._sent += 1
                token = base64.b64encode(f"scraper:guess-{self._sent}".encode()).decode()
                started = time.monotonic()
                writer.write(
                    f"GET /metrics HTTP/1.1\r\nHost: flood\r\n"
                    f"Authorization: Basic {token}\r\n\r\n".encode()
                )
                status = await asyncio.wait_for(_read_response(reader), FLOOD_MAX_SECONDS)
                self.statuses[status] += 1
                if self.statuses.total() == FLOOD_ANSWERS_FIRST:
                    self.answered.set()
                if status == 429:
                    self.refusal_seconds.append(time.monotonic() - started)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            self.errors.append(type(exc).__name__)
        finally:
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    """The status of one HTTP/1.1 response, its body read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


FloodReport = tuple[dict[int, int], list[float], list[str]]


def _flood_process(
    url: str, answered: EventLike, stop: EventLike, report: Queue[FloodReport]
) -> None:
    """The flood in a process of its own, so that its event loop and the scraper's timing in
    the test's process do not wait on each other for the GIL; and at a lower CPU priority, as a
    real flood's sender runs on another machine, not on the exporter's cores."""
    os.nice(FLOOD_NICENESS)
    flood = Flood(url, answered, stop)
    asyncio.run(flood.run())
    report.put((dict(flood.statuses), flood.refusal_seconds, flood.errors))


def timed_scrape(url: str) -> tuple[int, float]:
    started = time.monotonic()
    response = httpx.get(
        f"{url}/metrics", auth=("scraper", SCRAPER_PASSWORD), timeout=FLOOD_MAX_SECONDS
    )
    return response.status_code, time.monotonic() - started


def test_a_valid_scraper_gets_through_a_flood_of_wrong_passwords(guarded: Exporter) -> None:
    context = multiprocessing.get_context("spawn")
    answered, stop = context.Event(), context.Event()
    report: Queue[FloodReport] = context.Queue()
    flooder = context.Process(target=_flood_process, args=(guarded.url, answered, stop, report))
    flooder.start()
    results: dict[str, tuple[int, float]] = {}
    try:
        answered.wait(FLOOD_HEAD_START_SECONDS)
        results["first, checked during the flood"] = timed_scrape(guarded.url)
        results["second, cached"] = timed_scrape(guarded.url)
    finally:
        stop.set()
        statuses, refusal_seconds, errors = report.get(timeout=FLOOD_MAX_SECONDS * 2)
        flooder.join(FLOOD_MAX_SECONDS)

    refusals = sorted(refusal_seconds) or [float("nan")]
    print(
        f"\nflood: {statuses}, errors {Counter(errors)}; 429 in "
        f"median {refusals[len(refusals) // 2] * 1000:.1f} ms, "
        f"p99 {refusals[int(len(refusals) * 0.99)] * 1000:.1f} ms; scrapes {results}"
    )
    for what in ("first, checked during the flood", "second, cached"):
        status, seconds = results[what]
        assert status == 200, what
        assert seconds < SCRAPE_BOUND_SECONDS, (what, seconds)
    assert errors == []
    assert set(statuses) <= {401, 429}
    assert statuses.get(429, 0) >= FLOOD_ANSWERS_FIRST // 2  # refused unchecked, at once
    assert statuses.get(401, 0) >= 1  # some wrong passwords were checked, and refused


def scrape_statuses(exporter: Exporter, count: int) -> list[int]:
    return [httpx.get(f"{exporter.url}/healthz", timeout=5.0).status_code for _ in range(count)]


def test_rate_limit_refuses_past_the_burst_and_follows_the_file(tmp_path: Path) -> None:
    # Room for the readiness checks first; then a small burst, written while it runs.
    process = start(tmp_path, "rate_limit: {interval: 1h, burst: 1000}\n")
    try:
        replace_file(tmp_path / "web.yml", "rate_limit: {interval: 1h, burst: 3}\n")
        time.sleep(RELOAD_CHECK_SECONDS)
        assert scrape_statuses(process, 4) == [200, 200, 200, 429]
        refused = httpx.get(f"{process.url}/metrics", timeout=5.0)
        assert refused.status_code == 429
        assert refused.text == "Too Many Requests\n"

        replace_file(tmp_path / "web.yml", "rate_limit: {interval: 1h, burst: 5}\n")
        time.sleep(RELOAD_CHECK_SECONDS)
        assert scrape_statuses(process, 6) == [200] * 5 + [429]

        replace_file(tmp_path / "web.yml", "rate_limit: {interval: 0}\n")
        time.sleep(RELOAD_CHECK_SECONDS)
        assert set(scrape_statuses(process, 20)) == {200}
    finally:
        process.stop()
    assert "web rate limit in force" in process.log()
