"""Files a config points at (resolve.py): auth value_file secrets and tls ca_file bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from exporter.config.errors import ConfigError
from exporter.config.load import load_config, parse_config
from tests.helpers.configs import ENV, SECRET, doc, problems_of, target, write


def value_file_config(path: str) -> str:
    return doc(targets=target(auth=f'{{type: APIKEY, value_file: "{path}"}}'), groups=None)


def test_value_file_is_read_and_stripped(tmp_path: Path) -> None:
    key = write(tmp_path / "key", f"{SECRET}\n")
    config = parse_config(value_file_config(str(key)), environ={})
    assert config.targets["prod"].auth_value.get_secret_value() == SECRET


def test_value_file_path_may_use_variables(tmp_path: Path) -> None:
    write(tmp_path / "key", f"{SECRET}\r\n")
    config = parse_config(value_file_config("${SECRETS}/key"), environ={"SECRETS": str(tmp_path)})
    assert config.targets["prod"].auth_value.get_secret_value() == SECRET


def test_relative_value_file_resolves_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc" / "exporter"
    write(config_dir / "secrets" / "apikey", f"{SECRET}\n")
    path = write(config_dir / "exporter.yml", value_file_config("secrets/apikey"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path, environ={})
    assert config.targets["prod"].auth_value.get_secret_value() == SECRET


def test_relative_ca_file_resolves_against_the_config_directory(tmp_path: Path) -> None:
    ca = tmp_path / "certs" / "ca.pem"
    ca.parent.mkdir()
    trustme.CA().cert_pem.write_to_path(str(ca))
    path = write(
        tmp_path / "exporter.yml",
        doc(targets=target("    tls: {ca_file: certs/ca.pem}\n"), groups=None),
    )
    config = load_config(path, environ=ENV)
    assert config.targets["prod"].ca_file == ca


@pytest.mark.parametrize(
    ("content", "detail"),
    [(b"not a certificate\n", "NO_CERTIFICATE_OR_CRL_FOUND"), (b"\xff\xfe\x00", "")],
)
def test_a_ca_file_that_is_not_a_pem_bundle_is_a_config_error(
    tmp_path: Path, content: bytes, detail: str
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(content)
    path = write(
        tmp_path / "exporter.yml",
        doc(targets=target("    tls: {ca_file: ca.pem}\n"), groups=None),
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    [line] = caught.value.lines()
    assert line.startswith(f"config error: targets[0].tls.ca_file: {ca} is not a PEM CA bundle: ")
    assert detail in line
    assert line.endswith(f"(file={path})")


def test_missing_value_file(tmp_path: Path) -> None:
    path = write(tmp_path / "exporter.yml", value_file_config("absent-key"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.lines() == [
        f"config error: targets[0].auth.value_file: cannot read {tmp_path / 'absent-key'}: "
        f"No such file or directory (file={path})"
    ]


@pytest.mark.parametrize("content", ["", "\n", "  \n\t\n"])
def test_empty_value_file(tmp_path: Path, content: str) -> None:
    key = write(tmp_path / "key", content)
    assert problems_of(value_file_config(str(key)), environ={}) == [
        f"targets[0].auth.value_file: {key} is empty"
    ]


def test_value_file_that_is_a_directory(tmp_path: Path) -> None:
    assert problems_of(value_file_config(str(tmp_path)), environ={}) == [
        f"targets[0].auth.value_file: {tmp_path} is a directory, not a regular file"
    ]


def test_ca_file_relative_to_base_dir_in_parse_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            doc(targets=target("    tls: {ca_file: ca.pem}\n"), groups=None),
            environ=ENV,
            base_dir=tmp_path,
        )
    assert caught.value.problems == [f"targets[0].tls.ca_file: no such file {tmp_path / 'ca.pem'}"]
