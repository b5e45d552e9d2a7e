"""Credentials too short to mask safely are refused; a realistic one is masked everywhere; a
short UID or ACCOUNT (a user's name or number) is masked only where it stands as a word.

Masking replaces every occurrence of a secret: an inline secret "a" would turn every "a" of
every log line into the mask, and the pattern of masks would give the secret away.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from exporter.config.errors import ConfigError
from exporter.config.load import parse_config
from exporter.logs import setup_logging
from exporter.redact import MASK, MIN_SECRET_LENGTH, redact

pytestmark = pytest.mark.usefixtures("restored_root_logger")

SECRET = "s3cr3t-Ap1Key-7f1e9c2b"
TOO_SHORT = "too short to be masked safely in logs; use at least 8 characters"


def config(auth: str, extra: str = "") -> str:
    return (
        "targets:\n"
        "  - name: prod\n"
        "    url: https://can.example.com\n"
        '    tenant_id: "10001"\n'
        f"    auth: {auth}\n"
        f"{extra}"
    )


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ=environ or {})
    return caught.value.problems


@pytest.mark.parametrize("auth_type", ["APIKEY", "TOKEN"])
@pytest.mark.parametrize("secret", ["a", "1001", "x" * (MIN_SECRET_LENGTH - 1)])
def test_an_inline_credential_too_short_to_mask_is_refused(secret: str, auth_type: str) -> None:
    assert problems_of(config(f'{{type: {auth_type}, value: "{secret}"}}')) == [
        f"targets[0].auth.value: {TOO_SHORT}"
    ]


@pytest.mark.parametrize("auth_type", ["UID", "ACCOUNT"])
def test_a_short_uid_or_account_is_taken(tmp_path: Path, auth_type: str) -> None:
    key = tmp_path / "uid"
    key.write_text("1001\n", encoding="utf-8")
    inline = parse_config(config(f'{{type: {auth_type}, value: "1001"}}'), environ={})
    from_file = parse_config(config(f'{{type: {auth_type}, value_file: "{key}"}}'), environ={})
    assert inline.secrets() == from_file.secrets() == ["1001"]


def test_a_short_secret_is_masked_only_as_a_whole_word() -> None:
    line = "uid 1001 refused; plans p1001 and 10010 ok, 1001-x and (1001) too; 1001"
    assert redact(line, ["1001"]) == (
        f"uid {MASK} refused; plans p1001 and 10010 ok, {MASK}-x and ({MASK}) too; {MASK}"
    )
    # Eight characters and more: wherever they occur.
    assert redact("k=ab12cd34ef", ["ab12cd34"]) == f"k={MASK}ef"


def test_a_short_value_from_the_environment_is_refused_too() -> None:
    text = config('{type: APIKEY, value: "${CAN_APIKEY}"}')
    assert problems_of(text, {"CAN_APIKEY": "abc"}) == [f"targets[0].auth.value: {TOO_SHORT}"]


@pytest.mark.parametrize("content", ["a\n", "1001", "  seven7\n"])
def test_a_value_file_too_short_to_mask_is_refused(tmp_path: Path, content: str) -> None:
    key = tmp_path / "apikey"
    key.write_text(content, encoding="utf-8")
    assert problems_of(config(f'{{type: APIKEY, value_file: "{key}"}}')) == [
        f"targets[0].auth.value_file: {key}: {TOO_SHORT}"
    ]


def test_eight_characters_are_enough(tmp_path: Path) -> None:
    key = tmp_path / "apikey"
    key.write_text("8chars!!\n", encoding="utf-8")
    from_file = parse_config(config(f'{{type: APIKEY, value_file: "{key}"}}'), environ={})
    inline = parse_config(config('{type: UID, value: "12345678"}'), environ={})
    assert from_file.secrets() == ["8chars!!"]
    assert inline.secrets() == ["12345678"]


def test_a_short_value_does_not_garble_the_other_problems() -> None:
    # Masked by replacement, "a" would have turned every "a" below into the mask.
    problems = problems_of(config('{type: APIKEY, value: "a"}', "    max_concurrency: many\n"))
    assert problems == [
        "targets[0].auth.value: " + TOO_SHORT,
        "targets[0].max_concurrency: Input should be a valid integer, "
        "unable to parse string as an integer",
    ]
    assert MASK not in "".join(problems)


def test_a_realistic_secret_is_masked_in_config_errors() -> None:
    text = config(
        '{type: APIKEY, value: "${CAN_APIKEY}"}', "    timezone: Mars/${CAN_APIKEY}\n"
    ).replace("https://can.example.com", "https://h/?k=${CAN_APIKEY}")
    problems = problems_of(text, {"CAN_APIKEY": SECRET})
    assert problems == [
        "targets[0].url: must not have a query or fragment",
        f"targets[0].timezone: unknown time zone 'Mars/{MASK}'; use an IANA name such as UTC",
    ]


def test_a_realistic_secret_is_masked_in_log_lines(tmp_path: Path) -> None:
    key = tmp_path / "apikey"
    key.write_text(f"{SECRET}\n", encoding="utf-8")
    loaded = parse_config(config(f'{{type: APIKEY, value_file: "{key}"}}'), environ={})
    stream = io.StringIO()
    setup_logging("info", "logfmt", stream).mask(loaded.secrets())
    logging.getLogger("exporter.test").warning(
        "poll failed", extra={"error_msg": f"bad auth-value {SECRET} for tenant 10001"}
    )
    line = stream.getvalue()
    assert SECRET not in line
    assert f'error_msg="bad auth-value {MASK} for tenant 10001"' in line
