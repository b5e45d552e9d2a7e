"""Process settings: flags over environment over defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from exporter.cli import build_parser, load_settings, main, settings_error_lines
from exporter.config.sharding import Shard
from exporter.daemon.settings import DEFAULT_PORT, ListenAddress, parse_listen_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":9873", ListenAddress(None, 9873)),
        ("0.0.0.0:80", ListenAddress("0.0.0.0", 80)),
        ("localhost:0", ListenAddress("localhost", 0)),
        ("[::1]:9873", ListenAddress("::1", 9873)),
    ],
)
def test_listen_addresses(text: str, expected: ListenAddress) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["9873", "host:", "host:port", ":70000", "::1:80", "[zz]:80"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid listen address"):
        parse_listen_address(text)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(build_parser().parse_args([]))
    assert settings.listen_address == ListenAddress(None, DEFAULT_PORT)
    assert str(settings.config_file) == "exporter.yml"
    assert settings.web_telemetry_path == "/metrics"
    assert settings.log_level == "info"
    assert settings.log_format == "logfmt"
    assert settings.web_enable_lifecycle is False


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_CONFIG_FILE", "/etc/env.yml")
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_LOG_FORMAT", "json")
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_WEB_ENABLE_LIFECYCLE", "true")
    settings = load_settings(build_parser().parse_args(["--config.file", "/etc/flag.yml"]))
    assert str(settings.config_file) == "/etc/flag.yml"
    assert settings.log_format == "json"
    assert settings.web_enable_lifecycle is True


def test_errors_name_the_flag_or_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_LOG_LEVEL", "loud")
    args = build_parser().parse_args(["--web.telemetry-path", "metrics"])
    with pytest.raises(ValidationError) as caught:
        load_settings(args)
    lines = settings_error_lines(caught.value, args)
    assert len(lines) == 2
    assert lines[0].startswith("settings error: --web.telemetry-path: invalid telemetry path")
    assert lines[1].startswith("settings error: ALOUDATA_CAN_EXPORTER_LOG_LEVEL: ")


def test_web_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(build_parser().parse_args([])).web_config_file is None
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_WEB_CONFIG_FILE", "/etc/env-web.yml")
    settings = load_settings(build_parser().parse_args([]))
    assert str(settings.web_config_file) == "/etc/env-web.yml"
    settings = load_settings(build_parser().parse_args(["--web.config.file", "web.yml"]))
    assert str(settings.web_config_file) == "web.yml"
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_WEB_CONFIG_FILE", "")  # empty means none, as in Go
    assert load_settings(build_parser().parse_args([])).web_config_file is None


def test_shard_defaults_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(build_parser().parse_args([])).shard == Shard(0, 1)
    # The StatefulSet way: the index from the environment, the total from a flag.
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_SHARD_INDEX", "2")
    settings = load_settings(build_parser().parse_args(["--shard.total", "3"]))
    assert settings.shard == Shard(2, 3)
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_SHARD_TOTAL", "4")
    settings = load_settings(build_parser().parse_args(["--shard.index=1"]))
    assert settings.shard == Shard(1, 4)


@pytest.mark.parametrize(
    ("argv", "environ", "lines"),
    [
        (
            ["--shard.index", "3", "--shard.total", "3"],
            {},
            [
                "settings error: --shard.index: shard index 3 is out of range for a shard "
                "total of 3 (0 to 2)"
            ],
        ),
        (
            ["--shard.index", "-1"],
            {},
            ["settings error: --shard.index: shard index must not be negative, got -1"],
        ),
        (
            ["--shard.total", "0"],
            {},
            ["settings error: --shard.total: shard total must be at least 1, got 0"],
        ),
        (
            ["--shard.total", "2"],
            {"ALOUDATA_CAN_EXPORTER_SHARD_INDEX": "2"},
            [
                "settings error: ALOUDATA_CAN_EXPORTER_SHARD_INDEX: shard index 2 is out of range "
                "for a shard total of 2 (0 to 1)"
            ],
        ),
        (
            # A pod-index label that is not there (Kubernetes before 1.28) must not mean shard 0.
            [],
            {"ALOUDATA_CAN_EXPORTER_SHARD_INDEX": ""},
            [
                "settings error: ALOUDATA_CAN_EXPORTER_SHARD_INDEX: Input should be a valid "
                "integer, unable to parse string as an integer"
            ],
        ),
    ],
)
def test_shard_errors(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], environ: dict[str, str], lines: list[str]
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args(argv)
    with pytest.raises(ValidationError) as caught:
        load_settings(args)
    assert settings_error_lines(caught.value, args) == lines


def test_bad_flag_value_exits_2_and_bad_environment_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--shard.index", "3", "--shard.total", "3"]) == 2
    assert capsys.readouterr().err == (
        "settings error: --shard.index: shard index 3 is out of range for a shard total of 3 "
        "(0 to 2)\n"
    )
    assert main(["--web.telemetry-path", "metrics"]) == 2
    assert capsys.readouterr().err.startswith("settings error: --web.telemetry-path: ")
    monkeypatch.setenv("ALOUDATA_CAN_EXPORTER_SHARD_TOTAL", "0")
    assert main([]) == 1
    assert capsys.readouterr().err == (
        "settings error: ALOUDATA_CAN_EXPORTER_SHARD_TOTAL: shard total must be at least 1, got 0\n"
    )


@pytest.mark.parametrize("flag", ["--shard.index", "--shard.total"])
def test_shard_flags_take_integers(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args([flag, "one"])
    assert caught.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(f"argument {flag}: invalid int value: 'one'")
    )
