"""Scale benchmark: poll cycle, scrape, memory and start-up at 1,000 and 10,000 groups.

Run by hand, not by CI (see bench/README.md, "Scale"):

    .venv/bin/python -m bench            # or .venv/bin/python bench/run.py; a few minutes
    .venv/bin/python -m bench --quick    # 1,000 groups only, one run, 10 scrapes

It starts the CAN simulator and the exporter as real processes on free 127.0.0.1 ports and prints
one table: every figure beside a reference measured in the same run, and the ratio between them.

- simulator floor: the simulator's own limit, a raw asyncio client (keep-alive HTTP/1.1 on C
  connections, no library) sending the same N requests; against the ideal cycle N*L/C;
- poll cycle: the exporter's first cycle, from its "exporter started" log line to its "every
  group has been polled once" line (when /readyz turns 200); against the ideal cycle;
- TCP connections the exporter opened during that cycle (the simulator's /-/stats); against C;
- CPU per poll: the exporter's user+sys time (/proc) over that cycle / N; against the raw
  client's CPU per request;
- scrape: median time of GET /metrics (text, gzip, and with Prometheus' own Accept header);
  against prometheus_client's generate_latest of the same samples held in plain Gauges (run in a
  child process of this script);
- ages at scrape time: a group's data lag between the first and last scrape against the clock;
- memory: (RSS after the first full cycle - RSS of an exporter with no groups) / N; against
  the same for plain Gauges holding the scraped samples;
- start-up: process start -> /readyz 200; against the ideal cycle.

The floor and the first cycle are run --repeat times per N (a fresh exporter each time); the
table shows the run with the median cycle, the notes under it every run.

It judges nothing by its exit code: 0, or 1 when a process died or never became ready (its log
tail is printed), or 130 when interrupted. Standard library, httpx and prometheus_client only;
--profile also needs py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

if not __package__:  # run as a plain script (bench/run.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    KIB,
    MIB,
    REPO_ROOT,
    TENANT_ID,
    Child,
    duration_arg,
    exit_code,
    interrupt,
    keep_or_remove,
    positive_int,
    read_cpu_seconds,
    read_status_kib,
    share,
    write_exporter_config,
)
from exporter.config.durations import format_duration

LATEST_TIME_PATH = "/anymetrics/api/v1/accelerate/latestTime"
# Issue 15's goals (on a maintained HTTP stack): the first cycle within this factor of the ideal
# N·L/C, at most this many TCP connections per unit of concurrency C for it, and start-up to
# /readyz within this factor of the ideal cycle.
CYCLE_GOAL = 1.35
CONNECTIONS_GOAL = 2
STARTUP_GOAL = 2.0
APIKEY = "bench-apikey"  # the generated scenario's; opens nothing but the simulator
TARGET = "can"
# Groups reuse this many plans (the simulator looks plans up by a linear scan).
PLANS = 20
# Long, so that after the first cycle's burst the groups' next polls are far apart (N per hour)
# and hardly load the scrapes.
INTERVAL = "1h"

STARTUP_TIMEOUT = 60.0
SCRAPE_TIMEOUT = 120.0
# After the first cycle, before RSS is read: polls in flight finish, the loop goes idle.
SETTLE_SECONDS = 1.0
# Each kind of scrape and the reference stop after this long once they have MIN_RUNS.
SCRAPE_BUDGET_SECONDS = 60.0
REFERENCE_BUDGET_SECONDS = 60.0
MIN_RUNS = 5
# The first and last text scrapes are at least this far apart (one more scrape if needed).
AGES_SPAN_SECONDS = 3.0

STARTED_MESSAGE = "exporter started"
READY_MESSAGE = "polled once"
# Prometheus 2.x's default scrape Accept header: OpenMetrics first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_HEADERS = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}

_T = TypeVar("_T")
_LOG_TS = re.compile(r"\bts=(\S+)")


# --- flags -----------------------------------------------------------------------------------


def _group_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 1000,10000, got {text!r}"
        ) from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("group counts must be at least 1")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the exporter's poll cycle, scrape, memory and start-up at scale "
        "against references taken in the same run, and print one table.",
    )
    parser.add_argument(
        "--groups",
        type=_group_counts,
        default=[1000, 10000],
        help="comma-separated group counts; scrape, memory and start-up use the largest "
        "(default: 1000,10000)",
    )
    parser.add_argument(
        "--latency", type=duration_arg, default=0.02, help="simulator latency (default: 20ms)"
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=50,
        help="the target's max_concurrency and the raw client's connections (default: 50)",
    )
    parser.add_argument(
        "--scrapes", type=positive_int, default=50, help="scrapes per kind (default: 50)"
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=3,
        help="floor and first cycle runs per N, each with a fresh exporter; the table shows "
        "the median (default: 3)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 groups only, one run and 10 scrapes per kind",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO_ROOT,
        help="directory whose `exporter` package is run, e.g. a checkout of another commit "
        "(default: this repository)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also run the exporter of another checkout (e.g. the commit before a change) in "
        "every run, just before this one, on the same config and simulator: its first cycle, "
        "CPU per poll, connections and start-up stand in the same table",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the measurements, profile the exporter with py-spy at the largest N (first "
        "cycle, then scrapes) and write collapsed stacks to DIR",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (configs, logs, bodies)"
    )
    # Internal: the reference, run in a child process so that its heap is its own.
    parser.add_argument("--reference-worker", type=Path, help=argparse.SUPPRESS)
    return parser


# --- processes -------------------------------------------------------------------------------


class LogFollower:
    """The complete lines a child has appended to its log since the last call."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self._partial = b""

    def new_lines(self) -> list[str]:
        data = self._partial + self._file.read()
        *lines, self._partial = data.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def close(self) -> None:
        self._file.close()


def log_time(line: str) -> float | None:
    """The Unix time of an exporter log line (logfmt ``ts=...Z`` or JSON ``"ts": ...``)."""
    match = _LOG_TS.search(line) or re.search(r'"ts":\s*"([^"]+)"', line)
    if match is None:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(match.group(1)).timestamp()
    return None


# --- generated files -------------------------------------------------------------------------


def plan_name(index: int) -> str:
    return f"p{index % PLANS:02d}"


def write_scenario(path: Path, latency: float) -> None:
    lines = [
        "# Written by bench/run.py: every plan answers after the same latency.",
        f'tenant_id: "{TENANT_ID}"',
        f"auth: {{type: APIKEY, value: {APIKEY}}}",
        "timezone: Asia/Shanghai",
        "plans:",
    ]
    for index in range(PLANS):
        lines += [
            f"  - id: b{index:031x}",
            f"    name: {plan_name(index)}",
            "    data_delay: 0s",
            "    refresh_every: 1h",
            "    refresh_offset: 5m",
            f"    faults: {{latency: {format_duration(latency)}}}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_config(path: Path, simulator_url: str, groups: int, concurrency: int) -> None:
    write_exporter_config(
        path,
        written_by="bench/run.py",
        apikey=APIKEY,
        defaults={"interval": INTERVAL},
        targets=[TARGET],
        url=simulator_url,
        max_concurrency=concurrency,
        groups=[(TARGET, [plan_name(index)], False) for index in range(groups)],
    )


# --- CPU accounting ------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds so far: the exporter's, the simulator's, this script's and the machine's."""

    exporter: float
    simulator: float
    own: float
    machine_busy: float  # every CPU, all processes (/proc/stat), steal left out
    steal: float

    @classmethod
    def take(cls, exporter: int | None, simulator: int) -> CpuMark:
        busy, steal = read_machine_cpu()
        return cls(
            exporter=read_cpu_seconds(exporter) if exporter is not None else 0.0,
            simulator=read_cpu_seconds(simulator),
            own=time.process_time(),
            machine_busy=busy,
            steal=steal,
        )

    def others_since(self, before: CpuMark) -> float:
        """CPU seconds other processes (not the exporter, simulator or this script) used."""
        ours = (
            (self.exporter - before.exporter)
            + (self.simulator - before.simulator)
            + (self.own - before.own)
        )
        return max(0.0, self.machine_busy - before.machine_busy - ours)


def read_machine_cpu() -> tuple[float, float]:
    """Busy and stolen CPU seconds of the whole machine, from the first line of /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


# --- the simulator's floor: a raw asyncio client ---------------------------------------------


@dataclass
class Floor:
    groups: int
    seconds: float
    cpu_per_request: float  # this process's CPU, the client's cost
    simulator_cpu: float  # the simulator's CPU seconds over the run
    others_cpu: float  # other processes on the machine, over the run
    errors: int


def _raw_request(host: str, port: int, plan: str) -> bytes:
    body = json.dumps({"planNameList": [plan]}).encode()
    head = (
        f"POST {LATEST_TIME_PATH} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"tenant-id: {TENANT_ID}\r\n"
        "auth-type: APIKEY\r\n"
        f"auth-value: {APIKEY}\r\n"
        "content-type: application/json\r\n"
        "accept: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def raw_cycle(host: str, port: int, groups: int, connections: int) -> int:
    """Send ``groups`` requests over ``connections`` keep-alive connections; returns errors."""
    requests = [_raw_request(host, port, plan_name(index)) for index in range(PLANS)]
    work = iter(range(groups))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in work:
                writer.write(requests[index % PLANS])
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                if head[9:12] != b"200" or b'"success":true' not in body.replace(b" ", b""):
                    errors += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(min(connections, groups))))
    return errors


def measure_floor(simulator: Child, groups: int, connections: int) -> Floor:
    before = CpuMark.take(None, simulator.pid)
    started = time.perf_counter()
    errors = asyncio.run(raw_cycle("127.0.0.1", simulator.port, groups, connections))
    seconds = time.perf_counter() - started
    after = CpuMark.take(None, simulator.pid)
    return Floor(
        groups=groups,
        seconds=seconds,
        cpu_per_request=(after.own - before.own) / groups,
        simulator_cpu=after.simulator - before.simulator,
        others_cpu=after.others_since(before),
        errors=errors,
    )


# --- the exporter's first cycle --------------------------------------------------------------


@dataclass
class Cycle:
    groups: int
    launched: float  # wall time just before the process was started
    started_at: float  # the "exporter started" log line
    ready_at: float  # the "polled once" log line (or the first /readyz 200, see ready_from_log)
    readyz_at: float  # the first /readyz 200 this script saw, after ready_at
    ready_from_log: bool
    cpu_startup: float  # exporter CPU seconds until "exporter started"
    cpu_cycle: float  # exporter CPU seconds from "exporter started" to ready
    simulator_cpu: float  # over the cycle
    others_cpu: float  # other processes on the machine, over the cycle
    steal: float  # CPU seconds the hypervisor took, over the cycle
    peak_rss_bytes: int  # VmHWM at ready
    rss_started_bytes: int  # VmRSS at "exporter started": config, jobs, no poll yet
    rss_bytes: int = 0  # SETTLE_SECONDS after ready
    polls_ok: int | None = None  # groups with poll_success 1 on the first scrape
    requests: float | None = None  # aloudata_can_target_requests_total on the first scrape
    # What the simulator served the exporter from launch to ready (its /-/stats).
    served_requests: int | None = None
    connections: int | None = None

    @property
    def seconds(self) -> float:
        return self.ready_at - self.started_at

    @property
    def to_ready(self) -> float:
        return self.ready_at - self.launched

    @property
    def to_started(self) -> float:
        return self.started_at - self.launched


def start_exporter(
    config: Path,
    log_path: Path,
    args: argparse.Namespace,
    wrap: Sequence[str] = (),
    source: Path | None = None,
) -> Child:
    """The exporter of ``source`` (default: --source) on ``config``."""
    return Child(
        "exporter",
        "exporter",
        ["--config.file", str(config), "--log.level", "info", "--log.format", "logfmt"],
        log_path,
        cwd=source or args.source,
        wrap=wrap,
    )


def watch_first_cycle(exporter: Child, simulator: Child, groups: int, timeout: float) -> Cycle:
    """Follow the exporter's log from its start until every group has been polled once.

    CPU times are read from /proc when this script sees a line, at most 10 ms after it was
    written (one clock tick). /readyz is asked once a second as a fallback, should the log
    lines change.
    """
    follower = LogFollower(exporter.log_path)
    started: tuple[float, CpuMark] | None = None
    rss_started = [0]
    deadline = time.monotonic() + timeout
    next_readyz = time.monotonic() + 1.0

    def cycle(ready_at: float, *, from_log: bool) -> Cycle:
        assert started is not None
        mark = CpuMark.take(exporter.pid, simulator.pid)
        started_at, before = started
        return Cycle(
            groups=groups,
            launched=exporter.started,
            started_at=started_at,
            ready_at=ready_at,
            readyz_at=exporter.wait_until_ok("/readyz", STARTUP_TIMEOUT),
            ready_from_log=from_log,
            cpu_startup=before.exporter,
            cpu_cycle=mark.exporter - before.exporter,
            simulator_cpu=mark.simulator - before.simulator,
            others_cpu=mark.others_since(before),
            steal=mark.steal - before.steal,
            peak_rss_bytes=read_status_kib(exporter.pid, "VmHWM") * KIB,
            rss_started_bytes=rss_started[0],
        )

    def ready_line() -> float | None:
        nonlocal started
        for line in follower.new_lines():
            if started is None and STARTED_MESSAGE in line:
                mark = CpuMark.take(exporter.pid, simulator.pid)
                started = (log_time(line) or time.time(), mark)
                rss_started[0] = read_status_kib(exporter.pid, "VmRSS") * KIB
            elif started is not None and READY_MESSAGE in line:
                return log_time(line) or time.time()
        return None

    try:
        while time.monotonic() < deadline:
            exporter.check_alive()
            simulator.check_alive()
            ready_at = ready_line()
            if ready_at is not None:
                return cycle(ready_at, from_log=True)
            if started is not None and time.monotonic() >= next_readyz:
                next_readyz += 1.0
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(exporter.url + "/readyz", timeout=5.0).status_code == 200:
                        now = time.time()
                        time.sleep(0.05)  # the line may be on its way
                        ready_at = ready_line()
                        return cycle(ready_at or now, from_log=ready_at is not None)
            time.sleep(0.01)
    finally:
        follower.close()
    what = "its 'exporter started' line" if started is None else "ready"
    raise TimeoutError(f"exporter with {groups} groups: not {what} after {timeout:.0f}s")


def simulator_served(simulator: Child) -> tuple[int, int]:
    """latestTime requests the simulator has served, and the TCP connections they came on."""
    stats = httpx.get(simulator.url + "/-/stats", timeout=10.0).json()
    return int(stats["requests"]), int(stats["connections"])


def check_polls(cycle: Cycle, body: bytes) -> None:
    """Count the groups whose first poll succeeded and the requests sent, from a scrape."""
    ok = re.findall(rb"^aloudata_can_poll_success\{[^}]*\} 1(?:\.0)?$", body, re.MULTILINE)
    requests = re.findall(rb"^aloudata_can_target_requests_total\{[^}]*\} (\S+)$", body, re.M)
    cycle.polls_ok = len(ok)
    cycle.requests = sum(float(value) for value in requests) if requests else None


# --- scrapes ---------------------------------------------------------------------------------


@dataclass
class Scrapes:
    kind: str
    durations: list[float] = field(default_factory=list)
    body_bytes: int = 0  # as sent, compressed when gzip
    content_type: str = ""
    content_encoding: str = ""
    first: tuple[float, bytes] | None = None  # (mid-request wall time, body) of text scrapes
    last: tuple[float, bytes] | None = None
    peak_rss_bytes: int | None = None  # VmHWM over these scrapes, when it could be reset

    @property
    def median(self) -> float:
        return statistics.median(self.durations)


def scrape(
    client: httpx.Client, url: str, headers: dict[str, str]
) -> tuple[float, httpx.Response, bytes]:
    """One GET, timed to the last byte as sent (not decompressed)."""
    started = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        body = b"".join(response.iter_raw())
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response, body


def time_scrapes(
    client: httpx.Client, url: str, kind: str, headers: dict[str, str], count: int
) -> Scrapes:
    result = Scrapes(kind)
    budget_end = time.monotonic() + SCRAPE_BUDGET_SECONDS
    for index in range(count):
        wall = time.time()
        elapsed, response, body = scrape(client, url, headers)
        result.durations.append(elapsed)
        result.body_bytes = len(body)
        result.content_type = response.headers.get("content-type", "")
        result.content_encoding = response.headers.get("content-encoding", "")
        if kind == "text":
            mark = (wall + elapsed / 2, body)
            if index == 0:
                result.first = mark
            result.last = mark
        if index + 1 >= MIN_RUNS and time.monotonic() > budget_end:
            break
    if result.first is not None and result.last is not None:
        # Ages need a few seconds between two scrapes to be told from the scrapes' own length.
        wait = AGES_SPAN_SECONDS - (result.last[0] - result.first[0])
        if wait > 0:
            time.sleep(wait)
            wall = time.time()
            elapsed, _, body = scrape(client, url, headers)
            result.last = (wall + elapsed / 2, body)
    return result


def first_lag(body: bytes) -> float | None:
    """The data lag of the first group, g00000."""
    match = re.search(
        rb'^aloudata_can_data_lag_seconds\{[^}]*group="g00000"[^}]*\} (\S+)$', body, re.MULTILINE
    )
    return float(match.group(1)) if match else None


def count_samples(body: bytes) -> int:
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


# --- the reference: plain Gauges and generate_latest, in a child process ---------------------


def reference_worker(body_path: Path, groups: int, runs: int) -> dict[str, Any]:
    """Hold every sample of ``body_path`` in a plain Gauge child; time generate_latest."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest  # noqa: PLC0415
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    text = body_path.read_text(encoding="utf-8")
    families = list(text_string_to_metric_families(text))
    samples = [
        (sample.name, family.documentation, sample.labels, sample.value)
        for family in families
        for sample in family.samples
    ]
    gc.collect()
    rss_before = read_status_kib(os.getpid(), "VmRSS")
    registry = CollectorRegistry()
    gauges: dict[tuple[str, tuple[str, ...]], Gauge] = {}
    for name, documentation, labels, value in samples:
        key = (name, tuple(labels))
        gauge = gauges.get(key)
        if gauge is None:
            gauge = Gauge(name, documentation or name, key[1], registry=registry)
            gauges[key] = gauge
        (gauge.labels(*labels.values()) if labels else gauge).set(value)
    gc.collect()
    rss_after = read_status_kib(os.getpid(), "VmRSS")
    durations: list[float] = []
    output = b""
    budget_end = time.monotonic() + REFERENCE_BUDGET_SECONDS
    for _ in range(runs):
        started = time.perf_counter()
        output = generate_latest(registry)
        durations.append(time.perf_counter() - started)
        if len(durations) >= MIN_RUNS and time.monotonic() > budget_end:
            break
    gzip_started = time.perf_counter()
    compressed = gzip.compress(output)  # level 9, as prometheus_client's own server does
    return {
        "samples": len(samples),
        "durations": durations,
        "body_bytes": len(output),
        "gzip9_seconds": time.perf_counter() - gzip_started,
        "gzip9_bytes": len(compressed),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_group": (rss_after - rss_before) / groups,
    }


@dataclass
class Reference:
    samples: int
    durations: list[float]
    body_bytes: int
    gzip9_seconds: float
    gzip9_bytes: int
    rss_before_kib: int
    rss_after_kib: int
    kib_per_group: float

    @property
    def median(self) -> float:
        return statistics.median(self.durations)


def run_reference(body_path: Path, groups: int, runs: int) -> Reference:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--reference-worker",
        str(body_path),
        "--groups",
        str(groups),
        "--scrapes",
        str(runs),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"reference worker failed:\n{done.stderr}")
    return Reference(**json.loads(done.stdout))


# --- profiling (py-spy) ----------------------------------------------------------------------


def find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def summarize_profile(path: Path, top: int = 12) -> list[str]:
    """Top functions by own and by total samples, from py-spy's collapsed (raw) output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short_frame(frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if frame]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not _is_wrapper(frame):
                total[frame] += count
    if not samples:
        return [f"{path.name}: no samples"]
    lines = [f"{path.name}: {samples} samples; top by own time:"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("  top by total time (the function and what it calls; loop frames left out):")
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in total.most_common(top)]
    return lines


# Frames every stack passes through (the loop, the thread pool, the entry point): left out of
# the totals, where they would only say 100 %.
_WRAPPER_FILES = ("asyncio/", "<frozen", "threading.py", "futures/", "contextlib.py")
_WRAPPER_FRAMES = (
    "<module> (exporter/__main__.py)",
    "main (exporter/cli.py)",
    "_main (exporter/cli.py)",
    "run (exporter/daemon.py)",
    "_run (exporter/daemon.py)",
    "_serve (exporter/daemon.py)",
    "run_coroutine_job (executors/base.py)",
)


def _is_wrapper(frame: str) -> bool:
    _, _, where = frame.rpartition(" (")
    return any(marker in where for marker in _WRAPPER_FILES) or frame in _WRAPPER_FRAMES


def _short_frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"; thread/process frames kept.
    match = re.match(r"(.*) \((.*?):\d+\)$", frame.strip())
    if match is None:
        return frame.strip()
    name, file_name = match.groups()
    parts = Path(file_name).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else file_name
    return f"{name} ({short})"


def profile(
    args: argparse.Namespace, simulator: Child, workdir: Path, groups: int, out: Path
) -> list[str]:
    py_spy = find_py_spy()
    if py_spy is None:
        return ["profile: py-spy not found (pip install py-spy into the venv); skipped"]
    out.mkdir(parents=True, exist_ok=True)
    config = workdir / f"exporter-{groups}.yml"
    cycle_file = out / f"cycle-{groups}.txt"
    scrape_file = out / f"scrape-{groups}.txt"
    record = [py_spy, "record", "--format", "raw", "--rate", "100"]
    notes: list[str] = []
    # 1. start-up and first cycle: the exporter runs under py-spy until it is ready.
    exporter = start_exporter(
        config, workdir / "exporter-profile.log", args, wrap=[*record, "-o", str(cycle_file), "--"]
    )
    try:
        cycle = watch_first_cycle(exporter, simulator, groups, cycle_timeout(args, groups))
        notes.append(f"profile: under py-spy, first cycle {cycle.seconds:.2f} s")
    finally:
        exporter.stop()
    # 2. scrapes: py-spy attached to a fresh exporter while this script scrapes it.
    exporter = start_exporter(config, workdir / "exporter-profile-scrape.log", args)
    try:
        watch_first_cycle(exporter, simulator, groups, cycle_timeout(args, groups))
        spy = subprocess.Popen(
            [*record, "--pid", str(exporter.pid), "--duration", "20", "-o", str(scrape_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            with httpx.Client(timeout=SCRAPE_TIMEOUT) as client:
                deadline = time.monotonic() + 15.0
                while time.monotonic() < deadline:
                    scrape(client, exporter.url + "/metrics", {"Accept-Encoding": "identity"})
                    scrape(client, exporter.url + "/metrics", {"Accept-Encoding": "gzip"})
            spy.wait(60)
        finally:
            if spy.poll() is None:
                spy.terminate()
                spy.wait()
    finally:
        exporter.stop()
    for path in (cycle_file, scrape_file):
        if path.exists():
            notes += summarize_profile(path)
        else:
            notes.append(f"profile: {path} was not written")
    return notes


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Results:
    floors: dict[int, Floor] = field(default_factory=dict)  # the median of the runs
    cycles: dict[int, Cycle] = field(default_factory=dict)  # the run with the median cycle
    runs: dict[int, list[tuple[Floor, Cycle]]] = field(default_factory=dict)
    # --baseline: the other checkout's first cycles, and the run with the median cycle.
    baseline_runs: dict[int, list[Cycle]] = field(default_factory=dict)
    baseline_cycles: dict[int, Cycle] = field(default_factory=dict)
    empty_rss_bytes: int = 0
    scrapes: list[Scrapes] = field(default_factory=list)
    samples: int = 0
    peak_rss_bytes: int = 0  # VmHWM after the scrapes
    reference: Reference | None = None
    startup_parts: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)


def ideal_cycle(args: argparse.Namespace, groups: int) -> float:
    return float(groups * args.latency / args.concurrency)


def cycle_timeout(args: argparse.Namespace, groups: int) -> float:
    return max(STARTUP_TIMEOUT, 30 * ideal_cycle(args, groups))


def run(args: argparse.Namespace, workdir: Path, results: Results) -> None:
    children: list[Child] = []

    def started(child: Child) -> Child:
        children.append(child)
        return child

    try:
        scenario = workdir / "scenario.yml"
        write_scenario(scenario, args.latency)
        # This checkout's simulator, also with --source: every exporter meets the same server.
        simulator = started(
            Child(
                "simulator",
                "exporter.simulator",
                ["--scenario", str(scenario), "--log.level", "warn"],
                workdir / "simulator.log",
                cwd=REPO_ROOT,
            )
        )
        simulator.wait_until_ok("/-/healthy", STARTUP_TIMEOUT)
        measure_empty(args, simulator, workdir, results, started)
        for groups in args.groups:
            measure_groups(
                args,
                simulator=simulator,
                workdir=workdir,
                results=results,
                groups=groups,
                started=started,
            )
        if args.profile is not None:
            _progress(f"profiling the exporter at {args.groups[-1]} groups")
            results.profile = profile(args, simulator, workdir, args.groups[-1], args.profile)
    finally:
        for child in reversed(children):
            child.stop()


def measure_empty(
    args: argparse.Namespace,
    simulator: Child,
    workdir: Path,
    results: Results,
    started: Callable[[Child], Child],
) -> None:
    """An exporter with a target and no groups: RSS and time to /readyz (warms the imports)."""
    config = workdir / "exporter-0.yml"
    write_config(config, simulator.url, 0, args.concurrency)
    exporter = started(start_exporter(config, workdir / "exporter-0.log", args))
    try:
        ready = exporter.wait_until_ok("/readyz", STARTUP_TIMEOUT)
        time.sleep(SETTLE_SECONDS)
        results.empty_rss_bytes = read_status_kib(exporter.pid, "VmRSS") * KIB
        results.notes.append(
            f"no groups: /readyz 200 after {ready - exporter.started:.2f} s, "
            f"RSS {results.empty_rss_bytes / MIB:.1f} MiB"
        )
    finally:
        exporter.stop()
    _progress(f"no groups: RSS {results.empty_rss_bytes / MIB:.1f} MiB")


def measure_groups(
    args: argparse.Namespace,
    *,
    simulator: Child,
    workdir: Path,
    results: Results,
    groups: int,
    started: Callable[[Child], Child],
) -> None:
    """--repeat times the floor and a fresh exporter's first cycle; scrapes in the last one."""
    config = workdir / f"exporter-{groups}.yml"
    write_config(config, simulator.url, groups, args.concurrency)
    largest = groups == args.groups[-1]
    if largest:
        results.startup_parts = {
            "version": time_command(args, ["--version"]),
            "check": time_command(args, ["--config.file", str(config), "--check-config"]),
        }
    runs: list[tuple[Floor, Cycle]] = []
    baseline_runs: list[Cycle] = []
    for index in range(args.repeat):
        floor = measure_floor(simulator, groups, args.concurrency)
        if args.baseline is not None:
            # Before this checkout's exporter in each run, so neither always goes first.
            baseline_runs.append(
                measure_baseline(
                    args, simulator, workdir=workdir, groups=groups, config=config, started=started
                )
            )
        exporter = started(start_exporter(config, workdir / f"exporter-{groups}.log", args))
        try:
            cycle = watch_served_cycle(args, exporter, simulator, groups)
            _progress(
                f"{groups} groups, run {index + 1}/{args.repeat}: floor {floor.seconds:.2f} s "
                f"(ideal {ideal_cycle(args, groups):.2f} s), cycle {cycle.seconds:.2f} s, ready "
                f"{cycle.to_ready:.2f} s after start, RSS {cycle.rss_bytes / MIB:.1f} MiB"
            )
            with httpx.Client(timeout=SCRAPE_TIMEOUT) as client:
                url = exporter.url + "/metrics"
                # As Prometheus asks: the text path holds more memory afterwards, and the
                # peak of Prometheus' own scrapes is measured first.
                _, _, raw = scrape(client, url, PROMETHEUS_HEADERS)
                body = gzip.decompress(raw)
                check_polls(cycle, body)
                if largest and index == args.repeat - 1:
                    (workdir / f"metrics-{groups}.txt").write_bytes(body)
                    results.samples = count_samples(body)
                    results.peak_rss_bytes = measure_scrapes(
                        args, client, url, results, exporter.pid
                    )
        finally:
            exporter.stop()
        runs.append((floor, cycle))
    results.runs[groups] = runs
    if baseline_runs:
        results.baseline_runs[groups] = baseline_runs
        results.baseline_cycles[groups] = _median_by(baseline_runs, lambda c: c.seconds)
    # The table shows the run whose cycle is the median, and the median floor.
    results.cycles[groups] = _median_by([cycle for _, cycle in runs], lambda c: c.seconds)
    results.floors[groups] = _median_by([floor for floor, _ in runs], lambda f: f.seconds)
    if largest:
        _progress(f"{groups} groups: reference (plain Gauges + generate_latest)")
        results.reference = run_reference(workdir / f"metrics-{groups}.txt", groups, args.scrapes)


def watch_served_cycle(
    args: argparse.Namespace, exporter: Child, simulator: Child, groups: int
) -> Cycle:
    """The exporter's first cycle (just launched), with what the simulator served it."""
    requests_before, connections_before = simulator_served(simulator)
    cycle = watch_first_cycle(exporter, simulator, groups, cycle_timeout(args, groups))
    requests_after, connections_after = simulator_served(simulator)
    cycle.served_requests = requests_after - requests_before
    cycle.connections = connections_after - connections_before
    time.sleep(SETTLE_SECONDS)
    cycle.rss_bytes = read_status_kib(exporter.pid, "VmRSS") * KIB
    return cycle


def measure_baseline(
    args: argparse.Namespace,
    simulator: Child,
    *,
    workdir: Path,
    groups: int,
    config: Path,
    started: Callable[[Child], Child],
) -> Cycle:
    """The --baseline checkout's exporter: its first cycle on the same config and simulator."""
    log_path = workdir / f"exporter-baseline-{groups}.log"
    exporter = started(start_exporter(config, log_path, args, source=args.baseline))
    try:
        cycle = watch_served_cycle(args, exporter, simulator, groups)
        with httpx.Client(timeout=SCRAPE_TIMEOUT) as client:
            _, _, raw = scrape(client, exporter.url + "/metrics", PROMETHEUS_HEADERS)
            check_polls(cycle, gzip.decompress(raw))
    finally:
        exporter.stop()
    _progress(
        f"{groups} groups, baseline: cycle {cycle.seconds:.2f} s, ready "
        f"{cycle.to_ready:.2f} s after start, "
        f"{cycle.cpu_cycle / groups * 1e6:,.0f} us CPU per poll"
    )
    return cycle


def _median_by(items: Sequence[_T], key: Callable[[_T], float]) -> _T:
    ordered = sorted(items, key=key)
    return ordered[(len(ordered) - 1) // 2]


def time_command(args: argparse.Namespace, exporter_args: Sequence[str]) -> float:
    """Wall time of ``python -m exporter ARGS`` run to its end."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "exporter", *exporter_args],
        cwd=args.source,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=STARTUP_TIMEOUT,
    )
    return time.perf_counter() - started


def measure_scrapes(
    args: argparse.Namespace, client: httpx.Client, url: str, results: Results, pid: int
) -> int:
    """Time each kind of scrape into ``results``; returns the peak RSS since the start."""
    peak = read_status_kib(pid, "VmHWM") * KIB
    # Prometheus' kind first: an identity scrape leaves the most memory held behind.
    kinds = (
        ("prometheus", PROMETHEUS_HEADERS),
        ("gzip", {"Accept-Encoding": "gzip"}),
        ("text", {"Accept-Encoding": "identity"}),
    )
    for kind, headers in kinds:
        reset = reset_peak_rss(pid)
        scrapes = time_scrapes(client, url, kind, headers, args.scrapes)
        kind_peak = read_status_kib(pid, "VmHWM") * KIB
        peak = max(peak, kind_peak)
        if reset:
            scrapes.peak_rss_bytes = kind_peak
        results.scrapes.append(scrapes)
        _progress(
            f"scrape {kind}: median {scrapes.median * 1000:.0f} ms of {len(scrapes.durations)}, "
            f"{scrapes.body_bytes / MIB:.2f} MiB"
        )
    return peak


def reset_peak_rss(pid: int) -> bool:
    """Set the process's VmHWM back to its RSS now (Linux 4.0+); False where that is refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- report ----------------------------------------------------------------------------------


@dataclass
class Row:
    measurement: str
    groups: int
    measured: str
    reference: str
    ratio: float | None
    goal: str = "-"
    met: bool | None = None


def build_rows(args: argparse.Namespace, results: Results) -> list[Row]:
    rows: list[Row] = []
    for groups in args.groups:
        ideal = ideal_cycle(args, groups)
        floor = results.floors.get(groups)
        cycle = results.cycles.get(groups)
        if floor is not None:
            rows.append(
                Row(
                    "simulator floor (raw asyncio client)",
                    groups,
                    f"{floor.seconds:.2f} s",
                    f"ideal {ideal:.2f} s",
                    floor.seconds / ideal,
                )
            )
        if cycle is not None:
            rows += cycle_rows(args, cycle, floor)
        baseline = results.baseline_cycles.get(groups)
        if baseline is not None:
            rows += cycle_rows(args, baseline, floor, of=" - baseline")
    rows += scrape_rows(args, results)
    rows += memory_and_startup_rows(args, results)
    return rows


def cycle_rows(
    args: argparse.Namespace, cycle: Cycle, floor: Floor | None, of: str = ""
) -> list[Row]:
    """The first cycle against its goals; ``of`` names whose (--baseline's) it is."""
    groups = cycle.groups
    ideal = ideal_cycle(args, groups)
    ratio = cycle.seconds / ideal
    rows = [
        Row(
            f"poll cycle (first, a burst){of}",
            groups,
            f"{cycle.seconds:.2f} s",
            f"ideal {ideal:.2f} s",
            ratio,
            f"<= {CYCLE_GOAL}x",
            ratio <= CYCLE_GOAL,
        )
    ]
    if cycle.connections is not None:
        limit = CONNECTIONS_GOAL * args.concurrency
        rows.append(
            Row(
                f"TCP connections opened (first cycle){of}",
                groups,
                f"{cycle.connections:,}",
                f"C = {args.concurrency}",
                cycle.connections / args.concurrency,
                f"<= {CONNECTIONS_GOAL}x C ({limit})",
                cycle.connections <= limit,
            )
        )
    if floor is not None:
        per_poll = cycle.cpu_cycle / groups
        rows.append(
            Row(
                f"CPU per poll (exporter user+sys){of}",
                groups,
                f"{per_poll * 1e6:,.0f} us",
                f"raw client {floor.cpu_per_request * 1e6:,.0f} us",
                per_poll / floor.cpu_per_request,
            )
        )
    return rows


def startup_row(args: argparse.Namespace, cycle: Cycle, of: str = "") -> Row:
    ideal = ideal_cycle(args, cycle.groups)
    return Row(
        f"start-up: process start -> /readyz 200{of}",
        cycle.groups,
        f"{cycle.to_ready:.2f} s",
        f"ideal cycle {ideal:.2f} s",
        cycle.to_ready / ideal,
        f"<= {STARTUP_GOAL:g}x",
        cycle.to_ready / ideal <= STARTUP_GOAL,
    )


def scrape_rows(args: argparse.Namespace, results: Results) -> list[Row]:
    reference = results.reference
    groups = args.groups[-1]
    if reference is None:
        return []
    ref = f"generate_latest {_ms(reference.median)} (median of {len(reference.durations)})"
    rows = []
    labels = {
        "text": "scrape /metrics, text",
        "gzip": "scrape /metrics, gzip",
        "prometheus": "scrape, Prometheus' Accept + gzip",
    }
    for scrapes in sorted(results.scrapes, key=lambda s: list(labels).index(s.kind)):
        ratio = scrapes.median / reference.median
        gzipped = scrapes.content_encoding == "gzip"
        served = f"{_size(scrapes.body_bytes)}{' gzip' if gzipped else ''}"
        if scrapes.kind == "prometheus":
            served += f", {_format_name(scrapes.content_type)}"
        goal = "<= 1x" + (", gzip" if scrapes.kind != "text" else "")
        met = ratio <= 1.0 and (gzipped or scrapes.kind == "text")
        rows.append(
            Row(
                f"{labels[scrapes.kind]} (median of {len(scrapes.durations)})",
                groups,
                f"{_ms(scrapes.median)}, {served}",
                ref,
                ratio,
                goal,
                met,
            )
        )
    text = next((s for s in results.scrapes if s.kind == "text"), None)
    if text is not None and text.first is not None and text.last is not None:
        rows.append(ages_row(text.first, text.last, text.durations, groups))
    return rows


def ages_row(
    first: tuple[float, bytes], last: tuple[float, bytes], durations: Sequence[float], groups: int
) -> Row:
    lag_first, lag_last = first_lag(first[1]), first_lag(last[1])
    wall = last[0] - first[0]
    if lag_first is None or lag_last is None or wall <= 0:
        return Row("ages computed at scrape time", groups, "no data_lag for g00000", "-", None)
    grew = lag_last - lag_first
    # The lag is taken somewhere inside each request: allow one request's duration.
    slack = (durations[0] + durations[-1]) / 2 + 0.002
    return Row(
        "ages computed at scrape time",
        groups,
        f"lag +{grew:.2f} s",
        f"clock +{wall:.2f} s",
        grew / wall,
        f"= 1x (+-{slack / wall:.2f})",
        abs(grew - wall) <= slack,
    )


def memory_and_startup_rows(args: argparse.Namespace, results: Results) -> list[Row]:
    groups = args.groups[-1]
    cycle = results.cycles.get(groups)
    rows: list[Row] = []
    if cycle is None:
        return rows
    per_group = (cycle.rss_bytes - results.empty_rss_bytes) / groups / KIB
    reference = results.reference
    rows.append(
        Row(
            "memory per group (RSS after cycle - none)",
            groups,
            f"{per_group:.2f} KiB ({results.empty_rss_bytes / MIB:.0f} -> "
            f"{cycle.rss_bytes / MIB:.0f} MiB)",
            f"plain Gauges {reference.kib_per_group:.2f} KiB" if reference else "-",
            per_group / reference.kib_per_group if reference else None,
            "<= 4 KiB",
            per_group <= 4.0,
        )
    )
    rows.append(startup_row(args, cycle))
    baseline = results.baseline_cycles.get(groups)
    if baseline is not None:
        rows.append(startup_row(args, baseline, of=" - baseline"))
    return rows


def build_notes(args: argparse.Namespace, results: Results) -> list[str]:
    notes = []
    for groups in args.groups:
        floor = results.floors.get(groups)
        cycle = results.cycles.get(groups)
        if floor is not None:
            notes.append(
                f"{groups:,} groups, floor: simulator CPU "
                f"{share(floor.simulator_cpu, floor.seconds)} of a core, "
                f"client CPU {floor.cpu_per_request * 1e6:.0f} us/request, "
                f"{floor.errors} errors; other processes "
                f"{share(floor.others_cpu, floor.seconds)} of a core"
            )
            ideal = ideal_cycle(args, groups)
            if floor.seconds / ideal > CYCLE_GOAL:
                notes.append(
                    f"{groups:,} groups: the floor itself is {floor.seconds / ideal:.2f}x the "
                    f"ideal, above the {CYCLE_GOAL}x goal: no client meets the goal against "
                    "this simulator on this machine; read the cycle against the floor"
                )
        if cycle is not None:
            notes.append(cycle_note(cycle, floor))
        baseline_runs = results.baseline_runs.get(groups, [])
        if baseline_runs:
            notes.append(
                f"{groups:,} groups, baseline ({args.baseline}): cycle "
                f"{' / '.join(f'{c.seconds:.2f}' for c in baseline_runs)} s, CPU per poll "
                f"{' / '.join(f'{c.cpu_cycle / groups * 1e6:,.0f}' for c in baseline_runs)} us; "
                + cycle_note(results.baseline_cycles[groups], None)
            )
        runs = results.runs.get(groups, [])
        if len(runs) > 1:
            notes.append(
                f"{groups:,} groups, {len(runs)} runs: cycle "
                f"{' / '.join(f'{c.seconds:.2f}' for _, c in runs)} s, CPU per poll "
                f"{' / '.join(f'{c.cpu_cycle / groups * 1e6:,.0f}' for _, c in runs)} us, floor "
                f"{' / '.join(f'{f.seconds:.2f}' for f, _ in runs)} s; the table shows the run "
                "with the median cycle and the median floor"
            )
    parts = results.startup_parts
    if parts:
        notes.append(
            f"{args.groups[-1]:,} groups, start-up parts: imports (--version) "
            f"{parts['version']:.2f} s, imports + config load (--check-config) "
            f"{parts['check']:.2f} s, then jobs and listening until 'exporter started'"
        )
    if results.samples:
        notes.append(f"{args.groups[-1]:,} groups: {results.samples:,} samples on /metrics")
    if results.peak_rss_bytes:
        notes.append(f"peak RSS (VmHWM) after the scrapes: {results.peak_rss_bytes / MIB:.1f} MiB")
    peaks = [f"{s.kind} {s.peak_rss_bytes / MIB:.1f}" for s in results.scrapes if s.peak_rss_bytes]
    if peaks:
        notes.append(
            f"peak RSS (VmHWM) over each kind of scrape, from the RSS the one before left: "
            f"{' MiB, '.join(peaks)} MiB"
        )
    reference = results.reference
    if reference is not None:
        notes.append(
            f"reference: {reference.samples:,} samples, {_size(reference.body_bytes)}, one Gauge "
            f"child per sample; prometheus_client's own gzip (level 9) of it: "
            f"{_ms(reference.gzip9_seconds)}, {_size(reference.gzip9_bytes)}"
        )
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        notes.append(
            "PYTHONDONTWRITEBYTECODE is set: modules without a cached .pyc are compiled at "
            "every start"
        )
    return notes + results.notes


def cycle_note(cycle: Cycle, floor: Floor | None) -> str:
    ok = "?" if cycle.polls_ok is None else f"{cycle.polls_ok:,}"
    requests = "?" if cycle.requests is None else f"{cycle.requests:,.0f}"
    served = "?" if cycle.served_requests is None else f"{cycle.served_requests:,}"
    ready = "" if cycle.ready_from_log else " (ready seen on /readyz, not in the log)"
    return (
        f"{cycle.groups:,} groups, exporter: 'exporter started' {cycle.to_started:.2f} s after "
        f"launch ({cycle.cpu_startup:.2f} s CPU: imports, config, jobs); cycle "
        f"{cycle.seconds:.2f} s{_versus_floor(cycle, floor)}{ready} at "
        f"{share(cycle.cpu_cycle, cycle.seconds)} of a core (simulator "
        f"{share(cycle.simulator_cpu, cycle.seconds)}, other processes "
        f"{share(cycle.others_cpu, cycle.seconds)}, steal {share(cycle.steal, cycle.seconds)}); "
        f"/readyz 200 seen {cycle.readyz_at - cycle.launched:.2f} s after launch; first polls "
        f"ok {ok} of {cycle.groups:,}, requests sent {requests} (the simulator served "
        f"{served} on {cycle.connections} connections); RSS "
        f"{cycle.rss_started_bytes / MIB:.1f} MiB at 'exporter started' (config and jobs, no "
        f"poll yet), {cycle.rss_bytes / MIB:.1f} MiB after the cycle, peak "
        f"{cycle.peak_rss_bytes / MIB:.1f} MiB"
    )


def _versus_floor(cycle: Cycle, floor: Floor | None) -> str:
    return "" if floor is None else f" ({cycle.seconds / floor.seconds:.2f}x the floor)"


def _format_name(content_type: str) -> str:
    if content_type.startswith("application/openmetrics-text"):
        return "OpenMetrics"
    if content_type.startswith("text/plain"):
        return "text format"
    return content_type.split(";", maxsplit=1)[0]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def _size(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size / KIB:.0f} KiB"


def _cells(row: Row) -> list[str]:
    met = "-" if row.met is None else ("yes" if row.met else "NO")
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    return [row.measurement, f"{row.groups:,}", row.measured, row.reference, ratio, row.goal, met]


HEADERS = ["measurement", "N", "measured", "reference", "ratio", "goal", "met?"]


def print_table(rows: Sequence[Row], out: IO[str], *, markdown: bool) -> None:
    table = [HEADERS, *(_cells(row) for row in rows)]
    if markdown:
        print("| " + " | ".join(HEADERS) + " |", file=out)
        print("|" + "---|" * len(HEADERS), file=out)
        for cells in table[1:]:
            print("| " + " | ".join(cells) + " |", file=out)
        return
    widths = [max(len(cells[i]) for cells in table) for i in range(len(HEADERS))]
    for index, cells in enumerate(table):
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(cells, widths, strict=True)
            ).rstrip(),
            file=out,
        )
        if index == 0:
            print("  ".join("-" * width for width in widths), file=out)


def machine_line(
    args: argparse.Namespace, packages: Sequence[str] = ("prometheus-client", "httpx", "aiohttp")
) -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    source = f", exporter from {args.source}" if args.source is not None else ""
    if getattr(args, "baseline", None) is not None:
        source += f", baseline from {args.baseline}"
    return (
        f"machine: {model}, {usable} cores, Python {platform.python_version()}, {versions}, "
        f"Linux {platform.release()}; {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; "
        f"L = {args.latency * 1000:g} ms, C = {args.concurrency}{source}"
    )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def report(args: argparse.Namespace, results: Results, out: IO[str]) -> None:
    print(file=out)
    print(machine_line(args), file=out)
    print(file=out)
    print_table(build_rows(args, results), out, markdown=args.markdown)
    print(file=out)
    for note in build_notes(args, results):
        print(("- " if args.markdown else "  ") + note, file=out)
    if results.profile:
        print(file=out)
        print("```" if args.markdown else "profile (py-spy):", file=out)
        for line in results.profile:
            print(line, file=out)
        if args.markdown:
            print("```", file=out)


# --- main ------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.reference_worker is not None:
        result = reference_worker(args.reference_worker, args.groups[-1], args.scrapes)
        print(json.dumps(result))
        return 0
    if args.quick:
        args.groups = [1000]
        args.scrapes = min(args.scrapes, 10)
        args.repeat = 1
    args.source = args.source.resolve()
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="aloudata-can-bench-"))
    _progress(
        f"groups {','.join(map(str, args.groups))}, latency {args.latency * 1000:g} ms, "
        f"concurrency {args.concurrency}, {args.scrapes} scrapes; work directory {workdir}"
    )
    results = Results()
    began = time.monotonic()
    code = exit_code("bench", lambda: run(args, workdir, results), (TimeoutError, RuntimeError))
    report(args, results, sys.stdout)
    _progress(f"took {time.monotonic() - began:.0f} s")
    keep_or_remove("bench", workdir, keep=args.keep or code == 1)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
