"""Reload benchmark: scrape latency while a 10,000-group config reloads back to back.

Run by hand, not by CI (see bench/README.md, "Reloads"):

    .venv/bin/python bench/reload.py                                # 10,000 groups, 2 x 30 s
    .venv/bin/python bench/reload.py --groups 1000 --duration 10s   # a quick look

It starts the CAN simulator and the exporter (``--web.enable-lifecycle``) as real processes on
free 127.0.0.1 ports, waits for /readyz, then runs two phases of ``--duration`` each:

- idle: one client scrapes GET /metrics (Prometheus' Accept header, gzip) with a pause of
  ``--scrape-every`` between two scrapes, another GET /healthz with 10 ms between two;
- reloading: the same, while a third client sends POST /-/reload back to back. Before each
  reload the config file is swapped (os.replace) between two versions that differ in a default
  threshold, so every group changes and is applied again, and no poll becomes due.

It prints, per kind of request, the count, median, p99 and max latency of each phase side by
side, then the reloads done and their median and max duration, and the exporter's CPU share in
each phase. It judges nothing: 0, or 1 when a process died or never became ready, 130 when
interrupted. Standard library and httpx only.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

if not __package__:  # run as a plain script (bench/reload.py): make `bench` importable
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
    write_exporter_config,
)
from bench.run import APIKEY, PROMETHEUS_HEADERS, TARGET, plan_name, write_scenario

STARTUP_TIMEOUT = 120.0
HEALTHZ_EVERY = 0.01
REQUEST_TIMEOUT = 120.0  # a reload answers once it is done: up to the exporter's 60 s bound
# The two versions of the config differ in this default, so every group changes.
THRESHOLDS = ("{data_lag: {warning: 26h}}", "{data_lag: {warning: 27h}}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/reload.py",
        description="Scrape latency while the exporter reloads a big config back to back.",
    )
    parser.add_argument("--groups", type=positive_int, default=10_000, help="default: 10000")
    parser.add_argument(
        "--duration", type=duration_arg, default=30.0, help="each phase (default: 30s)"
    )
    parser.add_argument(
        "--scrape-every",
        type=duration_arg,
        default=1.0,
        help="pause between two GET /metrics (default: 1s)",
    )
    parser.add_argument(
        "--latency", type=duration_arg, default=0.02, help="CAN's answer time (default: 20ms)"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=50, help="max_concurrency (default: 50)"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO_ROOT,
        help="directory whose `exporter` package is run, e.g. a checkout of another commit "
        "(default: this repository)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the configs and logs")
    return parser


# --- measurements ----------------------------------------------------------------------------


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    failures: int = 0

    def row(self) -> list[str]:
        if not self.seconds:
            return ["0", "-", "-", "-"]
        ordered = sorted(self.seconds)
        p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
        cells = [_ms(statistics.median(ordered)), _ms(p99), _ms(ordered[-1])]
        failed = f" ({self.failures} failed)" if self.failures else ""
        return [f"{len(ordered)}{failed}", *cells]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Phase:
    metrics: Timings = field(default_factory=Timings)
    healthz: Timings = field(default_factory=Timings)
    reloads: Timings = field(default_factory=Timings)
    cpu_share: float = 0.0


def _repeat(
    until: threading.Event,
    request: Callable[[httpx.Client], httpx.Response],
    into: Timings,
    pause: float = 0.0,
) -> Callable[[], None]:
    def loop() -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
            while not until.wait(pause):
                started = time.perf_counter()
                try:
                    ok = request(client).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    into.seconds.append(time.perf_counter() - started)
                else:
                    into.failures += 1

    return loop


def measure(
    exporter: Child,
    duration: float,
    scrape_every: float,
    reload: Callable[[httpx.Client], httpx.Response] | None,
) -> Phase:
    phase = Phase()
    done = threading.Event()

    def metrics(client: httpx.Client) -> httpx.Response:
        # The body as sent (gzip): decoding it here would only compete with the exporter for
        # this machine's cores.
        with client.stream("GET", exporter.url + "/metrics", headers=PROMETHEUS_HEADERS) as got:
            for _ in got.iter_raw():
                pass
        return got

    def healthz(client: httpx.Client) -> httpx.Response:
        return client.get(exporter.url + "/healthz")

    loops = [
        _repeat(done, metrics, phase.metrics, pause=scrape_every),
        _repeat(done, healthz, phase.healthz, pause=HEALTHZ_EVERY),
    ]
    if reload is not None:
        loops.append(_repeat(done, reload, phase.reloads))
    threads = [threading.Thread(target=loop, daemon=True) for loop in loops]
    cpu_before, wall_before = read_cpu_seconds(exporter.pid), time.monotonic()
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            exporter.check_alive()
            time.sleep(0.2)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    wall = time.monotonic() - wall_before
    phase.cpu_share = (read_cpu_seconds(exporter.pid) - cpu_before) / wall
    return phase


# --- run -------------------------------------------------------------------------------------


def write_configs(workdir: Path, url: str, args: argparse.Namespace) -> list[Path]:
    versions = []
    for index, thresholds in enumerate(THRESHOLDS):
        path = workdir / f"exporter-{index}.yml"
        write_exporter_config(
            path,
            written_by="bench/reload.py",
            apikey=APIKEY,
            defaults={"interval": "1h", "thresholds": thresholds},
            targets=[TARGET],
            url=url,
            max_concurrency=args.concurrency,
            groups=[(TARGET, [plan_name(n)], False) for n in range(args.groups)],
        )
        versions.append(path)
    return versions


def run(args: argparse.Namespace, workdir: Path, phases: dict[str, Phase]) -> None:
    children: list[Child] = []
    try:
        scenario = workdir / "scenario.yml"
        write_scenario(scenario, args.latency)
        simulator = Child(
            "simulator",
            "exporter.simulator",
            ["--scenario", str(scenario), "--log.level", "warn"],
            workdir / "simulator.log",
        )
        children.append(simulator)
        simulator.wait_until_ok("/-/healthy", STARTUP_TIMEOUT)
        versions = write_configs(workdir, simulator.url, args)
        config = workdir / "exporter.yml"
        shutil.copyfile(versions[0], config)
        exporter = Child(
            "exporter",
            "exporter",
            ["--config.file", str(config), "--web.enable-lifecycle", "--log.format", "logfmt"],
            workdir / "exporter.log",
            cwd=args.source.resolve(),
        )
        children.append(exporter)
        _progress(f"exporter starting with {args.groups} groups")
        exporter.wait_until_ok("/readyz", STARTUP_TIMEOUT, every=0.2)
        _progress(f"idle for {args.duration:g} s")
        phases["idle"] = measure(exporter, args.duration, args.scrape_every, None)
        reloads = 0

        def reload(client: httpx.Client) -> httpx.Response:
            nonlocal reloads
            reloads += 1
            staged = workdir / "exporter.yml.new"
            shutil.copyfile(versions[reloads % 2], staged)
            os.replace(staged, config)
            return client.post(exporter.url + "/-/reload")

        _progress(f"reloading back to back for {args.duration:g} s")
        phases["reloading"] = measure(exporter, args.duration, args.scrape_every, reload)
    finally:
        for child in reversed(children):
            child.stop()


def report(args: argparse.Namespace, phases: dict[str, Phase]) -> None:
    idle, busy = phases.get("idle"), phases.get("reloading")
    print(
        f"\n{args.groups} groups, {args.duration:g} s per phase, "
        f"a scrape every {args.scrape_every:g} s\n"
    )
    header = ["request", "phase", "count", "median", "p99", "max"]
    rows = [header]
    for kind in ("metrics", "healthz"):
        for name, phase in (("idle", idle), ("reloading", busy)):
            if phase is not None:
                path = "GET /metrics (gzip)" if kind == "metrics" else "GET /healthz"
                rows.append([path, name, *getattr(phase, kind).row()])
    if busy is not None:
        rows.append(["POST /-/reload", "reloading", *busy.reloads.row()])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for name, phase in (("idle", idle), ("reloading", busy)):
        if phase is not None:
            print(f"exporter CPU, {name}: {phase.cpu_share * 100:.0f} % of a core")


def _progress(message: str) -> None:
    print(f"bench/reload: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="aloudata-can-bench-reload-"))
    phases: dict[str, Phase] = {}
    code = exit_code("bench/reload", lambda: run(args, workdir, phases))
    report(args, phases)
    keep_or_remove("bench/reload", workdir, keep=args.keep or code == 1)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
