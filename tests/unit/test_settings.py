"""Process settings: flags over environment over defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from exporter.cli import build_parser, load_settings, settings_error_lines
from exporter.settings import DEFAULT_PORT, ListenAddress, parse_listen_address


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
