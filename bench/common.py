"""What bench/run.py and bench/soak.py share: flag types, child processes and /proc readings."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import httpx

from exporter.config.durations import parse_duration

REPO_ROOT = Path(__file__).resolve().parents[1]
TENANT_ID = "10001"  # the simulator scenarios'

STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40
KIB = 1024
MIB = 1024 * 1024


class ProcessDiedError(Exception):
    """A child process exited during the run."""

    def __init__(self, process: Child) -> None:
        self.process = process
        super().__init__(f"{process.name} exited with code {process.popen.returncode}")


# --- flags -----------------------------------------------------------------------------------


def duration_arg(text: str) -> float:
    """Seconds in a Prometheus duration (`20ms`, `90s`, `1h30m`) or a bare number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be more than 0")
    if round(seconds * 1000) == 0:
        # Written into YAML in whole milliseconds (format_duration), this would be nothing.
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be at least 1ms")
    return seconds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Child:
    """A Python module run as a child process, output to a log file, stopped TERM then KILL.

    It listens on a free 127.0.0.1 port (``--web.listen-address``). With ``wrap`` (a py-spy
    command line) the module runs under it; ``pid`` is then the module's process, not the
    wrapper's.
    """

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        log_path: Path,
        *,
        cwd: Path = REPO_ROOT,
        wrap: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        listen = ["--web.listen-address", f"127.0.0.1:{self.port}"]
        self.started = time.time()
        self.popen = subprocess.Popen(
            [*wrap, sys.executable, "-m", module, *listen, *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Out of the terminal's process group: Ctrl-C reaches only the script, which then
            # stops its children itself.
            start_new_session=True,
        )
        self._wrapped = bool(wrap)
        self._pid: int | None = None if wrap else self.popen.pid

    @property
    def pid(self) -> int:
        while self._pid is None:
            self.check_alive()
            children = _child_pids(self.popen.pid)
            if children:
                self._pid = children[0]
            else:
                time.sleep(0.005)
        return self._pid

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise ProcessDiedError(self)

    def wait_until_ok(
        self, path: str, timeout: float, *, request_timeout: float = 5.0, every: float = 0.02
    ) -> float:
        """Poll ``path`` until it answers 200; returns the wall time it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=request_timeout).status_code == 200:
                    return time.time()
            time.sleep(every)
        raise TimeoutError(f"{self.name}: {path} not OK after {timeout:.0f}s")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if not self._wrapped:
                    self.popen.send_signal(signal.SIGTERM)
                elif self._pid is not None:
                    # Under py-spy, stop the module: py-spy then writes its profile and exits.
                    os.kill(self._pid, signal.SIGTERM)
                else:  # the module never started: its session, py-spy included
                    os.killpg(self.popen.pid, signal.SIGTERM)
            wait = STOP_TIMEOUT * (3 if self._wrapped else 1)
            try:
                self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                print(f"{self.name} ignored SIGTERM for {wait:.0f}s; killing", file=sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()


def _child_pids(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                children.append(int(entry.name))
    return sorted(children)


def interrupt(signum: int, frame: object) -> None:
    """A signal handler (SIGTERM) that takes the same path as Ctrl-C: children are stopped."""
    raise KeyboardInterrupt


def exit_code(
    name: str, run: Callable[[], None], failures: tuple[type[Exception], ...] = (TimeoutError,)
) -> int:
    """Call ``run``: 0, or 1 when a child died (its log tail printed) or ``failures`` was raised,
    or 130 when interrupted; what was gathered until then is the caller's to print."""
    try:
        run()
    except ProcessDiedError as exc:
        print(f"{name}: {exc}; last lines of its log:", file=sys.stderr)
        print(exc.process.log_tail(), file=sys.stderr)
        return 1
    except failures as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; figures so far", file=sys.stderr)
        return 130
    return 0


def keep_or_remove(name: str, workdir: Path, *, keep: bool) -> None:
    """At the end of a run: the work directory kept (and named) with --keep or after a
    failure, removed otherwise."""
    if keep:
        print(f"{name}: configs and logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# --- generated files -------------------------------------------------------------------------


def write_exporter_config(
    path: Path,
    *,
    written_by: str,
    apikey: str,
    defaults: dict[str, str],
    targets: Sequence[str],
    url: str,
    max_concurrency: int,
    groups: Sequence[tuple[str, Sequence[str], bool]],
) -> None:
    """An exporter config: every target on the simulator at ``url``, its API key in a file
    beside ``path``; ``groups`` are (target, plan names, per_plan), named g00000, g00001, ..."""
    key_file = path.with_name("apikey")
    key_file.write_text(apikey + "\n", encoding="utf-8")
    lines = [f"# Written by {written_by}.", "defaults:"]
    lines += [f"  {key}: {value}" for key, value in defaults.items()]
    lines.append("targets:")
    for target in targets:
        lines += [
            f"  - name: {target}",
            f'    url: "{url}"',
            f'    tenant_id: "{TENANT_ID}"',
            f"    auth: {{type: APIKEY, value_file: {key_file}}}",
            "    timezone: Asia/Shanghai",
            f"    max_concurrency: {max_concurrency}",
        ]
    lines.append("groups:" if groups else "groups: []")
    for index, (target, plans, per_plan) in enumerate(groups):
        lines += [
            f"  - name: g{index:05d}",
            f"    target: {target}",
            f"    plan_names: [{', '.join(plans)}]",
        ]
        if per_plan:
            lines.append("    per_plan: true")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- /proc -----------------------------------------------------------------------------------


def read_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(f"{key} not in /proc/{pid}/status")


def read_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    user, system = int(fields[11]), int(fields[12])
    return (user + system) / os.sysconf("SC_CLK_TCK")


# --- report ----------------------------------------------------------------------------------


def share(part: float, whole: float, of: str = "") -> str:
    """``part`` as a whole percentage of ``whole`` (``"12 %"`` + ``of``), ``"-"`` if none."""
    return f"{100 * part / whole:.0f} %{of}" if whole > 0 else "-"
