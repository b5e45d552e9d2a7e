"""Files named in a config: regular files only, bounded in size, never a hang.

Each read that could hang (a FIFO nobody writes to) runs in a daemon thread with a deadline,
so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from exporter.config.errors import ConfigError
from exporter.config.files import (
    CONFIG_FILE_MAX_BYTES,
    PEM_FILE_MAX_BYTES,
    SECRET_FILE_MAX_BYTES,
    FileReadError,
    format_size,
    read_regular_file,
    read_text_file,
)
from exporter.config.load import load_config, parse_config
from exporter.daemon.filewatch import FileWatcher, file_digest
from exporter.web.config import WebConfigError, load_web_config

SECRET = "s3cr3t-Ap1Key-7f1e9c2b"
# Generous: the reads under test return in microseconds; a hang never does.
DEADLINE = 5.0

T = TypeVar("T")


def within_deadline(call: Callable[[], T]) -> T:
    """``call()``'s result or exception; fails the test when it is still running at DEADLINE."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), f"still running after {DEADLINE}s: it blocks"
    if failure:
        raise failure[0]
    return outcome[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    yield path
    # Should a regression have left a reader blocked in open(), a writer lets it go
    # (with no reader there, opening fails: nothing is blocked).
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        yield path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def reason_of(path: Path, limit: int = SECRET_FILE_MAX_BYTES) -> str:
    with pytest.raises(FileReadError) as caught:
        within_deadline(lambda: read_regular_file(path, limit))
    return caught.value.describe()


# --- the helper ------------------------------------------------------------------------------


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "key", b"abc\n")
    assert read_regular_file(path, 4) == b"abc\n"


def test_text_that_is_not_utf8_is_a_read_error(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.yml", "café: 1\n".encode("latin-1"))
    assert read_text_file(write(tmp_path / "ok.yml", "café: 1\n".encode()), 64) == "café: 1\n"
    with pytest.raises(FileReadError) as caught:
        read_text_file(path, 64)
    assert caught.value.describe("config file") == "cannot read config file: UnicodeDecodeError"


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    # As Kubernetes mounts a Secret: key -> ..data/key, ..data -> ..2024_01_01/.
    (tmp_path / "..2024_01_01").mkdir()
    write(tmp_path / "..2024_01_01" / "key", b"value")
    (tmp_path / "..data").symlink_to("..2024_01_01")
    (tmp_path / "key").symlink_to("..data/key")
    assert read_regular_file(tmp_path / "key", 100) == b"value"


def test_a_fifo_without_a_writer_is_refused_at_once(fifo: Path) -> None:
    assert reason_of(fifo) == f"{fifo} is a FIFO, not a regular file"


def test_a_symlink_to_a_fifo_is_refused(tmp_path: Path, fifo: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(fifo)
    assert reason_of(link) == f"{link} is a FIFO, not a regular file"


@pytest.mark.parametrize(
    ("device", "kind"),
    [("/dev/zero", "a character device"), ("/dev/urandom", "a character device")],
)
def test_a_device_is_refused(device: str, kind: str) -> None:
    assert reason_of(Path(device)) == f"{device} is {kind}, not a regular file"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert reason_of(tmp_path) == f"{tmp_path} is a directory, not a regular file"


def test_a_socket_is_refused(unix_socket: Path) -> None:
    assert reason_of(unix_socket) == f"{unix_socket} is a socket, not a regular file"


def test_a_file_of_the_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    limit = SECRET_FILE_MAX_BYTES
    assert len(read_regular_file(write(tmp_path / "full", b"k" * limit), limit)) == limit
    larger = write(tmp_path / "larger", b"k" * (limit + 1))
    assert reason_of(larger, limit) == f"{larger} is larger than 64 KiB"


def test_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(FileReadError) as caught:
        read_regular_file(tmp_path / "absent", 10)
    assert caught.value.unreadable
    assert (
        caught.value.describe() == f"cannot read {tmp_path / 'absent'}: No such file or directory"
    )
    assert (
        caught.value.describe("config file") == "cannot read config file: No such file or directory"
    )


def test_a_nul_byte_in_the_path_is_not_echoed() -> None:
    with pytest.raises(FileReadError) as caught:
        read_regular_file(Path("/tmp/a\x00b"), 10)
    assert caught.value.describe() == "not a valid path"


@pytest.mark.parametrize(
    ("size", "text"),
    [(SECRET_FILE_MAX_BYTES, "64 KiB"), (CONFIG_FILE_MAX_BYTES, "16 MiB"), (1000, "1000 bytes")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


# --- auth.value_file --------------------------------------------------------------------------


def value_file_config(path: Path) -> str:
    return (
        "targets:\n"
        "  - name: prod\n"
        "    url: https://can.example.com\n"
        '    tenant_id: "10001"\n'
        f'    auth: {{type: APIKEY, value_file: "{path}"}}\n'
    )


def value_file_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        within_deadline(lambda: parse_config(value_file_config(path), environ={}))
    return caught.value.problems


def test_value_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "key", b"\xff" + SECRET.encode())
    assert value_file_problems(path) == [
        f"targets[0].auth.value_file: cannot read {path}: UnicodeDecodeError"
    ]


def test_web_config_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", b"\xfftls_server_config: {}\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert caught.value.problems == ["cannot read web config file: UnicodeDecodeError"]


def test_value_file_that_is_a_fifo(fifo: Path) -> None:
    assert value_file_problems(fifo) == [
        f"targets[0].auth.value_file: {fifo} is a FIFO, not a regular file"
    ]


def test_value_file_that_is_a_symlink_to_a_fifo(tmp_path: Path, fifo: Path) -> None:
    link = tmp_path / "apikey"
    link.symlink_to(fifo)
    assert value_file_problems(link) == [
        f"targets[0].auth.value_file: {link} is a FIFO, not a regular file"
    ]


def test_value_file_that_is_a_device() -> None:
    # /dev/null, not /dev/zero: should the check regress, this fails ("is empty") instead of
    # reading without end; read_regular_file's own tests cover /dev/zero.
    assert value_file_problems(Path("/dev/null")) == [
        "targets[0].auth.value_file: /dev/null is a character device, not a regular file"
    ]


def test_value_file_larger_than_64_kib(tmp_path: Path) -> None:
    key = write(tmp_path / "key", b"k" * (SECRET_FILE_MAX_BYTES + 1))
    assert value_file_problems(key) == [f"targets[0].auth.value_file: {key} is larger than 64 KiB"]


def test_value_file_that_is_a_symlink_to_a_regular_file(tmp_path: Path) -> None:
    write(tmp_path / "real", f"{SECRET}\n".encode())
    (tmp_path / "apikey").symlink_to("real")
    config = parse_config(value_file_config(tmp_path / "apikey"), environ={})
    assert config.targets["prod"].auth_value.get_secret_value() == SECRET


# --- the config files themselves and the TLS files --------------------------------------------


def test_a_config_file_that_is_a_fifo(fifo: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        within_deadline(lambda: load_config(fifo, environ={}))
    assert caught.value.lines() == [
        f"config error: config file is a FIFO, not a regular file (file={fifo})"
    ]


def test_a_config_file_larger_than_16_mib(tmp_path: Path) -> None:
    path = tmp_path / "exporter.yml"
    with path.open("wb") as sparse:
        sparse.truncate(CONFIG_FILE_MAX_BYTES + 1)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.problems == ["config file is larger than 16 MiB"]


def test_a_ca_file_that_is_a_fifo(tmp_path: Path, fifo: Path) -> None:
    text = (
        value_file_config(tmp_path).replace(f'value_file: "{tmp_path}"', f'value: "{SECRET}"')
        + f'    tls: {{ca_file: "{fifo}"}}\n'
    )
    with pytest.raises(ConfigError) as caught:
        within_deadline(lambda: parse_config(text, environ={}))
    assert caught.value.problems == [
        f"targets[0].tls.ca_file: {fifo} is a FIFO, not a regular file"
    ]


def test_a_web_config_file_that_is_a_fifo(fifo: Path) -> None:
    with pytest.raises(WebConfigError) as caught:
        within_deadline(lambda: load_web_config(fifo))
    assert caught.value.problems == ["web config file is a FIFO, not a regular file"]


def test_a_web_config_cert_file_larger_than_the_bound(tmp_path: Path) -> None:
    cert = tmp_path / "server.crt"
    with cert.open("wb") as sparse:
        sparse.truncate(PEM_FILE_MAX_BYTES + 1)
    write(tmp_path / "server.key", b"")
    path = write(
        tmp_path / "web.yml",
        b"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert f"tls_server_config.cert_file: {cert} is larger than 4 MiB" in caught.value.problems


# --- the secret watcher ----------------------------------------------------------------------


def test_the_watcher_does_not_block_on_a_fifo(fifo: Path) -> None:
    digest = within_deadline(lambda: file_digest(fifo))
    assert digest is not None


def test_a_secret_file_replaced_by_a_fifo_is_a_change(tmp_path: Path) -> None:
    secret = write(tmp_path / "apikey", SECRET.encode())
    watcher = FileWatcher(lambda: [secret])
    secret.unlink()
    os.mkfifo(secret)
    # Reported, so the reload runs and says what is wrong with the file.
    assert within_deadline(watcher.check) == [secret]
    assert within_deadline(watcher.check) == []


def test_a_secret_file_that_grew_past_the_bound_is_a_change(tmp_path: Path) -> None:
    secret = write(tmp_path / "apikey", SECRET.encode())
    watcher = FileWatcher(lambda: [secret])
    write(secret, b"k" * (SECRET_FILE_MAX_BYTES + 1))
    assert watcher.check() == [secret]
    write(secret, b"k" * (SECRET_FILE_MAX_BYTES + 2))
    assert watcher.check() == [], "still too large: no new change"
