"""The quarantine table: every rejected event kept verbatim (its raw bytes as received), with reasons, source
and time — the rows and their queries, below the operations on them.

The table lives in a SQLite database in WAL mode (see :mod:`tunewatch.store.sqlite`), so a running pipeline can
add rejected events while the CLI lists, exports or replays them. Raw bytes are sealed at rest when a data key is
configured (:mod:`tunewatch.quarantine.crypto`). Export, replay and rekey (:mod:`~tunewatch.quarantine.export`,
:mod:`~tunewatch.quarantine.replay`, :mod:`~tunewatch.quarantine.rekey`) work on these rows;
:class:`~tunewatch.quarantine.store.QuarantineStore` puts them together and audits each operation.

>>> import polars as pl
>>> rows = QuarantineRows(":memory:")
>>> rows.add(pl.DataFrame({"source": ["api"], "line_no": [1], "event_id": ["e1"],
...                        "reasons": [["market: unknown_country"]], "raw": [b"{}"]}), received_at=0.0)
1
>>> rows.count(), rows.get(1).reasons
(1, ('market: unknown_country',))
"""

from __future__ import annotations

import builtins
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Self

import msgspec
import polars as pl

from tunewatch.errors import TunewatchError
from tunewatch.quarantine.crypto import NO_KEY_HINT, RawCipher, configured_keyring
from tunewatch.security.audit import Auditor
from tunewatch.security.keyring import Keyring
from tunewatch.store.sqlite import open_store, transaction

logger = logging.getLogger(__name__)

COMPONENT = "store.quarantine"

MIGRATIONS = [
    """
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at REAL NOT NULL,
        source TEXT NOT NULL,
        line_no INTEGER,
        event_id TEXT,
        reasons TEXT NOT NULL,
        raw BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at REAL,
        replayed_at REAL,
        outcome TEXT
    );
    CREATE INDEX quarantine_received_at ON quarantine (received_at);
    """,
    # raw_kid: key id of the AES-256-GCM key sealing raw (nonce | ciphertext | tag); NULL: raw is plaintext
    "ALTER TABLE quarantine ADD COLUMN raw_kid TEXT;",
    # location: where the client sent it, as JSON, e.g. {"request": 2, "line": 1} (HTTP ingest); NULL: unknown
    "ALTER TABLE quarantine ADD COLUMN location TEXT;",
]
# reasons: a JSON array of "field: reason" codes. One table with one (append-only) index keeps inserts well over
# 100K rows/s; filters and counts by reason scan with json_each, which is fine at quarantine sizes.

State = Literal["pending", "replayed", "all"]
Outcome = Literal["accepted", "duplicate"]

REQUIRED_COLUMNS = ("source", "line_no", "event_id", "reasons", "raw")
_PAGE = 20_000  # entries per page of iter()

_INSERT_ENTRY = (
    "INSERT INTO quarantine (id, received_at, source, line_no, event_id, reasons, raw, raw_kid, location) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = (
    "q.id, q.received_at, q.source, q.line_no, q.event_id, q.raw, q.attempts, q.last_attempt_at, q.replayed_at, "
    "q.outcome, q.reasons, q.raw_kid, q.location"
)
FROM_ENV: Final = "env"  #: ``keyring=`` default: the data keyring of the environment, if one is configured


class QuarantineError(TunewatchError):
    """The quarantine store cannot be opened or used as asked (missing database, bad frame, bad format)."""


@dataclass(frozen=True, slots=True)
class QuarantinedEvent:
    """One quarantined event. ``raw`` is exactly the bytes received (empty when the line was too long to keep)."""

    id: int
    received_at: float  #: epoch seconds when it was quarantined
    source: str
    line_no: int | None
    event_id: str | None
    reasons: tuple[str, ...]  #: ``field: reason`` codes, latest attempt
    raw: bytes
    attempts: int = 0  #: replay attempts so far
    last_attempt_at: float | None = None
    replayed_at: float | None = None
    outcome: str | None = None  #: ``accepted`` or ``duplicate`` once replayed
    location: dict[str, Any] | None = None  #: where the client sent it, e.g. ``{"request": 2, "line": 1}``

    @property
    def state(self) -> str:
        """``pending`` or ``replayed``."""
        return "pending" if self.replayed_at is None else "replayed"


class QuarantineRows:
    """Rejected events in a SQLite database (WAL); safe to share between a pipeline and the CLI.

    ``path`` is a database file (created unless ``create=False``) or ``":memory:"``. ``keyring`` seals the raw
    bytes of new rows (AES-256-GCM, its active key) and opens encrypted rows: by default the data keyring of the
    environment (``TUNEWATCH_DATA_KEY`` / ``TUNEWATCH_DATA_KEY_FILE``) when one is configured, else none (raw bytes
    stored in plaintext, as before encryption existed); ``None`` forces plaintext writes. Opening a file-backed
    store logs whether its raw bytes are encrypted (a warning when not), unless ``announce=False``. Deleted and
    rewritten rows are overwritten on disk (``PRAGMA secure_delete``), so purged personal data does not linger.
    ``audit`` records purges, replays, exports, rekeys and reveals of raw bytes, with the actor the caller names
    (:meth:`record`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        check_same_thread: bool = True,
        keyring: Keyring | Literal["env"] | None = FROM_ENV,
        announce: bool = True,
        audit: Auditor | None = None,
    ) -> None:
        target = str(path)
        self.audit = audit
        if not create and target != ":memory:" and not Path(target).is_file():
            raise QuarantineError(f"no quarantine database at {target} (nothing quarantined yet? see --db)")
        self.path = target
        self.cipher = RawCipher(configured_keyring() if isinstance(keyring, str) else keyring)
        self.conn = open_store(target, COMPONENT, MIGRATIONS, check_same_thread=check_same_thread)
        self.conn.execute("PRAGMA secure_delete = ON")
        if announce and target != ":memory:":
            if self.encrypting_kid is None:
                logger.warning("quarantine %s: raw bytes of rejected events are NOT encrypted; %s", target, NO_KEY_HINT)
            else:
                logger.info("quarantine %s: raw bytes encrypted (AES-256-GCM), key id %s", target, self.encrypting_kid)

    @property
    def encrypting_kid(self) -> str | None:
        """Key id sealing the raw bytes of new rows, or None when they are stored in plaintext."""
        return self.cipher.active_kid

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- writing

    def add(self, rejected: pl.DataFrame, *, received_at: float | None = None) -> int:
        """Store every row of a validator's ``rejected`` frame; return how many were stored.

        Columns: ``source``, ``line_no``, ``event_id``, ``reasons`` (list of ``field: reason``), ``raw``
        (bytes as received). One transaction with batched inserts; a pipeline's ``on_rejected`` callback calls this.
        """
        return len(self.insert(rejected, received_at))

    def insert(self, rejected: pl.DataFrame, received_at: float | None) -> builtins.list[int]:
        missing = [c for c in REQUIRED_COLUMNS if c not in rejected.columns]
        if missing:
            raise QuarantineError(f"rejected frame lacks column(s) {', '.join(missing)}")
        n = rejected.height
        if n == 0:
            return []
        when = time.time() if received_at is None else float(received_at)
        try:
            with transaction(self.conn) as conn:
                row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'quarantine'").fetchone()
                first = (int(row[0]) if row else 0) + 1
                ids = pl.int_range(first, first + n, dtype=pl.Int64, eager=True).alias("id")
                frame = rejected.select(
                    ids,
                    pl.lit(when, dtype=pl.Float64).alias("received_at"),
                    pl.col("source").cast(pl.String).fill_null(""),
                    pl.col("line_no").cast(pl.Int64),
                    pl.col("event_id").cast(pl.String),
                    _reasons_json(pl.col("reasons")),
                    pl.col("raw").cast(pl.Binary).fill_null(b""),
                    (pl.col("location").cast(pl.String) if "location" in rejected.columns
                     else pl.lit(None, dtype=pl.String)).alias("location"),
                )  # fmt: skip
                if self.cipher.keyring is not None:
                    kid, sealed = self.cipher.seal(ids.to_list(), frame.get_column("raw").to_list())
                    frame = frame.with_columns(pl.Series("raw", sealed, dtype=pl.Binary))
                else:
                    kid = None
                frame = frame.with_columns(pl.lit(kid, dtype=pl.String).alias("raw_kid")).select(
                    pl.exclude("location"), "location"
                )
                conn.executemany(_INSERT_ENTRY, frame.iter_rows())
        except (sqlite3.DatabaseError, pl.exceptions.PolarsError) as exc:
            raise QuarantineError(f"cannot quarantine {n} events in {self.path or 'database'}: {exc}") from exc
        return ids.to_list()

    def mark_replayed(self, ids: Iterable[int], *, outcome: Outcome = "accepted", at: float | None = None) -> int:
        """Mark pending entries as replayed (accepted, or a duplicate of an accepted event); return how many."""
        when = time.time() if at is None else at
        rows = [(when, outcome, int(i)) for i in ids]
        with transaction(self.conn) as conn:
            before = conn.total_changes
            conn.executemany(
                "UPDATE quarantine SET replayed_at = ?, outcome = ? WHERE id = ? AND replayed_at IS NULL", rows
            )
            return conn.total_changes - before

    def purge(
        self, older_than: float, *, replayed_only: bool = False, actor: str | None = None, via: str | None = None
    ) -> int:
        """Delete entries quarantined before ``older_than`` (epoch seconds); return how many were deleted."""
        cond = "received_at < ?" + (" AND replayed_at IS NOT NULL" if replayed_only else "")
        with transaction(self.conn) as conn:
            deleted = int(conn.execute(f"DELETE FROM quarantine WHERE {cond}", (older_than,)).rowcount)
        self.record(actor, "quarantine.purge", via, deleted=deleted, older_than=older_than,
                    replayed_only=replayed_only)  # fmt: skip
        return deleted

    def record(self, actor: str | None, action: str, via: str | None, **details: Any) -> None:
        """Record an operation on this quarantine in the audit trail (when the store has one)."""
        if self.audit is not None:
            extra = {"via": via} if via else {}
            self.audit(actor or "unknown", action, self.path, **details, **extra)

    # ------------------------------------------------------------------------------------------- reading

    def get(self, entry_id: int) -> QuarantinedEvent | None:
        """The entry with this id, or None."""
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM quarantine q WHERE q.id = ?", (entry_id,)).fetchone()
        return _entry(row, self.cipher) if row else None

    def recent(self, limit: int = 100) -> builtins.list[QuarantinedEvent]:
        """The newest ``limit`` entries (any state), newest first."""
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM quarantine q ORDER BY q.id DESC LIMIT ?", (limit,))
        return [_entry(row, self.cipher) for row in rows.fetchall()]

    def revealed(self, entries: Sequence[QuarantinedEvent], *, actor: str | None, via: str | None) -> None:
        """Record that ``entries``' raw bytes were shown unmasked (``--reveal``, ``?reveal=true``)."""
        if entries:
            self.record(actor, "quarantine.reveal", via, ids=[e.id for e in entries][:1000], count=len(entries))

    def list(
        self,
        *,
        reason: str | None = None,
        source: str | None = None,
        since: float | None = None,
        state: State = "pending",
        ids: Sequence[int] | None = None,
        limit: int | None = 100,
    ) -> builtins.list[QuarantinedEvent]:
        """Entries matching every filter, oldest first.

        ``reason`` is a full code (``market: unknown_country``) or a field name (``market``, any of its reasons);
        ``source`` an exact source; ``since`` epoch seconds (quarantined at or after); ``state`` pending (default),
        replayed or all; ``limit`` None for no limit.
        """
        return builtins.list(self.iter(reason=reason, source=source, since=since, state=state, ids=ids, limit=limit))

    def iter(
        self,
        *,
        reason: str | None = None,
        source: str | None = None,
        since: float | None = None,
        state: State = "pending",
        ids: Sequence[int] | None = None,
        limit: int | None = None,
    ) -> Iterator[QuarantinedEvent]:
        """Like :meth:`list`, lazily and in pages (memory bounded whatever the number of entries)."""
        where, params = _where(reason, source, since, state, ids)
        last, left = 0, limit
        while left is None or left > 0:
            page = _PAGE if left is None else min(_PAGE, left)
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM quarantine q WHERE q.id > ? AND {where} ORDER BY q.id LIMIT ?",
                (last, *params, page),
            ).fetchall()
            for row in rows:
                yield _entry(row, self.cipher)
            if len(rows) < page:
                return
            last = int(rows[-1][0])
            if left is not None:
                left -= len(rows)

    def count(
        self, *, reason: str | None = None, source: str | None = None, since: float | None = None, state: State = "all"
    ) -> int:
        """Number of entries matching the filters (all states by default)."""
        where, params = _where(reason, source, since, state, None)
        return int(self.conn.execute(f"SELECT count(*) FROM quarantine q WHERE {where}", params).fetchone()[0])

    def count_by_reason(
        self, *, source: str | None = None, since: float | None = None, state: State = "pending"
    ) -> dict[str, int]:
        """Entries per reason code, most frequent first (an entry with several reasons counts under each)."""
        where, params = _where(None, source, since, state, None)
        rows = self.conn.execute(
            "SELECT r.value, count(*) FROM quarantine q, json_each(q.reasons) r "
            f"WHERE {where} GROUP BY r.value ORDER BY count(*) DESC, r.value",
            params,
        ).fetchall()
        return {str(reason): int(n) for reason, n in rows}

    def count_by_source(self, *, since: float | None = None, state: State = "pending") -> dict[str, int]:
        """Entries per source, most frequent first."""
        where, params = _where(None, None, since, state, None)
        rows = self.conn.execute(
            f"SELECT q.source, count(*) FROM quarantine q WHERE {where} GROUP BY q.source ORDER BY count(*) DESC",
            params,
        ).fetchall()
        return {str(src): int(n) for src, n in rows}

    def count_by_key(self) -> dict[str | None, int]:
        """Entries per key id sealing their raw bytes (None: plaintext), most frequent first."""
        rows = self.conn.execute(
            "SELECT raw_kid, count(*) FROM quarantine GROUP BY raw_kid ORDER BY count(*) DESC, raw_kid"
        ).fetchall()
        return {None if kid is None else str(kid): int(n) for kid, n in rows}

    def time_range(self, *, state: State = "pending") -> tuple[float, float] | None:
        """Oldest and newest ``received_at`` among the entries in ``state``, or None when there are none."""
        where, params = _where(None, None, None, state, None)
        row = self.conn.execute(f"SELECT min(received_at), max(received_at) FROM quarantine q WHERE {where}", params)
        lo, hi = row.fetchone()
        return None if lo is None else (float(lo), float(hi))


# ----------------------------------------------------------------------------------------------- helpers


def _reasons_json(reasons: pl.Expr) -> pl.Expr:
    """A list-of-strings column as JSON array text, vectorised (``{"r":[...]}`` with the wrapper cut off)."""
    listed = reasons.cast(pl.List(pl.String)).fill_null(pl.lit([], dtype=pl.List(pl.String)))
    wrapped = pl.struct(listed.alias("r")).struct.json_encode()
    return wrapped.str.slice(5).str.strip_suffix("}").alias("reasons")


def _where(
    reason: str | None, source: str | None, since: float | None, state: State, ids: Sequence[int] | None
) -> tuple[str, builtins.list[Any]]:
    clauses: builtins.list[str] = []
    params: builtins.list[Any] = []
    if state == "pending":
        clauses.append("q.replayed_at IS NULL")
    elif state == "replayed":
        clauses.append("q.replayed_at IS NOT NULL")
    elif state != "all":
        raise QuarantineError(f"unknown state {state!r}: use pending, replayed or all")
    if reason:
        if ": " in reason:
            clauses.append("EXISTS (SELECT 1 FROM json_each(q.reasons) WHERE value = ?)")
            params.append(reason)
        else:
            clauses.append("EXISTS (SELECT 1 FROM json_each(q.reasons) WHERE value >= ? AND value < ?)")
            params += [f"{reason}: ", f"{reason}:!"]  # '!' sorts right after ' ': every "field: ..." code
    if source is not None:
        clauses.append("q.source = ?")
        params.append(source)
    if since is not None:
        clauses.append("q.received_at >= ?")
        params.append(since)
    if ids is not None:
        wanted = sorted({int(i) for i in ids})
        clauses.append("q.id IN (SELECT value FROM json_each(?))")
        params.append(msgspec.json.encode(wanted).decode())
    return (" AND ".join(clauses) or "1"), params


def _entry(row: Sequence[Any], cipher: RawCipher) -> QuarantinedEvent:
    entry_id = int(row[0])
    return QuarantinedEvent(
        id=entry_id,
        received_at=float(row[1]),
        source=str(row[2]),
        line_no=row[3],
        event_id=row[4],
        raw=cipher.open(entry_id, row[11], bytes(row[5])),
        attempts=int(row[6]),
        last_attempt_at=row[7],
        replayed_at=row[8],
        outcome=row[9],
        reasons=tuple(msgspec.json.decode(row[10] or "[]")),
        location=json.loads(row[12]) if row[12] else None,
    )
