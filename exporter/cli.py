"""Command line: parse flags, then hand over to the daemon (exporter.daemon).

Exit codes: 0 ok, 1 config or start-up error (or a failed group under --once, or a missing or
unchecked plan under --check-config --live), 2 flag misuse.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.daemon.signals import SignalInbox
from exporter.listen import ENV_PREFIX, parse_listen_address
from exporter.logs import FORMATS, LEVELS, setup_logging

if TYPE_CHECKING:
    from pydantic import ValidationError

    from exporter.daemon.settings import Settings

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
    # Before anything else: from here on a SIGHUP or SIGTERM is kept for the daemon, not fatal.
    with SignalInbox.installed() as inbox:
        return _main(argv, inbox)


def _main(argv: Sequence[str] | None, inbox: SignalInbox) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.live and not args.check_config:
        parser.error("argument --live: only valid with --check-config")  # exits 2
    if args.version:
        print(f"aloudata-can-exporter, version {__version__} (python {platform.python_version()})")
        return 0
    # pydantic and what needs it are imported only now, with the signals caught: they take
    # most of a second to import, during which a SIGHUP would otherwise end the process.
    from pydantic import ValidationError  # noqa: PLC0415

    try:
        settings = load_settings(args)
    except ValidationError as exc:
        for line in settings_error_lines(exc, args):
            print(line, file=sys.stderr)
        # A bad flag value is flag misuse; a bad environment variable is a configuration error.
        return 2 if _names_a_flag(exc, args) else 1
    log_setup = setup_logging(settings.log_level, settings.log_format)
    from exporter.daemon.run import run  # noqa: PLC0415

    return asyncio.run(run(args, settings, log_setup, inbox))


def load_settings(args: argparse.Namespace) -> Settings:
    from exporter.daemon.settings import Settings  # noqa: PLC0415 - see _main

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
    from exporter.config.yamlfile import format_location  # noqa: PLC0415 - see _main

    name = format_location(loc)
    flag = _SETTINGS_FLAGS.get(name)
    if flag is not None and getattr(args, name, None) is not None:
        return flag
    return f"{ENV_PREFIX}{name.upper()}"


def _names_a_flag(exc: ValidationError, args: argparse.Namespace) -> bool:
    errors = exc.errors(include_input=False, include_url=False)
    return any(_error_source(error["loc"], args).startswith("--") for error in errors)
