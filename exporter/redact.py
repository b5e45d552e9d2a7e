"""Masking of secret values in text: the last guard before a line leaves the process."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "<secret>"


def ordered_secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    """Non-empty secrets, longest first, so a secret containing another is masked whole."""
    return tuple(sorted({secret for secret in secrets if secret}, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in ordered_secrets(secrets):
        text = text.replace(secret, MASK)
    return text
