"""The daemon: load the config, wire the parts, serve until a signal, reload, shut down.

``run`` takes over from ``exporter.cli`` once the flags are parsed, with the signals already
caught (exporter.signals). The config is loaded on a thread (exporter.reloading), so a SIGTERM
during a long load stops the exporter at once and a SIGHUP is kept for when it has started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics

from exporter import __version__
from exporter.clock import SystemClock
from exporter.config.errors import ConfigError
from exporter.config.load import load_config
from exporter.config.model import Config
from exporter.config.sharding import UNSHARDED, Shard
from exporter.daemon.filewatch import FileWatcher
from exporter.daemon.livecheck import (
    ClientSetupError,
    check_plans,
    distinct_plans,
    exit_code,
    render_problems,
    summary,
)
from exporter.daemon.reloading import (
    RELOAD_TIMEOUT_SECONDS,
    LoadTimeoutError,
    Reloader,
    collector_paused,
    in_daemon_thread,
    within,
)
from exporter.daemon.settings import Settings
from exporter.daemon.signals import Lifecycle, SignalInbox, StopRequestedError
from exporter.logs import LogSetup
from exporter.metrics.exposition import Exposition
from exporter.metrics.report import render_table
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.polling.poller import Poller
from exporter.state.snapshots import SnapshotStore
from exporter.web.app import WebApp, WebOptions
from exporter.web.config import WebConfig, WebConfigError, load_web_config
from exporter.web.security import WebSecurity

log = logging.getLogger("exporter")

DEMO_CONFIG_PATH = Path(__file__).parents[1] / "demo.yml"
_SHUTDOWN_GRACE_SECONDS = 5.0
# Exit codes of a one-shot mode (--once, --check-config --live) stopped by a signal, as a shell
# reports a process a signal ended.
_SIGNAL_EXIT_BASE = 128


@dataclass
class ConfigSource:
    """Where the configuration comes from, so reloads read it the same way."""

    path: Path
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    shard: Shard = UNSHARDED

    def load_all(self) -> Config:
        """The whole file, every shard's groups."""
        return load_config(self.path, self.environ)

    def load(self) -> Config:
        """This shard's part: what the exporter polls and exports."""
        return self.shard.select(self.load_all())


async def run(
    args: argparse.Namespace, settings: Settings, log_setup: LogSetup, inbox: SignalInbox
) -> int:
    """The exit code: 0 ok, 1 config or start-up error (or a failed one-shot check)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    lifecycle = Lifecycle()
    with inbox.on_loop(asyncio.get_running_loop(), lifecycle.on_signal):
        try:
            return await _run(args, settings, log_setup, lifecycle)
        except StopRequestedError as stop:
            one_shot = args.check_config or args.once
            message = "interrupted" if one_shot else "stopped during start-up"
            log.info(message, extra={"signal": stop.signum.name})
            return _SIGNAL_EXIT_BASE + stop.signum if one_shot else 0


async def _run(
    args: argparse.Namespace, settings: Settings, log_setup: LogSetup, lifecycle: Lifecycle
) -> int:
    async with contextlib.AsyncExitStack() as stack:
        source = ConfigSource(settings.config_file, shard=settings.shard)
        if args.demo:
            source = await _start_demo(stack, settings.shard)
        try:
            whole = await lifecycle.unless_stopped(_load_at_startup(source))
        except ConfigError as exc:
            for line in exc.lines():
                print(line, file=sys.stderr)
            return 1
        except LoadTimeoutError as exc:
            print(f"startup error: config load {exc} (file={source.path})", file=sys.stderr)
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
            return await lifecycle.unless_stopped(_live_check(config)) if args.live else 0
        if args.once:
            return await lifecycle.unless_stopped(_run_once(config))
        return await _serve(
            config, source, settings, log_setup, web_config, lifecycle=lifecycle, demo=args.demo
        )


async def _load_at_startup(source: ConfigSource) -> Config:
    """The whole file, read on a thread so that signals are handled meanwhile."""
    loading = in_daemon_thread(functools.partial(_load_without_gc, source), "config-load")
    return await within(loading, RELOAD_TIMEOUT_SECONDS)


def _load_without_gc(source: ConfigSource) -> Config:
    # The garbage collector's passes over the objects a load makes, which all live on, were
    # most of a 10,000-group load's time.
    with collector_paused():
        return source.load_all()


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
    # A maintenance window from an hour ago to two hours from now, for one demo group.
    now = datetime.now(UTC).replace(microsecond=0)
    environ = {
        **os.environ,
        "ALOUDATA_CAN_DEMO_URL": simulator.base_url,
        "ALOUDATA_CAN_DEMO_APIKEY": scenario.auth.value.get_secret_value(),
        "ALOUDATA_CAN_DEMO_MAINTENANCE_START": (now - timedelta(hours=1)).isoformat(),
        "ALOUDATA_CAN_DEMO_MAINTENANCE_END": (now + timedelta(hours=2)).isoformat(),
        **_demo_weekend(scenario.timezone),
    }
    return ConfigSource(DEMO_CONFIG_PATH, environ, shard)


def _demo_weekend(zone: str) -> dict[str, str]:
    """Yesterday and today in the simulator's zone: the demo calendar's simulated weekend."""
    today = datetime.now(ZoneInfo(zone)).date()
    return {
        "ALOUDATA_CAN_DEMO_WEEKEND_1": (today - timedelta(days=1)).isoformat(),
        "ALOUDATA_CAN_DEMO_WEEKEND_2": today.isoformat(),
    }


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
    lifecycle: Lifecycle,
    demo: bool,
) -> int:
    clock = SystemClock()
    store = SnapshotStore()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    exposition = Exposition(store, clock)
    exporter_metrics = ExporterMetrics(registry, settings.shard)
    poller = Poller(store, clock)

    async def apply(new: Config) -> None:
        log_setup.mask(new.secrets())
        _log_warnings(new)
        await poller.apply_in_steps(new)

    reloader = Reloader(source.load, apply, exporter_metrics, clock, config=config)
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
    watching = asyncio.create_task(secrets.run(lambda _: reloader.reload("file")))
    lifecycle.serve_reloads(reloader.request)
    # Returns at once when a SIGTERM came during start-up.
    await lifecycle.stopping.wait()
    log.info("shutting down")
    watching.cancel()
    await reloader.close()
    await poller.stop(_SHUTDOWN_GRACE_SECONDS)
    await web.stop()
    log.info("stopped")
    return 0


def _log_warnings(config: Config) -> None:
    for warning in config.warnings:
        log.warning("config warning", extra={"warning": warning})
