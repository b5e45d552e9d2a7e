"""HTTP basic auth against the bcrypt hashes of ``--web.config.file``'s ``basic_auth_users``.

bcrypt is slow on purpose (about 60 ms of a core at cost 10), so, as exporter-toolkit does:

- successful checks are cached (bounded, least recently used first out), keyed by an HMAC of
  the user, the stored hash and the given password under a per-process random key, so the
  cache holds no password and no fast hash of one;
- ``checkpw`` runs in an executor, never on the event loop, through a ``CheckQueue``
  (``exporter.passwordchecks``): one check at a time on the web server's dedicated thread, so a
  flood of wrong passwords costs at most one core, from a queue bounded and fair between client
  addresses, so the flood gets ``ChecksBusyError`` (429) at once while scrapes with cached
  credentials, other addresses' checks and metric rendering go on;
- user names are compared in constant time, and an unknown user still costs a ``checkpw``
  against a dummy hash of the configured cost, so timing does not tell which users exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from functools import partial

import bcrypt
from pydantic import SecretStr

from exporter.web.passwordchecks import CheckQueue

DEFAULT_CACHE_SIZE = 256
# bcrypt only ever uses the first 72 bytes; bcrypt>=5 raises on longer input instead.
_BCRYPT_MAX_PASSWORD_BYTES = 72
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def parse_basic_authorization(header: str | None) -> tuple[bytes, bytes] | None:
    """``(user, password)`` from an ``Authorization: Basic ...`` value, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, separator, password = decoded.partition(b":")
    if not separator:
        return None
    return user, password


class BasicAuth:
    """Checks ``Authorization`` headers against user -> bcrypt hash."""

    def __init__(
        self,
        users: Mapping[str, SecretStr],
        *,
        checks: CheckQueue | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if not users:
            raise ValueError("basic auth needs at least one user")
        # (sha256 of the name, hash): equal-length digests for the constant-time comparison.
        self._users = [
            (_digest(name.encode()), hashed.get_secret_value().encode())
            for name, hashed in users.items()
        ]
        self._dummy_hash = _dummy_hash(max(_cost(hashed) for _, hashed in self._users))
        self._checks = checks if checks is not None else CheckQueue()
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_key = secrets.token_bytes(32)

    async def verify(self, authorization: str | None, client: str = "") -> bool:
        """True when the header carries a configured user and that user's password.

        ``client`` (the peer's address) is whose turn a check waits for; raises
        ``ChecksBusyError`` at once when a check is needed and the queue has no room for it.
        """
        credentials = parse_basic_authorization(authorization)
        if credentials is None:
            return False
        user, password = credentials
        stored = self._stored_hash(user)
        if stored is None:
            await self._checks.run(client, partial(_checkpw, password, self._dummy_hash))
            return False
        key = self._key(user, stored, password)
        if key in self._cache:
            self._cache.move_to_end(key)
            return True
        if not await self._checks.run(client, partial(_checkpw, password, stored)):
            return False
        self._remember(key)
        return True

    def _stored_hash(self, user: bytes) -> bytes | None:
        wanted = _digest(user)
        found = None
        for name, hashed in self._users:  # every entry, match or not: constant time
            if hmac.compare_digest(name, wanted):
                found = hashed
        return found

    def _key(self, user: bytes, stored: bytes, password: bytes) -> bytes:
        message = len(user).to_bytes(4, "big") + user + stored + password
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    def _remember(self, key: bytes) -> None:
        self._cache[key] = None
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD_BYTES], hashed)
    except ValueError:
        return False


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _cost(hashed: bytes) -> int:
    """The cost of a validated ``$2b$10$...`` hash."""
    return int(hashed[4:6])


def _dummy_hash(cost: int) -> bytes:
    """A well-formed hash of ``cost`` that no password matches: a real salt, a random digest.

    Checking against it costs as much as checking a real hash of that cost, without hashing
    anything up front.
    """
    digest = "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))
    return bcrypt.gensalt(rounds=cost) + digest.encode()
