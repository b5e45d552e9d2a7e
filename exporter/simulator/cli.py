"""Command line entry point: `aloudata-can-simulator` / `python -m exporter.simulator`."""

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter.listen import parse_listen_address
from exporter.logs import LEVELS
from exporter.simulator.scenario import (
    DEMO_SCENARIO_PATH,
    Scenario,
    ScenarioError,
    load_scenario,
)
from exporter.simulator.server import start_simulator

_log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGTERM or SIGINT; return the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        host, port = _parse_listen_address(args.listen_address)
    except ValueError as exc:
        parser.error(f"--web.listen-address: {exc}")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(f"scenario error: {problem}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=LEVELS[args.log_level],
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(_serve(scenario, host=host, port=port))
    except OSError as exc:
        print(f"startup error: cannot listen on {args.listen_address}: {exc}", file=sys.stderr)
        return 1
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aloudata-can-simulator",
        description="Fake Aloudata CAN server answering latestTime requests from a scenario file.",
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        default=DEMO_SCENARIO_PATH,
        metavar="PATH",
        help="scenario YAML file (default: the bundled demo scenario)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free port (default: %(default)s)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=sorted(LEVELS),
        default="info",
        help="log level (default: %(default)s)",
    )
    return parser


def _parse_listen_address(address: str) -> tuple[str, int]:
    # Unlike the exporter, the simulator wants an explicit host: it is meant for loopback.
    try:
        parsed = parse_listen_address(address)
    except ValueError:
        parsed = None
    if parsed is None or parsed.host is None:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return parsed.host, parsed.port


async def _serve(scenario: Scenario, *, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    simulator = await start_simulator(scenario, host=host, port=port, access_log=True)
    try:
        print(f"simulator listening on {simulator.base_url}", file=sys.stderr, flush=True)
        _log.info("serving %d plans for tenant %s", len(scenario.plans), scenario.tenant_id)
        await stop.wait()
        _log.info("shutting down")
    finally:
        await simulator.close()
