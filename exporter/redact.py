"""Masking of secret values in text: the last guard before a line leaves the process."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

MASK = "<secret>"
# A secret this long is masked wherever it occurs. A shorter one would be masked wherever its
# few characters happen to appear (an "a" in every word), and the pattern of masks would give
# it away: shorter ones are masked only where they stand as a whole word, and the config
# refuses credentials (tokens, API keys) shorter than this.
MIN_SECRET_LENGTH = 8


def ordered_secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    """Non-empty secrets, longest first, so a secret containing another is masked whole."""
    return tuple(sorted({secret for secret in secrets if secret}, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in ordered_secrets(secrets):
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
        else:
            text = _as_a_word(secret).sub(MASK, text)
    return text


@functools.lru_cache(maxsize=64)
def _as_a_word(secret: str) -> re.Pattern[str]:
    """``secret`` where no letter or digit touches it on either side."""
    return re.compile(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])")


def short_secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot be masked safely, or None. Never quotes it, nor its length."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"too short to be masked safely in logs; use at least {MIN_SECRET_LENGTH} characters"
    return None
