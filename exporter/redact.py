"""Masking of secret values in text: the last guard before a line leaves the process."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "<secret>"
# Masking replaces every occurrence of a secret: a secret of a few characters would be masked
# wherever those characters happen to appear, and the pattern of masks would give it away.
# The config refuses auth values shorter than this.
MIN_SECRET_LENGTH = 8


def ordered_secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    """Non-empty secrets, longest first, so a secret containing another is masked whole."""
    return tuple(sorted({secret for secret in secrets if secret}, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in ordered_secrets(secrets):
        text = text.replace(secret, MASK)
    return text


def short_secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot be masked safely, or None. Never quotes it, nor its length."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"too short to be masked safely in logs; use at least {MIN_SECRET_LENGTH} characters"
    return None
