"""Soak test: the exporter polling many groups fast against a flapping simulator, for minutes.

Run by hand, not by CI (see bench/README.md):

    .venv/bin/python bench/soak.py --duration 60s --groups 100

It starts the CAN simulator (bench/soak-scenario.yml) and the exporter as real processes on free
127.0.0.1 ports, samples the exporter every --sample-every, and prints a table of the samples and
a summary: RSS growth, series count, poll rate, and how many hours of a 60 s poll interval the run
stands for. It judges nothing: the exit code is 0 unless a process died (then 1, with its log
tail) or the run was interrupted (130). Standard library and httpx only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

if not __package__:  # run as a plain script (bench/soak.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from exporter.config.durations import format_duration

SCENARIO_PATH = Path(__file__).with_name("soak-scenario.yml")
APIKEY = "soak-apikey"  # the scenario's; opens nothing but the simulator

STARTUP_TIMEOUT = 60.0
SCRAPE_TIMEOUT = 30.0
# While waiting for a process to answer 200: each request's timeout, and how often to ask.
READY_POLL = {"request_timeout": 2.0, "every": 0.1}
# Until every flapping group has been through its cycle (2 min at most) and its failure reasons
# have appeared as series, the series count still grows.
DEFAULT_WARMUP = 150.0
# The interval "compressed hours" are counted in: a production-like poll every 60 s.
REFERENCE_INTERVAL = 60.0

# One block of groups, repeated until --groups is reached: (target, plan names, per_plan).
# `missing_plan` is not in the scenario, so CAN answers "plan does not exist".
# Every group of the `flappy` target names flap_target_2m, so the whole target goes down together
# and its circuit opens.
GROUP_PATTERN: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("main", ("fresh_daily",), False),
    ("main", ("fresh_hourly",), False),
    ("main", ("fresh_seconds",), False),
    ("main", ("fresh_daily", "fresh_hourly"), False),
    ("main", ("fresh_daily", "fresh_seconds"), True),
    ("main", ("lagging_daily",), False),
    ("main", ("not_ready", "fresh_daily"), False),
    ("main", ("never_refreshed",), False),
    ("main", ("fresh_hourly", "fresh_seconds"), False),
    ("main", ("fresh_daily",), False),
    ("main", ("flap_503_20s",), False),
    ("main", ("flap_502_45s", "fresh_daily"), False),
    ("main", ("flap_reset_30s",), False),
    ("main", ("flap_hang_1m",), False),
    ("main", ("fresh_daily", "flap_gone_90s"), True),
    ("main", ("missing_plan",), False),
    ("main", ("slow_2s",), False),
    ("main", ("slowish_150ms",), False),
    ("flappy", ("flap_target_2m",), False),
    ("flappy", ("flap_target_2m", "fresh_daily"), False),
)

_SAMPLE_LINE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# --- flags -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Soak the exporter against the flapping CAN simulator and print its figures.",
    )
    parser.add_argument(
        "--groups", type=common.positive_int, default=200, help="default: %(default)s"
    )
    parser.add_argument("--interval", type=common.duration_arg, default=1.0, help="default: 1s")
    parser.add_argument("--timeout", type=common.duration_arg, default=0.5, help="default: 0.5s")
    parser.add_argument("--max-backoff", type=common.duration_arg, default=5.0, help="default: 5s")
    parser.add_argument("--duration", type=common.duration_arg, default=600.0, help="default: 10m")
    parser.add_argument(
        "--sample-every", type=common.duration_arg, default=10.0, help="default: 10s"
    )
    parser.add_argument(
        "--warmup",
        type=common.duration_arg,
        default=None,
        help="samples before this (since the exporter started) are left out of the RSS and "
        "series figures; default: the longest flap cycle plus backoff, 150s, but at most half "
        "of --duration",
    )
    parser.add_argument(
        "--max-concurrency",
        type=common.positive_int,
        default=16,
        help="per target; default: %(default)s",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warn", "error"),
        default="info",
        help="the exporter's log level (default: %(default)s)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (config and logs)"
    )
    return parser


# --- configuration ---------------------------------------------------------------------------


def group_layout(groups: int) -> list[tuple[str, tuple[str, ...], bool]]:
    return [GROUP_PATTERN[index % len(GROUP_PATTERN)] for index in range(groups)]


def write_config(path: Path, simulator_url: str, args: argparse.Namespace) -> None:
    common.write_exporter_config(
        path,
        written_by="bench/soak.py",
        apikey=APIKEY,
        defaults={
            "interval": format_duration(args.interval),
            "timeout": format_duration(args.timeout),
            "max_backoff": format_duration(args.max_backoff),
        },
        targets=["main", "flappy"],
        url=simulator_url,
        max_concurrency=args.max_concurrency,
        groups=group_layout(args.groups),
    )


# --- sampling --------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # seconds since the exporter was started
    rss_bytes: int
    cpu_seconds: float  # user + system, cumulative
    open_fds: int
    series: int  # sample lines on /metrics
    body_bytes: int
    scrape_seconds: float
    polls: float  # sum of aloudata_can_poll_duration_seconds_count
    errors: dict[str, float] = field(default_factory=dict)  # by reason, summed over groups
    requests: float | None = None  # sum of aloudata_can_target_requests_total
    failing_groups: int = 0  # aloudata_can_poll_success == 0
    circuits_open: int = 0

    @property
    def errors_total(self) -> float:
        return sum(self.errors.values())


@dataclass
class Outcome:
    """What a run gathered, kept when it ends early."""

    samples: list[Sample] = field(default_factory=list)
    peak_rss_bytes: int | None = None  # the exporter's VmHWM just before it was stopped


def count_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def parse_samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE_LINE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        yield name, dict(_LABEL.findall(labels or "")), float(value)


def take_sample(exporter: common.Child, client: httpx.Client, t: float) -> Sample:
    started = time.perf_counter()
    response = client.get(exporter.url + "/metrics", timeout=SCRAPE_TIMEOUT)
    text = response.text
    scrape_seconds = time.perf_counter() - started
    response.raise_for_status()
    sample = Sample(
        t=t,
        rss_bytes=common.read_status_kib(exporter.pid, "VmRSS") * 1024,
        cpu_seconds=common.read_cpu_seconds(exporter.pid),
        open_fds=count_fds(exporter.pid),
        series=0,
        body_bytes=len(response.content),
        scrape_seconds=scrape_seconds,
        polls=0.0,
    )
    for name, labels, value in parse_samples(text):
        sample.series += 1
        if name == "aloudata_can_poll_duration_seconds_count":
            sample.polls += value
        elif name == "aloudata_can_poll_errors_total":
            reason = labels.get("reason", "?")
            sample.errors[reason] = sample.errors.get(reason, 0.0) + value
        elif name == "aloudata_can_target_requests_total":
            sample.requests = (sample.requests or 0.0) + value
        elif name == "aloudata_can_poll_success" and value == 0:
            sample.failing_groups += 1
        elif name == "aloudata_can_target_circuit_open" and value == 1:
            sample.circuits_open += 1
    return sample


# --- report ----------------------------------------------------------------------------------


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per hour."""
    if len(points) < 2:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return covariance / spread * 3600


def print_table(samples: Sequence[Sample], out: IO[str]) -> None:
    reasons = sorted({reason for sample in samples for reason in sample.errors})
    headers = [
        "t s",
        "RSS MiB",
        "CPU %",
        "fds",
        "series",
        "scrape ms",
        "polls",
        "polls/s",
        "failing",
        "circuits",
        "requests",
        *reasons,
    ]
    rows: list[list[str]] = []
    previous: Sample | None = None
    for sample in samples:
        if previous is None:
            cpu = rate = "-"
        else:
            elapsed = sample.t - previous.t
            cpu = f"{100 * (sample.cpu_seconds - previous.cpu_seconds) / elapsed:.0f}"
            rate = f"{(sample.polls - previous.polls) / elapsed:.1f}"
        rows.append(
            [
                f"{sample.t:.0f}",
                f"{sample.rss_bytes / common.MIB:.1f}",
                cpu,
                str(sample.open_fds),
                str(sample.series),
                f"{sample.scrape_seconds * 1000:.0f}",
                f"{sample.polls:.0f}",
                rate,
                str(sample.failing_groups),
                str(sample.circuits_open),
                "-" if sample.requests is None else f"{sample.requests:.0f}",
                *(f"{sample.errors.get(reason, 0):.0f}" for reason in reasons),
            ]
        )
        previous = sample
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print(
            "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)), file=out
        )


def print_summary(
    outcome: Outcome, args: argparse.Namespace, exporter_log: Path, out: IO[str]
) -> None:
    def line(label: str, value: str) -> None:
        print(f"  {label:<34} {value}", file=out)

    samples = outcome.samples
    warm = [sample for sample in samples if sample.t >= args.warmup] or list(samples[-1:])
    first, last = warm[0], samples[-1]
    expected_rate = args.groups / args.interval
    print(file=out)
    print("Summary", file=out)
    line("groups / interval / timeout", f"{args.groups} / {args.interval:g}s / {args.timeout:g}s")
    line("run (since exporter start)", f"{last.t:.0f} s, {len(samples)} samples")
    slope = slope_per_hour([(s.t, s.rss_bytes / common.MIB) for s in warm])
    line(
        f"RSS after warm-up ({args.warmup:g}s) -> last",
        f"{first.rss_bytes / common.MIB:.1f} MiB at {first.t:.0f}s -> "
        f"{last.rss_bytes / common.MIB:.1f} MiB "
        f"({(last.rss_bytes - first.rss_bytes) / common.MIB:+.1f} MiB)",
    )
    line(
        "RSS slope (least squares)",
        "n/a (fewer than 2 samples after warm-up)" if slope is None else f"{slope:+.2f} MiB/h",
    )
    # Each scrape allocates and frees about a megabyte, so single samples zigzag: the lowest
    # sample of the first and of the last third show the baseline better.
    third = len(warm) // 3
    if third >= 1:
        early = min(sample.rss_bytes for sample in warm[:third]) / common.MIB
        late = min(sample.rss_bytes for sample in warm[-third:]) / common.MIB
        line(
            "RSS floor, first -> last third",
            f"{early:.1f} -> {late:.1f} MiB ({late - early:+.1f} MiB)",
        )
    if outcome.peak_rss_bytes is not None:
        line("RSS peak (VmHWM)", f"{outcome.peak_rss_bytes / common.MIB:.1f} MiB")
    series = [sample.series for sample in warm]
    line("series after warm-up min / max", f"{min(series)} / {max(series)}")
    all_series = [sample.series for sample in samples]
    line("series whole run min / max", f"{min(all_series)} / {max(all_series)}")
    scrapes = [sample.scrape_seconds * 1000 for sample in samples]
    line(
        "scrape ms median / max",
        f"{statistics.median(scrapes):.0f} / {max(scrapes):.0f} ({last.body_bytes / 1024:.0f} KiB)",
    )
    if last.t > first.t and first is not last:
        cpu = 100 * (last.cpu_seconds - first.cpu_seconds) / (last.t - first.t)
        line("exporter CPU after warm-up", f"{cpu:.0f} % of one core")
    line("open fds first / last", f"{samples[0].open_fds} / {last.open_fds}")
    rate = last.polls / last.t if last.t > 0 else 0.0
    line(
        "polls / polls per second",
        f"{last.polls:.0f} / {rate:.1f} (all on schedule would be {expected_rate:.1f})",
    )
    compressed = last.polls / (args.groups * 3600 / REFERENCE_INTERVAL)
    line("compressed hours (60 s interval)", f"{compressed:.2f} h")
    if last.requests is not None:
        line("requests to CAN (incl. retries)", f"{last.requests:.0f}")
    line(
        "poll errors",
        f"{last.errors_total:.0f} ({common.share(last.errors_total, last.polls, ' of polls')})",
    )
    for reason, count in sorted(last.errors.items(), key=lambda item: -item[1]):
        line(f"  {reason}", f"{count:.0f}")
    opened = _count_lines(exporter_log, "circuit open")
    closed = _count_lines(exporter_log, "circuit closed")
    line("circuit opened / closed (log)", f"{opened} / {closed}")


def _count_lines(path: Path, needle: str) -> int:
    with path.open(errors="replace") as lines:
        return sum(needle in line for line in lines)


# --- run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path, outcome: Outcome) -> None:
    """Start both processes, sample until --duration, stop them; samples go to `outcome`."""
    children: list[common.Child] = []
    exporter: common.Child | None = None
    try:
        simulator = common.Child(
            "simulator",
            "exporter.simulator",
            ["--scenario", str(SCENARIO_PATH), "--log.level", "warn"],
            workdir / "simulator.log",
        )
        children.append(simulator)
        simulator.wait_until_ok("/-/healthy", STARTUP_TIMEOUT, **READY_POLL)
        config_path = workdir / "exporter.yml"
        write_config(config_path, simulator.url, args)
        started = time.monotonic()
        exporter = common.Child(
            "exporter",
            "exporter",
            ["--config.file", str(config_path), "--log.level", args.log_level],
            workdir / "exporter.log",
        )
        children.append(exporter)
        exporter.wait_until_ok("/readyz", STARTUP_TIMEOUT, **READY_POLL)
        _progress(f"exporter ready after {time.monotonic() - started:.1f}s; sampling")
        with httpx.Client() as client:
            next_at = time.monotonic()
            while True:
                for child in children:
                    child.check_alive()
                sample = take_sample(exporter, client, time.monotonic() - started)
                outcome.samples.append(sample)
                _progress(
                    f"t={sample.t:5.0f}s rss={sample.rss_bytes / common.MIB:6.1f}MiB "
                    f"series={sample.series} scrape={sample.scrape_seconds * 1000:.0f}ms "
                    f"polls={sample.polls:.0f} errors={sample.errors_total:.0f}"
                )
                if sample.t >= args.duration:
                    break
                next_at += args.sample_every
                _sleep_while_alive(next_at, children)
    finally:
        if exporter is not None and exporter.popen.poll() is None:
            with contextlib.suppress(OSError, LookupError):
                outcome.peak_rss_bytes = common.read_status_kib(exporter.pid, "VmHWM") * 1024
        for child in reversed(children):
            child.stop()


def _sleep_while_alive(until: float, children: Sequence[common.Child]) -> None:
    while (left := until - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))
        for child in children:
            child.check_alive()


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.warmup is None:
        args.warmup = min(DEFAULT_WARMUP, args.duration / 2)
    # SIGTERM takes the same path as Ctrl-C, so that the children are stopped too.
    signal.signal(signal.SIGTERM, common.interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="aloudata-can-soak-"))
    _progress(
        f"soak: {args.groups} groups every {args.interval:g}s for {args.duration:g}s; "
        f"work directory {workdir}"
    )
    outcome = Outcome()
    code = common.exit_code("soak", lambda: run(args, workdir, outcome))
    if outcome.samples:
        print_table(outcome.samples, sys.stdout)
        print_summary(outcome, args, workdir / "exporter.log", sys.stdout)
    common.keep_or_remove("soak", workdir, keep=args.keep or code == 1)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
