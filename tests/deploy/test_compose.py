"""deploy/compose: the laptop demo of the whole product, checked without a Docker engine.

The compose file is validated against the Compose Specification, then against itself and the
repo: services it names exist, mounted files exist and land where the configs expect them, images
are pinned, ports stay on loopback. The containers' view of the mounted files is rebuilt in a
temporary directory from the compose file's own mounts, and the real tools check it there:
promtool, amtool and the exporter's --check-config. Last, the exporter's compose config polls a
real simulator serving the same demo scenario.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import compose_spec
import pytest
import yaml

from exporter.config.durations import parse_duration
from exporter.config.load import load_config
from exporter.config.model import Group
from exporter.listen import DEFAULT_PORT
from exporter.simulator import DEMO_SCENARIO_PATH, HEALTH_PATH, load_scenario
from tests.helpers.programs import require_tool
from tests.integration.processes import Simulator, run_exporter

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
COMPOSE_TEXT = COMPOSE_FILE.read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
JOB = "aloudata-can-exporter"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DEMO_CONFIG = ROOT / "exporter" / "demo.yml"
LOOPBACK_PORT = re.compile(r"127\.0\.0\.1:(\d+):(\d+)")
PINNED_IMAGE = re.compile(r"[a-z0-9][a-z0-9./_-]*:v?\d+\.\d+\.\d+")
SIMULATOR_URL = "http://simulator:8080"


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host source, container target) of each bind mount, in long syntax only: the short
    syntax silently creates a missing source as an empty directory."""
    mounts = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, dict), f"write {volume!r} in long syntax"
        assert volume["type"] == "bind", volume
        assert volume.get("read_only") is True, f"{volume['source']} is mounted writable"
        mounts.append((COMPOSE_DIR / volume["source"], volume["target"]))
    return mounts


def _secret_files(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host file, container path) of each file secret: compose bind-mounts those too."""
    files = []
    for secret in service.get("secrets", []):
        name = secret if isinstance(secret, str) else secret["source"]
        target = name if isinstance(secret, str) else secret.get("target", name)
        path = target if target.startswith("/") else f"/run/secrets/{target}"
        files.append((COMPOSE_DIR / COMPOSE["secrets"][name]["file"], path))
    return files


def _container_files(service: dict[str, Any]) -> list[tuple[Path, str]]:
    return _bind_mounts(service) + _secret_files(service)


def _flag(service: dict[str, Any], name: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in service.get("command", []) if arg.startswith(name)]
    assert len(values) <= 1, f"{name} given twice"
    return values[0] if values else None


def _ports(service: dict[str, Any]) -> set[int]:
    """The container ports a service listens on, as published or exposed."""
    ports = {int(port) for port in service.get("expose", [])}
    for port in service.get("ports", []):
        match = LOOPBACK_PORT.fullmatch(port)
        assert match, f"{port} is not host-ip:port:port on 127.0.0.1"
        ports.add(int(match[2]))
    return ports


def _assert_service_endpoint(host_port: str) -> str:
    """``host_port`` names a compose service and a port it listens on; returns the service."""
    host, _, port = host_port.partition(":")
    assert host in SERVICES, f"{host_port}: no service {host}"
    assert int(port) in _ports(SERVICES[host]), f"{host_port}: {host} does not listen on {port}"
    return host


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: options["condition"] for name, options in depends.items()}


def _built_image() -> str:
    builders: list[str] = [service["image"] for service in SERVICES.values() if "build" in service]
    assert len(builders) == 1, "one service builds the repo's image"
    return builders[0]


def _image_config_path() -> str:
    """The --config.file the repo image's ENTRYPOINT passes."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    joined = dockerfile.replace("\\\n", " ")
    entrypoints = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", joined, re.MULTILINE)
    assert entrypoints, "the Dockerfile has no exec-form ENTRYPOINT"
    args: list[str] = json.loads(entrypoints[-1])
    paths = [arg.split("=", 1)[1] for arg in args if arg.startswith("--config.file=")]
    assert len(paths) == 1, args
    return paths[0]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each service's view of its mounted files, rebuilt from the compose file: every mount
    source copied to its container path under a root directory per service."""
    base = tmp_path_factory.mktemp("containers")
    roots = {}
    for name, service in SERVICES.items():
        root = base / name
        for source, target in _container_files(service):
            destination = root / target.lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, destination)
            else:
                shutil.copy2(source, destination)
        roots[name] = root
    return roots


def _in(root: Path, container_path: str) -> Path:
    return root / container_path.lstrip("/")


# --- the compose file itself -----------------------------------------------------------------


def test_compose_spec_validates_the_file() -> None:
    compose_spec.PyCompose.from_yaml(COMPOSE_TEXT).validate()
    assert COMPOSE["name"] == "aloudata-can"
    assert set(SERVICES) == {"simulator", "exporter", "prometheus", "alertmanager", "grafana"}


def test_compose_spec_catches_a_misspelt_key() -> None:
    broken = COMPOSE_TEXT.replace("    depends_on:", "    depend_on:", 1)
    assert broken != COMPOSE_TEXT
    with pytest.raises(ValueError, match="depend_on"):
        compose_spec.PyCompose.from_yaml(broken).validate()


def test_dependencies_are_services_without_cycles() -> None:
    for name, service in SERVICES.items():
        for dependency, condition in _depends_on(service).items():
            assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"
            if condition == "service_healthy":
                # An image's own HEALTHCHECK is out of sight here: a wait on it could hang.
                assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for dependency in _depends_on(SERVICES[name]):
            visit(dependency, (*path, name))

    for name in SERVICES:
        visit(name, ())
    assert _depends_on(SERVICES["exporter"]) == {"simulator": "service_healthy"}


def test_every_mounted_file_exists_in_the_repo() -> None:
    mounted = [source for service in SERVICES.values() for source, _ in _container_files(service)]
    assert len(mounted) == 8
    for source in mounted:
        assert source.exists(), f"{source} does not exist"
        assert source.resolve().is_relative_to(ROOT), f"{source} is outside the repo"


def test_images_are_pinned_or_built_here() -> None:
    built = _built_image()
    assert built == "aloudata-can-exporter:dev"
    build = SERVICES["exporter"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
    for name, service in SERVICES.items():
        image = service["image"]
        if image == built:
            # Never asked of a registry: the builder always builds, the others use its image.
            assert service["pull_policy"] == ("build" if "build" in service else "never"), name
        else:
            assert PINNED_IMAGE.fullmatch(image), f"{name}: {image} is not an exact version"
            assert "pull_policy" not in service, name
    assert SERVICES["simulator"]["image"] == built


def test_published_ports_are_on_loopback_only() -> None:
    published = {}
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            match = LOOPBACK_PORT.fullmatch(port)
            assert match, f"{name}: {port} is not bound to 127.0.0.1"
            assert match[1] == match[2], f"{name}: {port} publishes on another port"
            published[name] = int(match[1])
    assert published == {
        "exporter": 9873,
        "prometheus": 9090,
        "alertmanager": 9093,
        "grafana": 3000,
    }
    header = COMPOSE_TEXT.split("\nname:", 1)[0]
    for port in published.values():
        assert f"http://localhost:{port}/" in header, f"the header comment omits port {port}"
    assert "docker compose -f deploy/compose/compose.yaml up --build" in header


def test_healthchecks_probe_the_port_the_service_listens_on() -> None:
    checked = set()
    for name, service in SERVICES.items():
        if "healthcheck" not in service:
            continue
        command = " ".join(service["healthcheck"]["test"])
        ports = {int(port) for port in re.findall(r"http://127\.0\.0\.1:(\d+)/", command)}
        assert ports, f"{name}: the healthcheck probes no local URL"
        assert ports <= _ports(service), f"{name} probes {ports}, listens on {_ports(service)}"
        checked.add(name)
    assert checked == {"simulator", "prometheus", "alertmanager", "grafana"}
    assert HEALTH_PATH in " ".join(SERVICES["simulator"]["healthcheck"]["test"])


def test_simulator_listens_where_the_exporter_points() -> None:
    simulator = SERVICES["simulator"]
    assert simulator["entrypoint"] == ["aloudata-can-simulator"]
    listen = _flag(simulator, "--web.listen-address=")
    assert listen is not None
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0", "the simulator must accept connections from the exporter"
    assert int(port) in _ports(simulator)
    (target,) = yaml.safe_load((COMPOSE_DIR / "exporter.yml").read_text())["targets"]
    assert target["url"] == SIMULATOR_URL
    assert _assert_service_endpoint(urlsplit(target["url"]).netloc) == "simulator"


def test_exporter_runs_the_image_entrypoint_read_only() -> None:
    exporter = SERVICES["exporter"]
    # The image's entrypoint and its default listen port, so the scrape target holds.
    assert "entrypoint" not in exporter
    assert "command" not in exporter
    assert DEFAULT_PORT in _ports(exporter)
    targets = {target: source for source, target in _bind_mounts(exporter)}
    assert targets[_image_config_path()] == COMPOSE_DIR / "exporter.yml"
    for name in ("simulator", "exporter"):
        assert SERVICES[name]["read_only"] is True, name
        assert SERVICES[name]["tmpfs"] == ["/tmp"], name


# --- the files as the containers see them ----------------------------------------------------


def test_exporter_config_is_the_demo_config(layout: dict[str, Path]) -> None:
    config_path = _in(layout["exporter"], _image_config_path())
    compose_config = load_config(config_path, environ={})
    scenario = load_scenario(DEMO_SCENARIO_PATH)
    key = scenario.auth.value.get_secret_value()
    window = {
        "ALOUDATA_CAN_DEMO_MAINTENANCE_START": "2026-12-05T22:00:00Z",
        "ALOUDATA_CAN_DEMO_MAINTENANCE_END": "2026-12-06T01:00:00Z",
    }
    weekend = {
        "ALOUDATA_CAN_DEMO_WEEKEND_1": "2024-09-07",
        "ALOUDATA_CAN_DEMO_WEEKEND_2": "2024-09-08",
    }
    demo = load_config(
        DEMO_CONFIG,
        environ={
            "ALOUDATA_CAN_DEMO_URL": SIMULATOR_URL,
            "ALOUDATA_CAN_DEMO_APIKEY": key,
            **window,
            **weekend,
        },
        now=datetime(2026, 12, 5, 23, tzinfo=UTC).timestamp(),
    )
    # The same groups, but for the demo's maintenance window, whose times are relative to the
    # start of `--demo` and which compose leaves out (see the comment in its exporter.yml).
    in_maintenance = {group.name for group in demo.groups if group.maintenance}
    assert in_maintenance == {"marketing_campaigns"}
    without_window = tuple(dataclasses.replace(group, maintenance=()) for group in demo.groups)
    assert _without_calendars(compose_config.groups) == _without_calendars(without_window)
    # The demo's calendar is the compose one, with its simulated weekend as holidays.
    for compose_group, demo_group in zip(compose_config.groups, demo.groups, strict=True):
        if compose_group.calendar is None or demo_group.calendar is None:
            assert compose_group.calendar is demo_group.calendar is None
            continue
        weekend_days = {date.fromisoformat(day) for day in weekend.values()}
        holidays = demo_group.calendar.holidays - weekend_days
        assert dataclasses.replace(demo_group.calendar, holidays=holidays) == compose_group.calendar
    (target,) = compose_config.targets.values()
    assert target.auth_value_file == config_path.parent / "can-apikey"
    assert target.auth_value.get_secret_value() == key
    assert dataclasses.replace(target, auth_value_file=None) == demo.targets[target.name]
    assert target.tenant_id == scenario.tenant_id
    assert target.auth_type.value == scenario.auth.type.value


def _without_calendars(groups: tuple[Group, ...]) -> list[Group]:
    return [dataclasses.replace(group, calendar=None) for group in groups]


def test_exporter_check_config(layout: dict[str, Path]) -> None:
    config_path = _in(layout["exporter"], _image_config_path())
    result = run_exporter("--config.file", str(config_path), "--check-config")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "config ok: 1 targets, 9 groups"


def test_prometheus_scrapes_the_exporter_and_alerts_alertmanager(
    layout: dict[str, Path],
) -> None:
    config_path = _flag(SERVICES["prometheus"], "--config.file=")
    assert config_path is not None
    config = yaml.safe_load(_in(layout["prometheus"], config_path).read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    (scrape,) = job["static_configs"]
    assert scrape["targets"] == [f"exporter:{DEFAULT_PORT}"]
    assert _assert_service_endpoint(scrape["targets"][0]) == "exporter"
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    (static,) = alertmanagers["static_configs"]
    assert [_assert_service_endpoint(target) for target in static["targets"]] == ["alertmanager"]
    datasources = yaml.safe_load(
        _in(layout["grafana"], "/etc/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (datasource,) = datasources["datasources"]
    interval = job.get("scrape_interval", config["global"]["scrape_interval"])
    assert interval == datasource["jsonData"]["timeInterval"], "$__rate_interval would be off"


def test_promtool_check_config_loads_the_rules(layout: dict[str, Path]) -> None:
    config_path = _flag(SERVICES["prometheus"], "--config.file=")
    assert config_path is not None
    result = _run(
        [require_tool("promtool"), "check", "config", str(_in(layout["prometheus"], config_path))]
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rules = [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]
    assert f"SUCCESS: {len(rules)} rules found" in output


def test_amtool_check_config_with_its_templates(layout: dict[str, Path]) -> None:
    config_path = _flag(SERVICES["alertmanager"], "--config.file=")
    assert config_path is not None
    config_file = _in(layout["alertmanager"], config_path)
    result = _run([require_tool("amtool"), "check-config", str(config_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # amtool accepts a template glob that matches nothing; Alertmanager then fails to render.
    templates = yaml.safe_load(config_file.read_text())["templates"]
    assert templates
    for pattern in templates:
        assert list(config_file.parent.glob(pattern)), f"templates: {pattern} matches no file"


def test_grafana_finds_its_provisioning_and_dashboards(layout: dict[str, Path]) -> None:
    grafana = SERVICES["grafana"]
    targets = {target: source.resolve() for source, target in _bind_mounts(grafana)}
    assert targets["/etc/grafana/provisioning"] == ROOT / "grafana" / "provisioning"
    root = layout["grafana"]
    providers = yaml.safe_load(
        _in(root, "/etc/grafana/provisioning/dashboards/aloudata-can.yml").read_text()
    )
    (provider,) = providers["providers"]
    loaded = {path.name for path in _in(root, provider["options"]["path"]).glob("*.json")}
    shipped = {path.name for path in (ROOT / "grafana" / "dashboards").glob("*.json")}
    assert loaded == shipped
    assert len(loaded) == 4

    environment = grafana["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = _in(root, environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert json.loads(home.read_text())["uid"] == "aloudata-can-overview"

    datasources = yaml.safe_load(
        _in(root, "/etc/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (datasource,) = datasources["datasources"]
    url = urlsplit(datasource["url"])
    assert url.scheme == "http"
    assert _assert_service_endpoint(url.netloc) == "prometheus"


# --- the exporter's compose config against a real simulator ----------------------------------


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    process = Simulator(DEMO_SCENARIO_PATH, tmp_path)
    yield process
    process.stop()


def _once_table(stdout: str) -> dict[str, dict[str, str]]:
    """The --once table's rows by group, each a mapping of column name to cell."""
    lines = stdout.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    return {row[1]: dict(zip(header, row, strict=True)) for row in rows if len(row) == len(header)}


@pytest.mark.integration
def test_compose_exporter_config_polls_the_simulator(
    layout: dict[str, Path], simulator: Simulator, tmp_path: Path
) -> None:
    root = tmp_path / "exporter"
    shutil.copytree(layout["exporter"], root)
    config_path = _in(root, _image_config_path())
    text = config_path.read_text()
    assert text.count(SIMULATOR_URL) == 1
    config_path.write_text(text.replace(SIMULATOR_URL, simulator.url))

    result = run_exporter("--config.file", str(config_path), "--once")
    output = result.stdout + result.stderr
    # The demo's deleted plans fail by design, and --once says so with its exit code.
    assert result.returncode == 1, output
    table = _once_table(result.stdout)
    assert set(table) == {group.name for group in load_config(config_path, environ={}).groups}

    def lag(group: str) -> float:
        return parse_duration(table[group]["DATA LAG"])

    for group, row in table.items():
        deleted_plan = group in {"retired_dashboard", "customer_support"}
        expected = "failed: plan_not_found" if deleted_plan else "ok"
        assert row["STATUS"] == expected, f"{group}: {row}\n{output}"
    assert lag("sales_dashboard") < parse_duration("26h")
    assert lag("orders_realtime") < parse_duration("4h")
    assert lag("finance_report") > parse_duration("50h")
    assert lag("executive_overview") > parse_duration("26h")
    assert table["inventory_new"]["DATA LAG"] == "-"
    not_ready = {group for group, row in table.items() if row["NOT READY"] == "yes"}
    assert not_ready == {"inventory_new", "marketing_campaigns"}
