"""HTTP clients side by side: N requests to a CAN answering after L, at most C in flight.

Run by hand (see bench/README.md, "Transports"):

    .venv/bin/python -m bench.transports                    # N = 10,000, L = 20 ms, C = 50
    .venv/bin/python -m bench.transports --source /tmp/old  # also another checkout's CanClient

It starts the CAN simulator (this checkout's, bench/run.py's scenario) on a free 127.0.0.1 port
and runs each client in a fresh child process (bench/http_clients.py), one after another: a raw
asyncio client (the floor), aiohttp alone, httpx on its own transport (10 clients of 5
connections), httpx over httpx-aiohttp's AiohttpTransport (one client, and the same transport
called without a client), and the exporter's own ``CanClient`` (this checkout's, and with
--source that of another checkout beside it). Per
client it prints the cycle against the ideal N·L/C, the client's CPU per request, and the TCP
connections the simulator accepted for it (its /-/stats). With --repeat, the rounds interleave
the clients and the table shows each one's median run.

Exit code 0, or 1 when the simulator died or a client failed, or 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

if not __package__:  # run as a plain script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    REPO_ROOT,
    Child,
    duration_arg,
    exit_code,
    interrupt,
    keep_or_remove,
    positive_int,
    read_cpu_seconds,
)
from bench.run import PLANS, machine_line, plan_name, raw_cycle, write_scenario

STARTUP_TIMEOUT = 60.0
WARM_UP_REQUESTS = 500
PACKAGES = ("httpx", "httpcore", "aiohttp", "httpx-aiohttp")
# Issue 15's goals for the exporter's client.
CYCLE_GOAL = 1.35
CONNECTIONS_GOAL = 2  # times C


@dataclass(frozen=True)
class Candidate:
    name: str  # as the table shows it
    client: str  # bench/http_clients.py's --client
    exporter: Path | None = None  # the checkout whose CanClient runs, for "canclient"

    @property
    def is_exporter(self) -> bool:
        return self.client == "canclient"


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    failures: int
    requests: int  # what the simulator served
    connections: int  # what the simulator accepted, for those requests
    simulator_cpu: float


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transports",
        description="HTTP clients side by side against the CAN simulator.",
    )
    parser.add_argument("--requests", type=positive_int, default=10_000, help="N (10000)")
    parser.add_argument("--latency", type=duration_arg, default=0.02, help="L (20ms)")
    parser.add_argument("--concurrency", type=positive_int, default=50, help="C (50)")
    parser.add_argument("--repeat", type=positive_int, default=1, help="rounds (1)")
    parser.add_argument(
        "--source",
        type=Path,
        help="another checkout whose CanClient runs too (e.g. from `git archive`)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser


def candidates(args: argparse.Namespace) -> list[Candidate]:
    found = [
        Candidate("raw asyncio, keep-alive (the floor)", "raw"),
        Candidate(f"aiohttp, TCPConnector(limit={args.concurrency})", "aiohttp"),
        Candidate(
            f"httpx, own transport, {max(1, args.concurrency // 5)} clients x Limits(5, 5)",
            "httpx",
        ),
        Candidate("httpx over AiohttpTransport, 1 client", "httpx-aiohttp"),
        Candidate("AiohttpTransport's handle_async_request, no client", "httpx-aiohttp-transport"),
        Candidate("CanClient, this checkout", "canclient", REPO_ROOT),
    ]
    if args.source is not None:
        found.append(Candidate(f"CanClient, {args.source}", "canclient", args.source))
    return found


def served(simulator: Child) -> tuple[int, int]:
    stats = httpx.get(simulator.url + "/-/stats", timeout=10.0).json()
    return int(stats["requests"]), int(stats["connections"])


def measure(args: argparse.Namespace, simulator: Child, candidate: Candidate) -> Run:
    command = [
        sys.executable,
        "-m",
        "bench.http_clients",
        "--client",
        candidate.client,
        "--port",
        str(simulator.port),
        "--requests",
        str(args.requests),
        "--concurrency",
        str(args.concurrency),
        "--plans",
        ",".join(plan_name(index) for index in range(PLANS)),
    ]
    if candidate.exporter is not None:
        command += ["--exporter", str(candidate.exporter)]
    requests_before, connections_before = served(simulator)
    simulator_cpu = read_cpu_seconds(simulator.pid)
    ideal = ideal_cycle(args)
    finished = subprocess.run(
        command,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=STARTUP_TIMEOUT + 30 * ideal,
    )
    simulator_cpu = read_cpu_seconds(simulator.pid) - simulator_cpu
    simulator.check_alive()
    if finished.returncode != 0:
        raise RuntimeError(f"{candidate.name} failed:\n{finished.stderr[-2000:]}")
    figures = json.loads(finished.stdout.splitlines()[-1])
    requests_after, connections_after = served(simulator)
    return Run(
        seconds=figures["seconds"],
        cpu_seconds=figures["cpu_seconds"],
        failures=int(figures["failures"]),
        requests=requests_after - requests_before,
        connections=connections_after - connections_before,
        simulator_cpu=simulator_cpu,
    )


def run(args: argparse.Namespace, workdir: Path, runs: dict[Candidate, list[Run]]) -> None:
    scenario = workdir / "scenario.yml"
    write_scenario(scenario, args.latency)
    # This checkout's simulator in every case, so that every client meets the same server.
    simulator = Child(
        "simulator",
        "exporter.simulator",
        ["--scenario", str(scenario), "--log.level", "warn"],
        workdir / "simulator.log",
        cwd=REPO_ROOT,
    )
    try:
        simulator.wait_until_ok("/-/healthy", STARTUP_TIMEOUT)
        # Untimed: the simulator's first answers pay for its warm-up.
        asyncio.run(raw_cycle("127.0.0.1", simulator.port, WARM_UP_REQUESTS, args.concurrency))
        for round_ in range(args.repeat):
            for candidate in candidates(args):
                result = measure(args, simulator, candidate)
                runs.setdefault(candidate, []).append(result)
                _progress(
                    f"round {round_ + 1}/{args.repeat}, {candidate.name}: {result.seconds:.2f} s, "
                    f"{result.cpu_seconds / args.requests * 1e6:,.0f} us CPU per request, "
                    f"{result.connections} connections, {result.failures} failures"
                )
    finally:
        simulator.stop()


def median_run(runs: Sequence[Run]) -> Run:
    ordered = sorted(runs, key=lambda run: run.seconds)
    return ordered[(len(ordered) - 1) // 2]


HEADERS = ["client", "cycle", "/ ideal", "CPU per request", "connections", "goals"]


def cells(args: argparse.Namespace, candidate: Candidate, run: Run) -> list[str]:
    ideal = ideal_cycle(args)
    cycle = run.seconds / ideal
    goals = "-"
    if candidate.is_exporter:
        limit = CONNECTIONS_GOAL * args.concurrency
        goals = (
            f"cycle <= {CYCLE_GOAL}x: {_met(cycle <= CYCLE_GOAL)}, "
            f"connections <= {limit}: {_met(run.connections <= limit)}"
        )
    return [
        candidate.name,
        f"{run.seconds:.2f} s",
        f"{cycle:.2f}x",
        f"{run.cpu_seconds / args.requests * 1e6:,.0f} us",
        f"{run.connections:,}",
        goals,
    ]


def _met(met: bool) -> str:
    return "yes" if met else "NO"


def ideal_cycle(args: argparse.Namespace) -> float:
    return float(args.requests * args.latency / args.concurrency)


def notes(args: argparse.Namespace, runs: dict[Candidate, list[Run]]) -> list[str]:
    lines = []
    for candidate, candidate_runs in runs.items():
        cycles = " / ".join(f"{run.seconds:.2f}" for run in candidate_runs)
        cpu = " / ".join(f"{run.cpu_seconds / args.requests * 1e6:,.0f}" for run in candidate_runs)
        run = median_run(candidate_runs)
        lines.append(
            f"{candidate.name}: cycles {cycles} s, CPU per request {cpu} us; the simulator "
            f"served {run.requests:,} requests ({run.failures} not a success) at "
            f"{100 * run.simulator_cpu / run.seconds:.0f} % of a core"
        )
    return lines


def report(args: argparse.Namespace, runs: dict[Candidate, list[Run]], out: IO[str]) -> None:
    print(file=out)
    print(machine_line(args, PACKAGES), file=out)
    print(file=out)
    table = [cells(args, candidate, median_run(found)) for candidate, found in runs.items()]
    print_table(HEADERS, table, out, markdown=args.markdown)
    print(file=out)
    for note in notes(args, runs):
        print(("- " if args.markdown else "  ") + note, file=out)


def print_table(
    headers: Sequence[str], table: Sequence[Sequence[str]], out: IO[str], *, markdown: bool
) -> None:
    if markdown:
        for cells in [headers, ["---"] * len(headers), *table]:
            print("| " + " | ".join(cells) + " |", file=out)
        return
    widths = [max(len(cells[i]) for cells in [headers, *table]) for i in range(len(headers))]
    for cells in [headers, ["-" * width for width in widths], *table]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        print(line.rstrip(), file=out)


def _progress(message: str) -> None:
    print(f"bench.transports: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.source is not None:
        args.source = args.source.resolve()
    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="aloudata-can-transports-"))
    runs: dict[Candidate, list[Run]] = {}
    began = time.monotonic()
    code = exit_code(
        "bench.transports", lambda: run(args, workdir, runs), (TimeoutError, RuntimeError)
    )
    report(args, runs, sys.stdout)
    _progress(f"took {time.monotonic() - began:.0f} s")
    keep_or_remove("bench.transports", workdir, keep=args.keep or code == 1)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
