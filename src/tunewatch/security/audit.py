"""A tamper-evident, append-only audit trail in SQLite: who did what to which object, and when.

Each entry (id, time, actor, action, target, details, key id) is chained to the previous one:
``hash = HMAC-SHA256(k, prev_hash || canonical_json(entry))`` with ``k`` derived from the data key named in the
entry (see :class:`~tunewatch.security.keyring.Keyring`; ``prev_hash`` of the first entry is 64 zeros). Ids are
consecutive and part of the hashed entry. A one-row *head* (last id and hash, with its own HMAC) is updated in
the same transaction, so :meth:`AuditLog.verify` detects an edited, deleted, reordered or inserted entry, and
entries cut off the end, without trusting anything the database says. Triggers refuse ``UPDATE`` and ``DELETE``
on the trail (a guard against mistakes; someone with write access to the file can drop them, which the chain
then reveals). What it cannot detect: a whole database swapped for an older copy made with the same key, or
entries removed by someone who holds the key — keep the key away from the database and copy the head
(:attr:`Verification.head_hash`) somewhere else now and then.

Details are canonical JSON (sorted keys, no NaN) and must not carry personal data or secrets: keys named like
a personal field (``user_id``, ``ip_addr``) or a secret (``password``, ``token`` …) are refused. Writers in
several threads share one :class:`AuditLog`; writers in several processes serialise on SQLite's write lock.

>>> from tunewatch.security.keyring import Keyring
>>> log = AuditLog(":memory:", Keyring.generate("k1"), clock=lambda: 1_700_000_000_000)
>>> log.record("ops@example", "silence.add", "silence/1", matchers=["market=BR"], duration_s=3600).id
1
>>> log.record("ci", "rules.reload", "rules.yaml").prev_hash == log.entries()[0].hash
True
>>> log.verify().ok
True
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives import constant_time, hashes, hmac

from tunewatch.errors import TunewatchError
from tunewatch.schema import PERSONAL_FIELDS
from tunewatch.security.keyring import Keyring
from tunewatch.store.sqlite import migrate, open_store, transaction

logger = logging.getLogger(__name__)

COMPONENT: Final = "security.audit"
GENESIS: Final = "0" * 64
_ENTRY_PURPOSE: Final = "audit/entry/v1"
_HEAD_PURPOSE: Final = "audit/head/v1"
#: Detail keys refused anywhere in ``details`` (case-insensitive): personal fields and secrets.
FORBIDDEN_DETAIL_KEYS: Final = frozenset(
    {*PERSONAL_FIELDS, "password", "passwd", "secret", "token", "api_key", "apikey", "data_key", "private_key"}
)

MIGRATIONS = [
    """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL,
        kid TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_log_ts ON audit_log (ts_ms);
    CREATE TABLE audit_head (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        last_id INTEGER NOT NULL,
        last_hash TEXT NOT NULL,
        kid TEXT NOT NULL,
        mac TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END;
    """
]

_COLUMNS: Final = "id, ts_ms, actor, action, target, details, kid, prev_hash, hash"


class Auditor(Protocol):
    """Records an administrative action (e.g. :meth:`AuditLog.record`, or a service's ``audit``): stores that
    own state (silences, quarantine) take one and record their own operations, whatever interface called them.

    >>> log = AuditLog(":memory:", Keyring.generate("k1"))
    >>> def audit(actor: str, action: str, target: str, **details: object) -> None:
    ...     log.record(actor, action, target, **details)
    >>> auditor: Auditor = audit
    >>> auditor("ops@example", "silence.expire", "silence/7")
    >>> [e.action for e in log.entries()]
    ['silence.expire']
    """

    def __call__(self, actor: str, action: str, target: str, **details: Any) -> None: ...


class AuditError(TunewatchError):
    """An audit entry cannot be recorded (bad details, no key) or the trail cannot be read.

    >>> try:
    ...     AuditLog(":memory:").record("ops", "keys.create")  # recording needs a key
    ... except AuditError as exc:
    ...     isinstance(exc, TunewatchError)
    True
    """


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry of the trail; ``details`` is the canonical JSON text as stored.

    >>> log = AuditLog(":memory:", Keyring.generate("k1"), clock=lambda: 1_700_000_000_000)
    >>> entry = log.record("ops@example", "keys.revoke", "key/abc", reason="rotation")
    >>> entry.actor, entry.action, entry.details_dict, entry.kid
    ('ops@example', 'keys.revoke', {'reason': 'rotation'}, 'k1')
    """

    id: int
    ts_ms: int
    actor: str
    action: str
    target: str
    details: str
    kid: str
    prev_hash: str
    hash: str

    @property
    def details_dict(self) -> dict[str, Any]:
        """``details`` parsed."""
        parsed: dict[str, Any] = json.loads(self.details)
        return parsed


@dataclass(frozen=True, slots=True)
class Verification:
    """Outcome of :meth:`AuditLog.verify`: ``ok``, or the first bad entry id and why.

    ``checked`` entries verified; ``head_id`` and ``head_hash`` are those of the last verified entry (the end of
    the trail when ``ok``): keep a copy elsewhere to detect a later rollback of the whole database.

    >>> log = AuditLog(":memory:", Keyring.generate("k1"))
    >>> _ = log.record("ci", "rules.reload", "rules.yaml")
    >>> result = log.verify()
    >>> result.ok, result.checked
    (True, 1)
    """

    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str | None = None
    head_id: int = 0
    head_hash: str = GENESIS


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text, NaN and Infinity refused: one text for one value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class AuditLog:
    """The audit trail in the SQLite database ``db`` (a path, ``":memory:"`` or an open connection).

    A connection passed in must be in autocommit mode, as :func:`tunewatch.store.sqlite.connect` makes it, and
    created with ``check_same_thread=False`` if several threads record. ``keyring`` is needed to record and
    verify, not to list. ``clock`` returns epoch milliseconds.

    >>> with AuditLog(":memory:", Keyring.generate("k1"), clock=lambda: 1_700_000_000_000) as log:
    ...     _ = log.record("ops@example", "silence.add", "silence/1")
    ...     _ = log.record("ci", "rules.reload", "rules.yaml")
    ...     [e.action for e in log.entries(actor="ci")]
    ['rules.reload']
    """

    def __init__(
        self,
        db: str | Path | sqlite3.Connection,
        keyring: Keyring | None = None,
        *,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if isinstance(db, sqlite3.Connection):
            self._conn = db
            migrate(db, COMPONENT, MIGRATIONS)
        else:
            self._conn = open_store(db, COMPONENT, MIGRATIONS, check_same_thread=False)
        self._keyring = keyring
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __repr__(self) -> str:
        return f"AuditLog(keyring={self._keyring!r})"

    # -- writing --------------------------------------------------------------------------------------------------

    def record(self, actor: str, action: str, target: str = "", **details: Any) -> AuditEntry:
        """Append an entry and return it; ``details`` must be JSON-serialisable and free of personal data."""
        keyring = self._require_keyring("record")
        for name, value in (("actor", actor), ("action", action)):
            if not isinstance(value, str) or not value.strip():
                raise AuditError(f"audit {name} must be a non-empty string")
        if not isinstance(target, str):
            raise AuditError("audit target must be a string")
        _check_details(details, "details")
        try:
            details_json = canonical_json(details)
        except (TypeError, ValueError) as exc:
            raise AuditError(f"audit details of {action!r} are not plain JSON: {exc}") from None
        kid = keyring.active
        with self._lock, transaction(self._conn):
            last = self._conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            prev_id, prev_hash = (int(last[0]), str(last[1])) if last else (0, GENESIS)
            entry_id, ts_ms = prev_id + 1, int(self._clock())
            digest = _entry_hash(keyring, kid, prev_hash, entry_id, ts_ms, actor, action, target, details_json)
            self._conn.execute(
                f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, ts_ms, actor, action, target, details_json, kid, prev_hash, digest),
            )
            self._conn.execute(
                "INSERT INTO audit_head (one, last_id, last_hash, kid, mac) VALUES (1, ?, ?, ?, ?) "
                "ON CONFLICT(one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash, "
                "kid = excluded.kid, mac = excluded.mac",
                (entry_id, digest, kid, _head_mac(keyring, kid, entry_id, digest)),
            )
        logger.debug("audit entry %d recorded (action %s)", entry_id, action)
        return AuditEntry(entry_id, ts_ms, actor, action, target, details_json, kid, prev_hash, digest)

    # -- reading --------------------------------------------------------------------------------------------------

    def entries(
        self,
        *,
        since_ms: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries in id order, optionally only from ``since_ms`` on, by ``actor``, of ``action``; the newest
        ``limit`` when given."""
        where, args = ["1 = 1"], []
        for clause, value in (("ts_ms >= ?", since_ms), ("actor = ?", actor), ("action = ?", action)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {max(0, int(limit))}"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [_entry(row) for row in reversed(rows)]

    def verify(self) -> Verification:
        """Walk the whole chain; report the first entry that was edited, deleted, reordered or inserted."""
        keyring = self._require_keyring("verify")
        with self._lock, self._snapshot():
            head = self._conn.execute("SELECT last_id, last_hash, kid, mac FROM audit_head WHERE one = 1").fetchone()
            checked, prev_hash, last_id = 0, GENESIS, 0
            for entry in self._iter_rows():
                problem = _check_entry(keyring, entry, last_id + 1, prev_hash)
                if problem is not None:
                    return Verification(False, checked, entry.id, problem, last_id, prev_hash)
                checked, prev_hash, last_id = checked + 1, entry.hash, entry.id
        head_problem = _check_head(keyring, head, last_id, prev_hash)
        if head_problem is not None:
            bad_id, reason = head_problem
            return Verification(False, checked, bad_id, reason, last_id, prev_hash)
        return Verification(True, checked, None, None, last_id, prev_hash)

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """A read transaction: the head and the rows are read from one consistent state of the database."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def _iter_rows(self) -> Iterator[AuditEntry]:
        cursor = self._conn.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY id")
        while rows := cursor.fetchmany(1000):
            yield from (_entry(row) for row in rows)

    def _require_keyring(self, what: str) -> Keyring:
        if self._keyring is None:
            raise AuditError(f"cannot {what} audit entries without the data keyring (TUNEWATCH_DATA_KEY[_FILE])")
        return self._keyring


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(int(row[0]), int(row[1]), *(str(v) for v in row[2:]))


def _entry_hash(
    keyring: Keyring,
    kid: str,
    prev_hash: str,
    entry_id: int,
    ts_ms: int,
    actor: str,
    action: str,
    target: str,
    details_json: str,
) -> str:
    body = {
        "id": entry_id,
        "ts_ms": ts_ms,
        "actor": actor,
        "action": action,
        "target": target,
        "details": details_json,
        "kid": kid,
    }
    mac = hmac.HMAC(keyring.derive(_ENTRY_PURPOSE, kid), hashes.SHA256())
    mac.update(prev_hash.encode("ascii") + canonical_json(body).encode())
    return mac.finalize().hex()


def _head_mac(keyring: Keyring, kid: str, last_id: int, last_hash: str) -> str:
    mac = hmac.HMAC(keyring.derive(_HEAD_PURPOSE, kid), hashes.SHA256())
    mac.update(f"{last_id}|{last_hash}".encode("ascii"))
    return mac.finalize().hex()


def _same(a: str, b: str) -> bool:
    return constant_time.bytes_eq(a.encode(), b.encode())


def _check_entry(keyring: Keyring, entry: AuditEntry, expected_id: int, prev_hash: str) -> str | None:
    """Why ``entry`` breaks the chain, or ``None``."""
    if entry.prev_hash != prev_hash:
        return (
            f"prev_hash does not match the hash of the entry before it (id {expected_id - 1}): "
            "an entry was deleted, reordered or inserted here"
        )
    if entry.id != expected_id:
        return f"id {entry.id} where {expected_id} was expected: entries were deleted, reordered or inserted"
    if entry.kid not in keyring:
        return f"signed with key id {entry.kid!r}, not in the keyring (known: {', '.join(keyring.kids)})"
    expected = _entry_hash(
        keyring, entry.kid, entry.prev_hash, entry.id, entry.ts_ms, entry.actor, entry.action, entry.target,
        entry.details,
    )  # fmt: skip
    if not _same(expected, entry.hash):
        return "hash mismatch: the entry was edited or forged (its hash does not match its content)"
    return None


def _check_head(keyring: Keyring, head: tuple[Any, ...] | None, last_id: int, last_hash: str) -> tuple[int, str] | None:
    """``(first bad id, reason)`` if the head disagrees with the end of the chain, else ``None``."""
    if head is None:
        return None if last_id == 0 else (last_id, "the chain head record is missing (deleted by hand)")
    head_id, head_hash, kid, mac = int(head[0]), str(head[1]), str(head[2]), str(head[3])
    if kid not in keyring or not _same(_head_mac(keyring, kid, head_id, head_hash), mac):
        return (max(last_id, 1), "the chain head record was altered")
    if head_id > last_id:
        return (last_id + 1, f"entries {last_id + 1}..{head_id} are missing: the end of the trail was deleted")
    if head_id != last_id or not _same(head_hash, last_hash):
        return (head_id + 1, f"entries after {head_id} were appended without going through the audit log")
    return None


def _check_details(value: Any, path: str) -> None:
    """Refuse keys that name personal data or secrets, at any depth."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditError(f"audit {path}: keys must be strings")
            if key.lower() in FORBIDDEN_DETAIL_KEYS:
                raise AuditError(
                    f"audit {path}.{key}: personal data and secrets must not go into the audit trail "
                    "(record a pseudonym or an id instead)"
                )
            _check_details(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_details(item, f"{path}[{i}]")


#: key id of the audit signing key derived from the server secret (used when no data key is configured)
LOCAL_KID: Final = "local"
_LOCAL_PURPOSE: Final = "audit-signing/v1"


def audit_keyring(db: str | Path, *, create: bool = True) -> Keyring:
    """The keyring that signs ``db``'s audit trail: the data keys when configured (``TUNEWATCH_DATA_KEY`` /
    ``_FILE``), else a key derived from the database's server secret (generated on first use, ``0600``, see
    :mod:`tunewatch.security.server_secret`), key id ``local``. An invalid data-key configuration is refused,
    never silently replaced. Without ``create`` (to verify), a missing server secret is the data keyring's
    "no data key" error."""
    from tunewatch.security.keyring import ENV_KEY, ENV_KEY_FILE
    from tunewatch.security.server_secret import ENV_SECRET_FILE, SUFFIX, ServerSecret

    secret_file = Path(os.environ.get(ENV_SECRET_FILE) or f"{db}{SUFFIX}")
    if os.environ.get(ENV_KEY) or os.environ.get(ENV_KEY_FILE) or not (create or secret_file.is_file()):
        return Keyring.from_env()
    return Keyring([(LOCAL_KID, ServerSecret.for_database(db).derive(_LOCAL_PURPOSE))])


def record_admin_action(db: str | Path, action: str, target: str, **details: Any) -> bool:
    """Record an administrative action (key, silence, rule changes) in the audit trail of ``db``, signed with
    :func:`audit_keyring`; the actor is the operating-system user. Returns True (kept for callers that
    checked whether a trail existed: there always is one now)."""
    import getpass

    with AuditLog(db, audit_keyring(db)) as log:
        log.record(getpass.getuser(), action, target, **details)
    return True
