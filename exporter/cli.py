"""Command line: parse flags, load the config, wire the parts, run until a signal.

Exit codes: 0 ok, 1 config or start-up error (or a failed group under --once, or a missing or
unchecked plan under --check-config --live), 2 flag misuse.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import platform
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics
from pydantic import ValidationError

from exporter import __version__
from exporter.clock import Clock, SystemClock
from exporter.config import Config, ConfigError, load_config
from exporter.exposition import Exposition
from exporter.filewatch import FileWatcher
from exporter.livecheck import (
    ClientSetupError,
    check_plans,
    distinct_plans,
    exit_code,
    render_problems,
    summary,
)
from exporter.logs import FORMATS, LEVELS, LogSetup, setup_logging
from exporter.metrics import ExporterMetrics
from exporter.poller import Poller
from exporter.report import render_table
from exporter.settings import ENV_PREFIX, Settings, parse_listen_address
from exporter.sharding import UNSHARDED, Shard
from exporter.state import SnapshotStore
from exporter.web import WebApp, WebOptions
from exporter.webconfig import WebConfig, WebConfigError, load_web_config
from exporter.websecurity import WebSecurity
from exporter.yamlfile import format_location

log = logging.getLogger("exporter")

DEMO_CONFIG_PATH = Path(__file__).with_name("demo.yml")
_SHUTDOWN_GRACE_SECONDS = 5.0

# Flag -> Settings field; each field can also come from ALOUDATA_CAN_EXPORTER_<FIELD>.
_SETTINGS_FLAGS = {
    "config_file": "--config.file",
    "web_config_file": "--web.config.file",
    "web_listen_address": "--web.listen-address",
    "web_telemetry_path": "--web.telemetry-path",
    "web_enable_lifecycle": "--web.enable-lifecycle",
    "log_level": "--log.level",
    "log_format": "--log.format",
    "shard_index": "--shard.index",
    "shard_total": "--shard.total",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aloudata-can-exporter",
        description="Prometheus exporter for the freshness of Aloudata CAN accelerated data.",
        epilog=f"Every flag but the modes can also be set as {ENV_PREFIX}<NAME>, for example "
        f"{ENV_PREFIX}CONFIG_FILE or {ENV_PREFIX}WEB_LISTEN_ADDRESS; flags win.",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        help="YAML configuration file (default: exporter.yml)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config (YAML) that enables TLS and/or basic auth "
        "(default: none, plain HTTP)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="web_listen_address",
        metavar="ADDR",
        type=_listen_address,
        help="address to serve metrics on, host:port (default: :9873)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="web_telemetry_path",
        metavar="PATH",
        help="path under which to expose metrics (default: /metrics)",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="web_enable_lifecycle",
        action="store_const",
        const=True,
        help="enable config reload over HTTP (POST /-/reload)",
    )
    parser.add_argument(
        "--log.level", dest="log_level", choices=list(LEVELS), help="log level (default: info)"
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=list(FORMATS),
        help="log line format (default: logfmt)",
    )
    parser.add_argument(
        "--shard.index",
        dest="shard_index",
        metavar="N",
        type=int,
        help="this instance's shard, 0 to --shard.total - 1: it polls and exports only the "
        "groups whose CRC-32 of target/group modulo --shard.total is N (default: 0)",
    )
    parser.add_argument(
        "--shard.total",
        dest="shard_total",
        metavar="N",
        type=int,
        help="number of shards; every instance needs the same config and total (default: 1)",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit"
    )
    modes.add_argument(
        "--once",
        action="store_true",
        help="poll every group once, print a table and exit (1 if any group failed)",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="with --check-config: then ask CAN about every configured plan, one plan per "
        "request, and list the plans that are missing, not ready or could not be checked; "
        "exit 1 if any plan is missing or could not be checked (not ready alone exits 0)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run against the built-in CAN simulator with a bundled demo scenario",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


def _listen_address(text: str) -> str:
    try:
        parse_listen_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.live and not args.check_config:
        parser.error("argument --live: only valid with --check-config")  # exits 2
    if args.version:
        print(f"aloudata-can-exporter, version {__version__} (python {platform.python_version()})")
        return 0
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        for line in settings_error_lines(exc, args):
            print(line, file=sys.stderr)
        # A bad flag value is flag misuse; a bad environment variable is a configuration error.
        return 2 if _names_a_flag(exc, args) else 1
    log_setup = setup_logging(settings.log_level, settings.log_format)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        return asyncio.run(_run(args, settings, log_setup))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


def load_settings(args: argparse.Namespace) -> Settings:
    given = {name: getattr(args, name) for name in _SETTINGS_FLAGS}
    return Settings(**{name: value for name, value in given.items() if value is not None})


def settings_error_lines(exc: ValidationError, args: argparse.Namespace) -> list[str]:
    return [
        f"settings error: {_error_source(error['loc'], args)}: "
        + error["msg"].removeprefix("Value error, ")
        for error in exc.errors(include_input=False, include_url=False)
    ]


def _error_source(loc: tuple[int | str, ...], args: argparse.Namespace) -> str:
    """The flag the bad value came from, or else its environment variable."""
    name = format_location(loc)
    flag = _SETTINGS_FLAGS.get(name)
    if flag is not None and getattr(args, name, None) is not None:
        return flag
    return f"{ENV_PREFIX}{name.upper()}"


def _names_a_flag(exc: ValidationError, args: argparse.Namespace) -> bool:
    errors = exc.errors(include_input=False, include_url=False)
    return any(_error_source(error["loc"], args).startswith("--") for error in errors)


@dataclass
class ConfigSource:
    """Where the configuration comes from, so reloads read it the same way."""

    path: Path
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    shard: Shard = UNSHARDED

    def load_all(self) -> Config:
        """The whole file, every shard's groups."""
        # The load makes many small objects that all live on: the garbage collector's passes
        # over them were most of a 10,000-group load's time, and find nothing to free.
        gc.disable()
        try:
            return load_config(self.path, self.environ)
        finally:
            gc.enable()

    def load(self) -> Config:
        """This shard's part: what the exporter polls and exports."""
        return self.shard.select(self.load_all())


async def _run(args: argparse.Namespace, settings: Settings, log_setup: LogSetup) -> int:
    async with contextlib.AsyncExitStack() as stack:
        source = ConfigSource(settings.config_file, shard=settings.shard)
        if args.demo:
            source = await _start_demo(stack, settings.shard)
        try:
            whole = source.load_all()
        except ConfigError as exc:
            for line in exc.lines():
                print(line, file=sys.stderr)
            return 1
        config = source.shard.select(whole)
        log_setup.mask(config.secrets())
        _log_warnings(config)
        web_config = None
        if settings.web_config_file is not None:
            try:
                web_config = load_web_config(settings.web_config_file)
            except WebConfigError as exc:
                for line in exc.lines():
                    print(line, file=sys.stderr)
                return 1
            for warning in web_config.warnings:
                log.warning("web config warning", extra={"warning": warning})
        if args.check_config:
            print(_check_config_summary(whole, config, source.shard))
            return await _live_check(config) if args.live else 0
        if args.once:
            return await _run_once(config)
        return await _serve(config, source, settings, log_setup, web_config, demo=args.demo)


def _check_config_summary(whole: Config, selected: Config, shard: Shard) -> str:
    summary = f"config ok: {len(whole.targets)} targets, {len(whole.groups)} groups"
    if shard.sharded:
        summary += f" ({shard}: {len(selected.groups)} groups)"
    return summary


async def _start_demo(stack: contextlib.AsyncExitStack, shard: Shard) -> ConfigSource:
    from exporter.simulator import DEMO_SCENARIO_PATH, load_scenario, start_simulator  # noqa: PLC0415

    scenario = load_scenario(DEMO_SCENARIO_PATH)
    simulator = await start_simulator(scenario, host="127.0.0.1", port=0)
    stack.push_async_callback(simulator.close)
    log.info("demo: CAN simulator started", extra={"url": simulator.base_url})
    environ = {
        **os.environ,
        "ALOUDATA_CAN_DEMO_URL": simulator.base_url,
        "ALOUDATA_CAN_DEMO_APIKEY": scenario.auth.value.get_secret_value(),
    }
    return ConfigSource(DEMO_CONFIG_PATH, environ, shard)


async def _live_check(config: Config) -> int:
    """Only this shard's groups, as --once: each instance of a sharded set checks its own."""
    checks = distinct_plans(config.groups)
    targets = len({check.target for check in checks})
    log.info(
        "live check: asking CAN about each plan", extra={"plans": len(checks), "targets": targets}
    )
    try:
        outcomes = await check_plans(config.targets, checks)
    except ClientSetupError as exc:
        print(f"live check error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render_problems(outcomes))
    print(summary(outcomes))
    return exit_code(outcomes)


async def _run_once(config: Config) -> int:
    clock = SystemClock()
    poller = Poller(SnapshotStore(), clock)
    try:
        snapshots = await poller.poll_once(config)
    finally:
        await poller.stop()
    sys.stdout.write(render_table(snapshots, clock.now()))
    return 0 if all(snapshot.poll_success for snapshot in snapshots) else 1


async def _serve(
    config: Config,
    source: ConfigSource,
    settings: Settings,
    log_setup: LogSetup,
    web_config: WebConfig | None,
    *,
    demo: bool,
) -> int:
    clock = SystemClock()
    store = SnapshotStore()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    exposition = Exposition(store, clock)
    exporter_metrics = ExporterMetrics(registry, settings.shard)
    poller = Poller(store, clock)
    reloader = Reloader(source, poller, exporter_metrics, log_setup, clock, config=config)
    web = WebApp(
        registry,
        exposition=exposition,
        store=store,
        clock=clock,
        is_ready=lambda: poller.ready,
        reload=reloader.reload,
        options=WebOptions(settings.web_telemetry_path, settings.web_enable_lifecycle),
        security=WebSecurity(web_config) if web_config is not None else None,
    )
    try:
        bound = await web.start(settings.listen_address)
    except OSError as exc:
        print(
            f"startup error: cannot listen on {settings.web_listen_address}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    poller.apply(config)
    exporter_metrics.config_loaded(True, clock.now().timestamp())
    poller.start()
    # What start-up built lives as long as the process: keep it out of every later collection.
    gc.freeze()
    log.info(
        "exporter started",
        extra={
            "version": __version__,
            "listen": ",".join(bound),
            "telemetry_path": settings.web_telemetry_path,
            "tls": web_config is not None and web_config.tls_enabled,
            "basic_auth": web_config is not None and web_config.basic_auth_enabled,
            "targets": len(config.targets),
            "groups": len(config.groups),
            "shard_index": settings.shard.index,
            "shard_total": settings.shard.total,
        },
    )
    if demo:
        address = settings.listen_address
        log.info(
            "demo: open the landing page to see every group's state; Ctrl-C stops",
            extra={"url": f"http://{address.host or 'localhost'}:{address.port}/"},
        )
    # A rotated value_file is picked up by a reload, like a SIGHUP would.
    # Late-bound on purpose: after a reload, the files of the new config are watched.
    secrets = FileWatcher(lambda: reloader.config.secret_files())  # noqa: PLW0108
    watching = asyncio.create_task(secrets.run(lambda _: reloader.reload()))
    stop = asyncio.Event()
    _install_signal_handlers(stop, reloader)
    await stop.wait()
    log.info("shutting down")
    watching.cancel()
    await poller.stop(_SHUTDOWN_GRACE_SECONDS)
    await web.stop()
    log.info("stopped")
    return 0


class Reloader:
    """Reloads the configuration; a bad one keeps the running one and flags the failure."""

    def __init__(
        self,
        source: ConfigSource,
        poller: Poller,
        exporter_metrics: ExporterMetrics,
        log_setup: LogSetup,
        clock: Clock,
        *,
        config: Config,
    ) -> None:
        self.config = config  # the running one
        self._source = source
        self._poller = poller
        self._metrics = exporter_metrics
        self._log_setup = log_setup
        self._clock = clock
        self._lock = asyncio.Lock()

    async def reload(self) -> list[str]:
        """Returns the problems; empty when the new configuration is running."""
        async with self._lock:
            try:
                config = self._source.load()
            except ConfigError as exc:
                self._metrics.config_loaded(False, self._clock.now().timestamp())
                for line in exc.lines():
                    log.error(
                        "config reload failed; keeping the running config", extra={"error": line}
                    )
                return exc.lines()
            self._log_setup.mask(config.secrets())
            _log_warnings(config)
            self._poller.apply(config)
            self.config = config
            self._metrics.config_loaded(True, self._clock.now().timestamp())
            log.info(
                "config reloaded",
                extra={"targets": len(config.targets), "groups": len(config.groups)},
            )
            return []


def _log_warnings(config: Config) -> None:
    for warning in config.warnings:
        log.warning("config warning", extra={"warning": warning})


def _install_signal_handlers(stop: asyncio.Event, reloader: Reloader) -> None:
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[list[str]]] = set()

    def reload() -> None:
        task = loop.create_task(reloader.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
