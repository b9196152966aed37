"""API keys: random secrets handed out once, stored only as keyed hashes, each with one or more scopes.

A key reads ``tw_<id>_<secret>``: ``id`` (public, 12 hex digits) finds the row, ``secret``
(:func:`secrets.token_urlsafe`, 256 bits) is checked against ``HMAC-SHA256(k, id || 0x00 || secret)`` with a
constant-time comparison, ``k`` derived from the server secret (:mod:`tunewatch.security.server_secret`, a
``0600`` file beside the database). A 256-bit random secret needs no slow KDF: nothing can be guessed, and a
microsecond check cannot be turned into a denial of service. Unknown, revoked and known ids cost the same (one
row lookup, one HMAC), so the timing does not tell which ids exist.

A key that passed is remembered (a small LRU of :data:`VERIFIED_CACHE_SIZE` verdicts, found by a keyed BLAKE2b
digest of the presented key: the key itself is never kept), so the next requests with it skip the row lookup and
the HMAC. Failures are never remembered. A revocation (``tunewatch keys revoke``, ``DELETE /api/v1/keys/{id}``)
still takes effect at the next request, in every process: a revocation through this store empties the LRU, and
every check first asks whether another connection changed the database since, emptying the LRU when one did: a
look at the database's wal-index header (:mod:`~tunewatch.security.change_probe`, a memory comparison that keeps
the GIL) tells that no transaction was committed since the last check; only when one was is SQLite asked
(``PRAGMA data_version``, which releases the GIL: on a busy event loop, a wait for it to come back).

Keys made before this scheme have scrypt hashes (``scheme = 'scrypt'``): they still work, are checked by
:meth:`ApiKeyStore.verify_legacy` (slow, one at a time in the process) and re-hashed with the HMAC at their first
successful use; ``tunewatch keys list`` shows them until then. Scopes are ``ingest`` (POST events), ``read`` (GET
alerts, series, ...) and ``admin`` (silences, rule reload, key revocation; implies the other two).

>>> import sqlite3
>>> store = ApiKeyStore(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
>>> key, info = store.create("ci", {"ingest"}, now_ms=0)
>>> store.verify(key).name, store.verify("tw_nope_x")
('ci', None)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Literal

from tunewatch.errors import TunewatchError
from tunewatch.security.change_probe import WalIndexProbe
from tunewatch.security.server_secret import ServerSecret, database_file
from tunewatch.store.sqlite import migrate

#: ``metrics``: scrape ``/metrics`` only (per-market revenue); ``admin`` grants every scope
Scope = Literal["ingest", "read", "admin", "metrics"]
SCOPES: Final[tuple[Scope, ...]] = ("ingest", "read", "admin", "metrics")
PREFIX: Final = "tw_"
# scrypt cost of keys made before the HMAC scheme: N=2**14, r=8, p=1 (~16 MiB, tens of ms)
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
    """,
    # version 2: keyed HMAC hashes; rows made before keep their scrypt hash until their next successful use
    "ALTER TABLE api_keys ADD COLUMN scheme TEXT NOT NULL DEFAULT 'scrypt';",
]
_PURPOSE: Final = "api-keys/v1"
#: verified keys remembered per store (see the module docstring); a few hundred bytes each
VERIFIED_CACHE_SIZE: Final = 1024


class ApiKeyError(TunewatchError):
    """An API key cannot be created or revoked (bad scope, unknown id).

    >>> try:
    ...     parse_scope("superuser")
    ... except ApiKeyError as exc:
    ...     isinstance(exc, TunewatchError)
    True
    """


def parse_scope(text: str) -> Scope:
    """Validate a scope name."""
    if text not in SCOPES:
        raise ApiKeyError(f"unknown scope {text!r}: use one of {', '.join(SCOPES)}")
    return text


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key's public record (never the secret).

    >>> key = ApiKey("k1", "ingest-bot", frozenset({"ingest"}), created_ms=0)
    >>> key.allows("ingest"), key.allows("admin")
    (True, False)
    """

    id: str
    name: str
    scopes: frozenset[str]
    created_ms: int
    revoked_ms: int | None = None

    def allows(self, scope: Scope) -> bool:
        """Whether this key grants ``scope`` (``admin`` grants every scope)."""
        return self.revoked_ms is None and (scope in self.scopes or "admin" in self.scopes)


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN, maxmem=64 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class LegacyKey:
    """A well-formed key whose row still has a scrypt hash: :meth:`ApiKeyStore.verify_legacy` decides.

    >>> store = ApiKeyStore(sqlite3.connect(":memory:"))
    >>> store.check("tw_unknown_secret") is None  # neither a current key nor a legacy one
    True
    """

    key_id: str
    secret: str


_LEGACY_LOCK = threading.Lock()  #: one scrypt at a time in the process (16 MiB and tens of ms each)
_LEGACY_WAIT_S = 0.5  #: longer than this behind other checks: refused as busy, never queued without bound


class LegacyCheckBusy(ApiKeyError):
    """Another scrypt check is running (keys made before the HMAC scheme are checked one at a time).

    >>> issubclass(LegacyCheckBusy, ApiKeyError)
    True
    """


class ApiKeyStore:
    """API keys in the ``api_keys`` table of a tunewatch database (thread-safe).

    ``secret`` keys the hashes; by default the server secret of the connection's database file (an ephemeral one
    for an in-memory database).

    >>> store = ApiKeyStore(sqlite3.connect(":memory:"))
    >>> secret, key = store.create("ingest-bot", {"ingest"}, now_ms=0)
    >>> store.check(secret) == key, [k.name for k in store.list()]
    (True, ['ingest-bot'])
    >>> _ = store.revoke(key.id, now_ms=1)
    >>> store.check(secret) is None
    True
    """

    def __init__(self, conn: sqlite3.Connection, *, secret: ServerSecret | None = None) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        migrate(conn, "security.api_keys", MIGRATIONS)
        database = database_file(conn)
        self._secret = secret or ServerSecret.for_database(database)
        self._mac_key = self._secret.derive(_PURPOSE)
        self._dummy = secrets.token_bytes(_DKLEN)  # compared against for unknown ids: the same work
        # verified keys by keyed digest (a digest, never the key); emptied by any change to the database
        self._verified: OrderedDict[bytes, ApiKey] = OrderedDict()
        # keyed once: a copy of this hasher per check costs less than keying a new one
        self._digester = hashlib.blake2b(digest_size=16, key=secrets.token_bytes(32))
        self._generation = 0  # bumped by revocations through this store (its own writes leave data_version alone)
        #: the wal-index header, looked at before asking SQLite (None: ask SQLite at every check)
        self._probe = WalIndexProbe.open(conn, database)
        self._stamp = self._probe.stamp() if self._probe is not None else b""
        self._data_version = self._read_data_version()

    def _read_data_version(self) -> int:
        """SQLite's count of changes by other connections (caller holds the lock, or is the constructor)."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _remembered(self, digest: bytes) -> ApiKey | None:
        """The verdict remembered for ``digest``, if the database has not changed since (caller holds the lock)."""
        if self._probe is None:
            changed = self._changed()
        else:
            stamp = self._probe.stamp()  # taken before asking SQLite: a commit in between changes the next one
            changed = stamp != self._stamp and self._changed()
            self._stamp = stamp
        if changed:
            self._verified.clear()
            return None
        found = self._verified.get(digest)
        if found is not None:
            self._verified.move_to_end(digest)
        return found

    def _changed(self) -> bool:
        """Whether another connection changed the database since the last call (caller holds the lock)."""
        version = self._read_data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    def _remember(self, digest: bytes, key: ApiKey, generation: int) -> None:
        """Remember a verified key, unless a revocation ran since it was looked up (caller holds the lock)."""
        if generation != self._generation:
            return
        self._verified[digest] = key
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)

    def _mac(self, key_id: str, secret: str) -> bytes:
        return hmac.digest(self._mac_key, key_id.encode() + b"\x00" + secret.encode("utf-8", "surrogatepass"), "sha256")

    def create(self, name: str, scopes: set[str] | frozenset[str], now_ms: int) -> tuple[str, ApiKey]:
        """Create a key; return ``(key, record)``. The key is shown once: only its keyed hash is stored."""
        if not name.strip():
            raise ApiKeyError("an API key needs a name (who or what uses it)")
        if not scopes:
            raise ApiKeyError(f"an API key needs at least one scope: {', '.join(SCOPES)}")
        checked = frozenset(parse_scope(s) for s in scopes)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_keys (id, name, scopes, salt, hash, created_ms, scheme) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, name, ",".join(sorted(checked)), b"", self._mac(key_id, secret), now_ms, "hmac"),
            )
        return f"{PREFIX}{key_id}_{secret}", ApiKey(key_id, name, checked, now_ms)

    def list(self) -> list[ApiKey]:
        """Every key (revoked ones too), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, scopes, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id"
            ).fetchall()
        return [ApiKey(r[0], r[1], frozenset(r[2].split(",")), r[3], r[4]) for r in rows]

    def legacy_count(self) -> int:
        """Active keys still stored with a scrypt hash (re-hashed at their next successful use)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM api_keys WHERE scheme = 'scrypt' AND revoked_ms IS NULL"
            ).fetchone()
        return int(row[0])

    def revoke(self, key_id: str, now_ms: int) -> ApiKey:
        """Revoke a key by id; raise :class:`ApiKeyError` if unknown or already revoked."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", (now_ms, key_id)
            )
            self._verified.clear()
            self._generation += 1
        if cur.rowcount == 0:
            known = any(k.id == key_id for k in self.list())
            raise ApiKeyError(f"API key {key_id!r} is already revoked" if known else f"no API key with id {key_id!r}")
        return next(k for k in self.list() if k.id == key_id)

    def check(self, key: str) -> ApiKey | LegacyKey | None:
        """The active key record for ``key``, None (malformed, unknown, wrong secret, revoked), or a
        :class:`LegacyKey` to be decided by :meth:`verify_legacy`. Microseconds, whatever the key; a key verified
        before is found by its digest, without the row lookup and the HMAC."""
        hasher = self._digester.copy()
        hasher.update(key.encode("utf-8", "surrogatepass"))
        digest = hasher.digest()
        parts = key.split("_", 2)
        well_formed = len(parts) == 3 and f"{parts[0]}_" == PREFIX and bool(parts[1]) and bool(parts[2])
        key_id, secret = (parts[1], parts[2]) if well_formed else ("", key)
        with self._lock:
            remembered = self._remembered(digest)
            if remembered is not None:
                return remembered
            generation = self._generation
            row = self._conn.execute(
                "SELECT id, name, scopes, hash, created_ms, revoked_ms, scheme FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        usable = well_formed and row is not None and row[5] is None
        if usable and row[6] == "scrypt":
            return LegacyKey(key_id, secret)
        expected = row[3] if usable else self._dummy
        match = hmac.compare_digest(self._mac(key_id, secret), expected)
        if not (match and usable):
            return None
        found = ApiKey(row[0], row[1], frozenset(row[2].split(",")), row[4], None)
        with self._lock:
            self._remember(digest, found, generation)
        return found

    def verify_legacy(self, legacy: LegacyKey) -> ApiKey | None:
        """Check a key against its scrypt hash (slow: one at a time, :class:`LegacyCheckBusy` after waiting
        ``_LEGACY_WAIT_S`` for another); on success store its HMAC instead."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, name, scopes, salt, hash, created_ms, revoked_ms, scheme FROM api_keys WHERE id = ?",
                (legacy.key_id,),
            ).fetchone()
        if row is None or row[6] is not None:
            return None
        if row[7] != "scrypt":  # upgraded meanwhile
            found = self.check(f"{PREFIX}{legacy.key_id}_{legacy.secret}")
            return found if isinstance(found, ApiKey) else None
        if not _LEGACY_LOCK.acquire(timeout=_LEGACY_WAIT_S):
            raise LegacyCheckBusy("an older API key is being checked; retry in a second")
        try:
            ok = hmac.compare_digest(_scrypt(legacy.secret, row[3]), row[4])
        finally:
            _LEGACY_LOCK.release()
        if not ok:
            return None
        with self._lock:
            self._conn.execute(
                "UPDATE api_keys SET scheme = 'hmac', salt = ?, hash = ? WHERE id = ? AND scheme = 'scrypt'",
                (b"", self._mac(legacy.key_id, legacy.secret), legacy.key_id),
            )
        return ApiKey(row[0], row[1], frozenset(row[2].split(",")), row[5], None)

    def verify(self, key: str, now_ms: int | None = None) -> ApiKey | None:
        """The active key record for ``key``, or None (malformed, unknown, wrong secret or revoked); blocking
        (a legacy scrypt key is checked here too). ``now_ms`` is accepted for compatibility and unused."""
        found = self.check(key)
        if isinstance(found, LegacyKey):
            return self.verify_legacy(found)
        return found
