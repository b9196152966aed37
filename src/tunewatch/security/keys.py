"""API keys: random secrets handed out once, stored only as scrypt hashes, each with one or more scopes.

A key reads ``tw_<id>_<secret>``: ``id`` (public, 12 hex digits) finds the row, ``secret``
(:func:`secrets.token_urlsafe`, 256 bits) is checked against its scrypt hash in constant time. Scopes are
``ingest`` (POST events), ``read`` (GET alerts, series, ...) and ``admin`` (silences, rule reload; implies the
other two). Verified keys are remembered in memory for ``cache_s`` seconds (by a SHA-256 of the key, never the
key itself), so that the deliberately slow KDF runs once per key rather than once per request; revoking a key
through the same store takes effect at once, elsewhere within ``cache_s``.

>>> import sqlite3
>>> store = ApiKeyStore(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
>>> key, info = store.create("ci", {"ingest"}, now_ms=0)
>>> store.verify(key, now_ms=1).name, store.verify("tw_nope_x", now_ms=1)
('ci', None)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Final, Literal

from tunewatch.errors import TunewatchError
from tunewatch.store.sqlite import migrate

Scope = Literal["ingest", "read", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("ingest", "read", "admin")
PREFIX: Final = "tw_"
# scrypt cost: N=2**14, r=8, p=1 (~16 MiB, tens of ms): OWASP's minimum for scrypt
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32

MIGRATIONS = [
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        scopes TEXT NOT NULL,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
    """
]


class ApiKeyError(TunewatchError):
    """An API key cannot be created or revoked (bad scope, unknown id)."""


def parse_scope(text: str) -> Scope:
    """Validate a scope name."""
    if text not in SCOPES:
        raise ApiKeyError(f"unknown scope {text!r}: use one of {', '.join(SCOPES)}")
    return text


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key's public record (never the secret)."""

    id: str
    name: str
    scopes: frozenset[str]
    created_ms: int
    revoked_ms: int | None = None

    def allows(self, scope: Scope) -> bool:
        """Whether this key grants ``scope`` (``admin`` grants every scope)."""
        return self.revoked_ms is None and (scope in self.scopes or "admin" in self.scopes)


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN, maxmem=64 * 1024 * 1024)


class ApiKeyStore:
    """API keys in the ``api_keys`` table of a tunewatch database (thread-safe)."""

    def __init__(self, conn: sqlite3.Connection, *, cache_s: float = 60.0) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._cache: dict[bytes, tuple[ApiKey, float]] = {}
        self._cache_s = cache_s
        migrate(conn, "security.api_keys", MIGRATIONS)

    def create(self, name: str, scopes: set[str] | frozenset[str], now_ms: int) -> tuple[str, ApiKey]:
        """Create a key; return ``(key, record)``. The key is shown once: only its hash is stored."""
        if not name.strip():
            raise ApiKeyError("an API key needs a name (who or what uses it)")
        if not scopes:
            raise ApiKeyError("an API key needs at least one scope: ingest, read or admin")
        checked = frozenset(parse_scope(s) for s in scopes)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_keys (id, name, scopes, salt, hash, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, ",".join(sorted(checked)), salt, _hash(secret, salt), now_ms),
            )
        return f"{PREFIX}{key_id}_{secret}", ApiKey(key_id, name, checked, now_ms)

    def list(self) -> list[ApiKey]:
        """Every key (revoked ones too), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, scopes, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id"
            ).fetchall()
        return [ApiKey(r[0], r[1], frozenset(r[2].split(",")), r[3], r[4]) for r in rows]

    def revoke(self, key_id: str, now_ms: int) -> ApiKey:
        """Revoke a key by id; raise :class:`ApiKeyError` if unknown or already revoked."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", (now_ms, key_id)
            )
            self._cache.clear()
        if cur.rowcount == 0:
            known = any(k.id == key_id for k in self.list())
            raise ApiKeyError(f"API key {key_id!r} is already revoked" if known else f"no API key with id {key_id!r}")
        return next(k for k in self.list() if k.id == key_id)

    def cached(self, key: str) -> ApiKey | None:
        """The record of ``key`` if it was verified within ``cache_s`` (cheap; no KDF), else None."""
        hit = self._cache.get(hashlib.sha256(key.encode("utf-8", "replace")).digest())
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def verify(self, key: str, now_ms: int | None = None) -> ApiKey | None:
        """The active key record for ``key``, or None (malformed, unknown, wrong secret or revoked)."""
        digest = hashlib.sha256(key.encode("utf-8", "replace")).digest()
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        parts = key.split("_", 2)
        if len(parts) != 3 or f"{parts[0]}_" != PREFIX or not parts[1] or not parts[2]:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT id, name, scopes, salt, hash, created_ms, revoked_ms FROM api_keys WHERE id = ?", (parts[1],)
            ).fetchone()
        if row is None or row[6] is not None:
            return None
        if not hmac.compare_digest(_hash(parts[2], row[3]), row[4]):
            return None
        record = ApiKey(row[0], row[1], frozenset(row[2].split(",")), row[5], None)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (record, now + self._cache_s)
        return record
