"""deploy/systemd: the unit passes systemd's own checks, keeps its hardening, and its example
configuration loads the CAN credential from the directory LoadCredential= fills."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from exporter.config.load import load_config
from tests.helpers.programs import require_tool

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
UNIT = SYSTEMD / "aloudata-can-exporter.service"
EXAMPLE_CONFIG = SYSTEMD / "exporter.yml"
INSTALLED_COMMAND = "/usr/local/bin/aloudata-can-exporter"
CONFIG_FILE = "/etc/aloudata-can-exporter/exporter.yml"
# systemd-analyze security's overall exposure for the unit as shipped (systemd 252: 1.1, "OK").
MAX_EXPOSURE = 1.1
# The checks the unit knowingly fails: it must reach CAN and be scraped over IP
# (PrivateNetwork, IPAddressDeny, AF_INET/AF_INET6), resolve names (AF_UNIX for NSS), read
# /proc/stat for prometheus_client's process_* metrics (ProcSubset), and ProtectClock's rtc
# read access; a RootDirectory would have to hold a whole Python.
ACCEPTED_EXPOSURES = {
    "RootDirectory=/RootImage=",
    "RestrictAddressFamilies=~AF_UNIX",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "ProcSubset=",
    "PrivateNetwork=",
    "DeviceAllow=",
    "IPAddressDeny=",
}


def unit_lines() -> list[str]:
    return UNIT.read_text(encoding="utf-8").splitlines()


def settings(key: str) -> list[str]:
    return [line.partition("=")[2] for line in unit_lines() if line.startswith(f"{key}=")]


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_exec_start_runs_the_exporter_on_the_etc_config() -> None:
    assert settings("ExecStart") == [f"{INSTALLED_COMMAND} --config.file={CONFIG_FILE}"]
    assert settings("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert settings("LoadCredential") == ["can-apikey:/etc/aloudata-can-exporter/can-apikey"]
    assert settings("DynamicUser") == ["yes"]


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    systemd_analyze = require_tool("systemd-analyze")
    # verify insists that ExecStart exists: point it at this venv's console script.
    command = Path(sys.executable).parent / "aloudata-can-exporter"
    assert command.is_file()
    copy = tmp_path / UNIT.name
    copy.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            f"ExecStart={INSTALLED_COMMAND} ", f"ExecStart={command} "
        ),
        encoding="utf-8",
    )
    changed = [
        (shipped, checked)
        for shipped, checked in zip(unit_lines(), copy.read_text().splitlines(), strict=True)
        if shipped != checked
    ]
    assert changed == [
        (
            f"ExecStart={INSTALLED_COMMAND} --config.file={CONFIG_FILE}",
            f"ExecStart={command} --config.file={CONFIG_FILE}",
        )
    ]
    result = run([systemd_analyze, "verify", "--recursive-errors=no", str(copy)])
    output = result.stdout + result.stderr
    # The host's own units may draw warnings of their own; none may concern this one.
    ours = [line for line in output.splitlines() if UNIT.name in line or str(tmp_path) in line]
    assert result.returncode == 0, output
    assert ours == [], output


def test_hardening_keeps_the_exposure_low() -> None:
    systemd_analyze = require_tool("systemd-analyze")
    threshold = str(round(MAX_EXPOSURE * 10))  # systemd compares tenths
    result = run(
        [systemd_analyze, "security", "--offline=true", f"--threshold={threshold}", str(UNIT)]
    )
    output = result.stdout + result.stderr
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", output)
    assert level, output
    assert float(level.group(1)) <= MAX_EXPOSURE, output
    assert result.returncode == 0, output

    result = run([systemd_analyze, "security", "--offline=true", "--json=short", str(UNIT)])
    assert result.returncode == 0, result.stderr
    failed = {check["name"] for check in json.loads(result.stdout) if not check["set"]}
    assert failed - ACCEPTED_EXPOSURES == set(), "hardening lost or newly checked"


def test_example_config_reads_the_credential(tmp_path: Path) -> None:
    (tmp_path / "can-apikey").write_text("example-api-key\n", encoding="utf-8")
    config = load_config(EXAMPLE_CONFIG, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.secrets() == ["example-api-key"]
    assert config.secret_files() == [tmp_path / "can-apikey"]
    assert [group.name for group in config.groups] == ["sales_dashboard"]


def test_example_config_passes_check_config(tmp_path: Path) -> None:
    (tmp_path / "can-apikey").write_text("example-api-key\n", encoding="utf-8")
    command = Path(sys.executable).parent / "aloudata-can-exporter"
    argv = [str(command), f"--config.file={EXAMPLE_CONFIG}", "--check-config"]
    result = run(argv, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config ok: 1 targets, 1 groups")
    missing = run(argv, env={})
    assert missing.returncode == 1
    assert "CREDENTIALS_DIRECTORY is not set" in missing.stderr
