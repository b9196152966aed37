"""Quarantine: every rejected event kept verbatim (its raw bytes as received), with reasons, source and time.

The store is a SQLite database in WAL mode (see :mod:`tunewatch.store.sqlite`), so a running pipeline can add
rejected events while the CLI lists, exports or replays them. An entry is *pending* until a replay accepts
it (or finds it to be a duplicate of an accepted event); it is then *replayed* and kept, with its outcome,
until purged. Replay feeds the stored raw lines (or lines the user fixed in an export) back through a
validator or a pipeline, so they pass validation *and* duplicate detection again.

The raw bytes stay exactly as received, personal data included: this is the quarantine. Presenting them
(masking personal fields) is the job of whoever shows them. When a data key is configured (``TUNEWATCH_DATA_KEY``
or ``TUNEWATCH_DATA_KEY_FILE``, the keyring's usual configuration) they are stored encrypted with AES-256-GCM and
decrypted transparently on reading (:mod:`tunewatch.store.quarantine_crypto`); rows written in plaintext (no key,
or before encryption existed) still read, and :meth:`QuarantineStore.rekey` encrypts them.

Imports :mod:`tunewatch.ingest` (to parse replayed lines) besides the store helpers; the validator or pipeline
that replay feeds is given by the caller and typed structurally (:class:`Validates`, :class:`Ingests`).

>>> import polars as pl
>>> store = QuarantineStore(":memory:")
>>> rejected = pl.DataFrame({"source": ["api"], "line_no": [1], "event_id": ["e1"],
...                          "reasons": [["market: unknown_country"]], "raw": [b'{"event_id":"e1","market":"XX"}']})
>>> store.add(rejected, received_at=0.0)
1
>>> store.count_by_reason()
{'market: unknown_country': 1}
>>> store.get(1).raw
b'{"event_id":"e1","market":"XX"}'
"""

from __future__ import annotations

import base64
import builtins
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import msgspec
import polars as pl

from tunewatch.errors import TunewatchError
from tunewatch.ingest.batch import RawBatch
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.security.keyring import Keyring
from tunewatch.store.quarantine_crypto import NO_KEY_HINT, RawCipher, RawDecryptionError, configured_keyring
from tunewatch.store.sqlite import open_store, transaction

if TYPE_CHECKING:
    from collections.abc import Callable

    from tunewatch.validate.validator import ValidationResult

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
]
# reasons: a JSON array of "field: reason" codes. One table with one (append-only) index keeps inserts well over
# 100K rows/s; filters and counts by reason scan with json_each, which is fine at quarantine sizes.

State = Literal["pending", "replayed", "all"]
ExportFormat = Literal["ndjson", "raw"]
Outcome = Literal["accepted", "duplicate"]

REQUIRED_COLUMNS = ("source", "line_no", "event_id", "reasons", "raw")
_PAGE = 20_000  # entries per replay batch / export page
_SQL_VARS = 500  # ids per IN (...) list

_INSERT_ENTRY = (
    "INSERT INTO quarantine (id, received_at, source, line_no, event_id, reasons, raw, raw_kid) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = (
    "q.id, q.received_at, q.source, q.line_no, q.event_id, q.raw, q.attempts, q.last_attempt_at, q.replayed_at, "
    "q.outcome, q.reasons, q.raw_kid"
)
FROM_ENV: Final = "env"  #: ``keyring=`` default: the data keyring of the environment, if one is configured
_REKEY_PAGE = 5_000


class Validates(Protocol):
    """What replay needs of a validator (:class:`tunewatch.validate.EnterpriseDataValidator`)."""

    def validate(self, events: RawBatch) -> ValidationResult:
        """Validate one batch."""
        ...


class _Outcome(Protocol):
    @property
    def validation(self) -> ValidationResult: ...


@runtime_checkable
class Ingests(Protocol):
    """What replay needs of a pipeline (:class:`tunewatch.pipeline.core.Pipeline`)."""

    on_rejected: Callable[[pl.DataFrame], object] | None

    def ingest(self, events: RawBatch) -> _Outcome:
        """Run one batch through every stage."""
        ...


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

    @property
    def state(self) -> str:
        """``pending`` or ``replayed``."""
        return "pending" if self.replayed_at is None else "replayed"


@dataclass(slots=True)
class ReplayReport:
    """What a replay did. ``received == accepted + rejected + duplicates`` (``skipped`` entries were not sent)."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped: int = 0  #: entries that cannot be replayed as an NDJSON line (raw not kept, not a JSON object)
    replayed_ids: list[int] = field(default_factory=list)  #: entries now marked replayed
    rejected_ids: list[int] = field(default_factory=list)  #: entries rejected again (reasons updated)
    new_ids: list[int] = field(default_factory=list)  #: rejected file lines not linked to a pending entry
    reasons: Counter[str] = field(default_factory=Counter)  #: reasons of this replay's rejections

    @property
    def balanced(self) -> bool:
        """True when every replayed line is accounted for."""
        return self.received == self.accepted + self.rejected + self.duplicates


@dataclass(frozen=True, slots=True)
class RekeyReport:
    """What :meth:`QuarantineStore.rekey` did: rows newly encrypted, re-encrypted under the active key, untouched."""

    kid: str  #: the active key id every row is now sealed with
    encrypted: int = 0  #: plaintext rows now encrypted
    reencrypted: int = 0  #: rows moved from an older key to the active one
    unchanged: int = 0  #: rows already under the active key


class _ExportRecord(msgspec.Struct, forbid_unknown_fields=False):
    """The part of an exported NDJSON record that replay reads back."""

    quarantine_id: int | None = None
    raw: str | None = None
    raw_b64: str | None = None


@dataclass(slots=True)
class _Line:
    raw: bytes
    link: int | None  # quarantine id this line replays, if any
    line_no: int | None = None  # line in the replayed file


class QuarantineStore:
    """Rejected events in a SQLite database (WAL); safe to share between a pipeline and the CLI.

    ``path`` is a database file (created unless ``create=False``) or ``":memory:"``. ``keyring`` seals the raw
    bytes of new rows (AES-256-GCM, its active key) and opens encrypted rows: by default the data keyring of the
    environment (``TUNEWATCH_DATA_KEY`` / ``TUNEWATCH_DATA_KEY_FILE``) when one is configured, else none (raw bytes
    stored in plaintext, as before encryption existed); ``None`` forces plaintext writes. Opening a file-backed
    store logs whether its raw bytes are encrypted (a warning when not), unless ``announce=False``. Deleted and
    rewritten rows are overwritten on disk (``PRAGMA secure_delete``), so purged personal data does not linger.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        check_same_thread: bool = True,
        keyring: Keyring | Literal["env"] | None = FROM_ENV,
        announce: bool = True,
    ) -> None:
        target = str(path)
        if not create and target != ":memory:" and not Path(target).is_file():
            raise QuarantineError(f"no quarantine database at {target} (nothing quarantined yet? see --db)")
        self.path = target
        self._cipher = RawCipher(configured_keyring() if isinstance(keyring, str) else keyring)
        self._conn = open_store(target, COMPONENT, MIGRATIONS, check_same_thread=check_same_thread)
        self._conn.execute("PRAGMA secure_delete = ON")
        if announce and target != ":memory:":
            if self.encrypting_kid is None:
                logger.warning("quarantine %s: raw bytes of rejected events are NOT encrypted; %s", target, NO_KEY_HINT)
            else:
                logger.info("quarantine %s: raw bytes encrypted (AES-256-GCM), key id %s", target, self.encrypting_kid)

    @property
    def encrypting_kid(self) -> str | None:
        """Key id sealing the raw bytes of new rows, or None when they are stored in plaintext."""
        return self._cipher.active_kid

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> QuarantineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- writing

    def add(self, rejected: pl.DataFrame, *, received_at: float | None = None) -> int:
        """Store every row of a validator's ``rejected`` frame; return how many were stored.

        Columns: ``source``, ``line_no``, ``event_id``, ``reasons`` (list of ``field: reason``), ``raw``
        (bytes as received). One transaction with batched inserts; a pipeline's ``on_rejected`` callback calls this.
        """
        return len(self._insert(rejected, received_at))

    def _insert(self, rejected: pl.DataFrame, received_at: float | None) -> builtins.list[int]:
        missing = [c for c in REQUIRED_COLUMNS if c not in rejected.columns]
        if missing:
            raise QuarantineError(f"rejected frame lacks column(s) {', '.join(missing)}")
        n = rejected.height
        if n == 0:
            return []
        when = time.time() if received_at is None else float(received_at)
        try:
            with transaction(self._conn) as conn:
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
                )
                if self._cipher.keyring is not None:
                    kid, sealed = self._cipher.seal(ids.to_list(), frame.get_column("raw").to_list())
                    frame = frame.with_columns(pl.Series("raw", sealed, dtype=pl.Binary))
                else:
                    kid = None
                frame = frame.with_columns(pl.lit(kid, dtype=pl.String).alias("raw_kid"))
                conn.executemany(_INSERT_ENTRY, frame.iter_rows())
        except (sqlite3.DatabaseError, pl.exceptions.PolarsError) as exc:
            raise QuarantineError(f"cannot quarantine {n} events in {self.path or 'database'}: {exc}") from exc
        return ids.to_list()

    def mark_replayed(self, ids: Iterable[int], *, outcome: Outcome = "accepted", at: float | None = None) -> int:
        """Mark pending entries as replayed (accepted, or a duplicate of an accepted event); return how many."""
        when = time.time() if at is None else at
        rows = [(when, outcome, int(i)) for i in ids]
        with transaction(self._conn) as conn:
            before = conn.total_changes
            conn.executemany(
                "UPDATE quarantine SET replayed_at = ?, outcome = ? WHERE id = ? AND replayed_at IS NULL", rows
            )
            return conn.total_changes - before

    def purge(self, older_than: float, *, replayed_only: bool = False) -> int:
        """Delete entries quarantined before ``older_than`` (epoch seconds); return how many were deleted."""
        cond = "received_at < ?" + (" AND replayed_at IS NOT NULL" if replayed_only else "")
        with transaction(self._conn) as conn:
            return conn.execute(f"DELETE FROM quarantine WHERE {cond}", (older_than,)).rowcount

    # ------------------------------------------------------------------------------------------- reading

    def get(self, entry_id: int) -> QuarantinedEvent | None:
        """The entry with this id, or None."""
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM quarantine q WHERE q.id = ?", (entry_id,)).fetchone()
        return _entry(row, self._cipher) if row else None

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
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM quarantine q WHERE q.id > ? AND {where} ORDER BY q.id LIMIT ?",
                (last, *params, page),
            ).fetchall()
            for row in rows:
                yield _entry(row, self._cipher)
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
        return int(self._conn.execute(f"SELECT count(*) FROM quarantine q WHERE {where}", params).fetchone()[0])

    def count_by_reason(
        self, *, source: str | None = None, since: float | None = None, state: State = "pending"
    ) -> dict[str, int]:
        """Entries per reason code, most frequent first (an entry with several reasons counts under each)."""
        where, params = _where(None, source, since, state, None)
        rows = self._conn.execute(
            "SELECT r.value, count(*) FROM quarantine q, json_each(q.reasons) r "
            f"WHERE {where} GROUP BY r.value ORDER BY count(*) DESC, r.value",
            params,
        ).fetchall()
        return {str(reason): int(n) for reason, n in rows}

    def count_by_source(self, *, since: float | None = None, state: State = "pending") -> dict[str, int]:
        """Entries per source, most frequent first."""
        where, params = _where(None, None, since, state, None)
        rows = self._conn.execute(
            f"SELECT q.source, count(*) FROM quarantine q WHERE {where} GROUP BY q.source ORDER BY count(*) DESC",
            params,
        ).fetchall()
        return {str(src): int(n) for src, n in rows}

    def count_by_key(self) -> dict[str | None, int]:
        """Entries per key id sealing their raw bytes (None: plaintext), most frequent first."""
        rows = self._conn.execute(
            "SELECT raw_kid, count(*) FROM quarantine GROUP BY raw_kid ORDER BY count(*) DESC, raw_kid"
        ).fetchall()
        return {None if kid is None else str(kid): int(n) for kid, n in rows}

    def time_range(self, *, state: State = "pending") -> tuple[float, float] | None:
        """Oldest and newest ``received_at`` among the entries in ``state``, or None when there are none."""
        where, params = _where(None, None, None, state, None)
        row = self._conn.execute(f"SELECT min(received_at), max(received_at) FROM quarantine q WHERE {where}", params)
        lo, hi = row.fetchone()
        return None if lo is None else (float(lo), float(hi))

    def export(
        self,
        path: str | Path | IO[bytes],
        fmt: ExportFormat = "ndjson",
        *,
        reason: str | None = None,
        source: str | None = None,
        since: float | None = None,
        state: State = "pending",
        ids: Sequence[int] | None = None,
    ) -> int:
        """Write matching entries to ``path``; return how many were written.

        ``ndjson``: one JSON object per entry with ``quarantine_id``, ``received_at`` (RFC 3339), ``source``,
        ``line_no``, ``event_id``, ``reasons`` and the raw line as ``raw`` (text) or, when it is not valid UTF-8,
        ``raw_b64`` — lossless, and what ``replay_file`` reads back. ``raw``: the raw lines only, byte for byte
        (entries whose line was too long to keep are left out). A file is created with mode 0600: it holds
        personal data as received.
        """
        if fmt not in ("ndjson", "raw"):
            raise QuarantineError(f"unknown export format {fmt!r}: use ndjson or raw")
        entries = self.iter(reason=reason, source=source, since=since, state=state, ids=ids)
        if isinstance(path, str | Path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    return _write_export(fh, entries, fmt)
            except RawDecryptionError:
                Path(path).unlink(missing_ok=True)  # no partial export of a quarantine that cannot be read whole
                raise
        return _write_export(path, entries, fmt)

    def rekey(self) -> RekeyReport:
        """Seal every row's raw bytes with the active key: encrypt plaintext rows, re-encrypt older keys' rows.

        Works in pages of a few thousand rows, one transaction each (safe while a pipeline adds rows). Every key
        that sealed a row must still be in the keyring. The old bytes are overwritten in the database file
        (``secure_delete``) and the WAL is checkpointed and truncated at the end.
        """
        kid = self._cipher.active_kid
        if kid is None:
            raise QuarantineError(f"rekey needs a data key: {NO_KEY_HINT}")
        encrypted = reencrypted = 0
        last = 0
        while True:
            with transaction(self._conn) as conn:
                rows = conn.execute(
                    "SELECT id, raw, raw_kid FROM quarantine WHERE id > ? AND raw_kid IS NOT ? ORDER BY id LIMIT ?",
                    (last, kid, _REKEY_PAGE),
                ).fetchall()
                if not rows:
                    break
                ids = [int(r[0]) for r in rows]
                plain = [self._cipher.open(i, r[2], bytes(r[1])) for i, r in zip(ids, rows, strict=True)]
                _, sealed = self._cipher.seal(ids, plain)
                conn.executemany(
                    "UPDATE quarantine SET raw = ?, raw_kid = ? WHERE id = ?",
                    [(blob, kid, i) for blob, i in zip(sealed, ids, strict=True)],
                )
            fresh = sum(1 for r in rows if r[2] is None)
            encrypted += fresh
            reencrypted += len(rows) - fresh
            last = ids[-1]
        if self.path != ":memory:":
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        unchanged = self.count() - encrypted - reencrypted
        return RekeyReport(kid=kid, encrypted=encrypted, reencrypted=reencrypted, unchanged=unchanged)

    # ------------------------------------------------------------------------------------------- replay

    def replay(
        self,
        target: Validates | Ingests,
        *,
        ids: Sequence[int] | None = None,
        reason: str | None = None,
        source: str | None = None,
        since: float | None = None,
        accepted_out: IO[bytes] | None = None,
        dry_run: bool = False,
        now: float | None = None,
    ) -> ReplayReport:
        """Re-validate the stored raw lines of the pending entries matching the filters.

        ``target`` is a validator or a pipeline (its ``ingest`` then processes accepted events; its
        ``on_rejected`` callback is not called during the replay, the store updates its entries itself).
        Entries accepted now, or found to be duplicates of accepted events, are marked replayed; those rejected
        again stay pending with their new reasons. ``accepted_out`` receives the accepted raw lines (NDJSON).
        ``dry_run`` validates without changing the store.
        """
        report = ReplayReport()
        entries = self.iter(reason=reason, source=source, since=since, state="pending", ids=ids)
        for page in _pages(entries, _PAGE):
            lines = []
            for e in page:
                if _replayable(e.raw):
                    lines.append(_Line(e.raw, e.id))
                else:
                    report.skipped += 1
            self._replay_lines(lines, target, "quarantine", report, accepted_out, dry_run, now)
        return report

    def replay_file(
        self,
        path: str | Path,
        target: Validates | Ingests,
        *,
        accepted_out: IO[bytes] | None = None,
        dry_run: bool = False,
        now: float | None = None,
    ) -> ReplayReport:
        """Re-validate lines from a file, typically an ``export`` the user fixed.

        A line may be an exported NDJSON record (its ``raw``/``raw_b64`` is replayed and linked to its
        ``quarantine_id``) or a raw event line (linked to the newest pending entry with the same ``event_id``).
        Linked entries are updated as in :meth:`replay`; rejected lines not linked to a pending entry are
        quarantined as new entries with the file as their source.
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise QuarantineError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
        lines = _file_lines(data)
        report = ReplayReport()
        for start in range(0, len(lines), _PAGE):
            self._replay_lines(lines[start : start + _PAGE], target, str(p), report, accepted_out, dry_run, now)
        return report

    def _replay_lines(
        self,
        lines: builtins.list[_Line],
        target: Validates | Ingests,
        source: str,
        report: ReplayReport,
        accepted_out: IO[bytes] | None,
        dry_run: bool,
        now: float | None,
    ) -> None:
        if not lines:
            return
        usable = [line for line in lines if line.raw.strip() and b"\n" not in line.raw]
        report.skipped += len(lines) - len(usable)
        lines = usable
        if not lines:
            return
        batch = parse_ndjson_bytes(b"\n".join(line.raw for line in lines), source=source)
        event_ids = _event_ids_by_line(batch, len(lines))
        self._link_pending(lines, event_ids)
        result = _validate(target, batch)
        report.received += result.received
        report.accepted += result.accepted
        report.rejected += result.rejected_count
        report.duplicates += result.duplicates

        rejected = result.rejected.with_columns((pl.col("line_no") - 1).alias("__i")).drop_nulls("__i")
        rejected_at = dict(zip(rejected.get_column("__i").to_list(), rejected.get_column("reasons").to_list(),
                               strict=True))  # fmt: skip
        for reasons in rejected_at.values():
            report.reasons.update(reasons)
        valid_ids = set(result.valid.get_column("event_id").to_list())
        accepted: builtins.list[int] = []
        duplicate: builtins.list[int] = []
        for i, line in enumerate(lines):
            if i in rejected_at:
                continue
            eid = event_ids[i]
            is_accepted = eid is not None and eid in valid_ids
            if is_accepted:
                valid_ids.discard(eid)
                if accepted_out is not None:
                    accepted_out.write(line.raw.rstrip(b"\r") + b"\n")
            if line.link is not None:
                (accepted if is_accepted else duplicate).append(line.link)
        if dry_run:
            return
        when = time.time() if now is None else now
        again = [(lines[i].link, reasons) for i, reasons in rejected_at.items() if lines[i].link is not None]
        fresh_rows = [i for i in rejected_at if lines[i].link is None]
        report.replayed_ids += self._settle(accepted, duplicate, again, when)
        report.rejected_ids += [link for link, _ in again if link is not None]
        if fresh_rows:
            fresh = rejected.filter(pl.col("__i").is_in(fresh_rows)).with_columns(
                pl.lit(source).alias("source"),
                pl.col("__i")
                .replace_strict({i: lines[i].line_no for i in fresh_rows}, default=None, return_dtype=pl.Int64)
                .alias("line_no"),
            )
            report.new_ids += self._insert(fresh.drop("__i"), when)

    def _settle(
        self,
        accepted: builtins.list[int],
        duplicate: builtins.list[int],
        again: builtins.list[tuple[int | None, builtins.list[str]]],
        when: float,
    ) -> builtins.list[int]:
        """Record one replay batch's outcome in one transaction; return the ids marked replayed."""
        settle = "UPDATE quarantine SET replayed_at = ?, outcome = ?, attempts = attempts + 1, last_attempt_at = ? "
        with transaction(self._conn) as conn:
            conn.executemany(settle + "WHERE id = ?", [(when, "accepted", when, i) for i in accepted])
            conn.executemany(settle + "WHERE id = ?", [(when, "duplicate", when, i) for i in duplicate])
            conn.executemany(
                "UPDATE quarantine SET reasons = ?, attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
                [(msgspec.json.encode(reasons).decode(), when, link) for link, reasons in again],
            )
        return accepted + duplicate

    def _link_pending(self, lines: builtins.list[_Line], event_ids: builtins.list[str | None]) -> None:
        """Keep links to pending entries only; link unlinked lines by event_id; one line per entry."""
        linked = [line.link for line in lines if line.link is not None]
        pending = set(self._pending_among(linked))
        wanted = [eid for line, eid in zip(lines, event_ids, strict=True) if line.link is None and eid is not None]
        by_event = self._pending_by_event_id(wanted)
        taken: set[int] = set()
        for line, eid in zip(lines, event_ids, strict=True):
            link = line.link if line.link in pending else None
            if line.link is None and eid is not None:
                link = by_event.get(eid)
            if link is not None and link in taken:
                link = None
            if link is not None:
                taken.add(link)
            line.link = link

    def _pending_among(self, ids: Sequence[int]) -> Iterator[int]:
        for chunk in _chunks(builtins.list(dict.fromkeys(ids)), _SQL_VARS):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id FROM quarantine WHERE replayed_at IS NULL AND id IN ({marks})"
            yield from (int(r[0]) for r in self._conn.execute(sql, chunk))

    def _pending_by_event_id(self, event_ids: Sequence[str]) -> dict[str, int]:
        """Newest pending entry per event id, in one scan (a temporary table joined to the quarantine)."""
        wanted = builtins.list(dict.fromkeys(event_ids))
        if not wanted:
            return {}
        conn = self._conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS replay_event_ids (event_id TEXT PRIMARY KEY)")
        try:
            conn.executemany("INSERT OR IGNORE INTO replay_event_ids VALUES (?)", [(e,) for e in wanted])
            rows = conn.execute(
                "SELECT q.event_id, max(q.id) FROM quarantine q JOIN replay_event_ids w ON w.event_id = q.event_id "
                "WHERE q.replayed_at IS NULL GROUP BY q.event_id"
            ).fetchall()
        finally:
            conn.execute("DELETE FROM replay_event_ids")
        return {str(e): int(i) for e, i in rows}


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
    )


def _write_export(fh: IO[bytes], entries: Iterable[QuarantinedEvent], fmt: ExportFormat) -> int:
    encoder = msgspec.json.Encoder()
    n = 0
    for e in entries:
        if fmt == "raw":
            if not e.raw:
                continue
            fh.write(e.raw + b"\n")
        else:
            fh.write(encoder.encode(export_record(e)) + b"\n")
        n += 1
    return n


def export_record(entry: QuarantinedEvent) -> dict[str, Any]:
    """The NDJSON export form of an entry (lossless: ``raw`` when UTF-8, else ``raw_b64``)."""
    record: dict[str, Any] = {
        "quarantine_id": entry.id,
        "received_at": format_epoch(entry.received_at),
        "source": entry.source,
        "line_no": entry.line_no,
        "event_id": entry.event_id,
        "reasons": builtins.list(entry.reasons),
        "state": entry.state,
    }
    try:
        record["raw"] = entry.raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_b64"] = base64.b64encode(entry.raw).decode("ascii")
    return record


def format_epoch(seconds: float) -> str:
    """RFC 3339 UTC time (milliseconds) of epoch seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _file_lines(data: bytes) -> builtins.list[_Line]:
    """Lines of a replay file: exported records are unwrapped to their raw line and linked to their entry."""
    decoder = msgspec.json.Decoder(_ExportRecord)
    out: builtins.list[_Line] = []
    for no, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        item = _Line(line, None, no)
        if b'"quarantine_id"' in line:
            try:
                rec = decoder.decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                rec = None
            if rec is not None and rec.quarantine_id is not None and (rec.raw is not None or rec.raw_b64 is not None):
                raw = _utf8(rec.raw) if rec.raw is not None else _b64(rec.raw_b64)
                item = _Line(raw, rec.quarantine_id, no)
        out.append(item)
    return out


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of an exported ``raw`` text; lone surrogates (from ``\\udXXX`` escapes) are kept as such."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except ValueError:
        return b""  # counted as skipped


def _replayable(raw: bytes) -> bool:
    """A stored line can be replayed as NDJSON when it was kept and holds a JSON object (not e.g. a CSV row)."""
    return raw.lstrip()[:1] == b"{" and b"\n" not in raw


def _event_ids_by_line(batch: RawBatch, n_lines: int) -> builtins.list[str | None]:
    """event_id of each payload line (None for a line that did not decode)."""
    ids: builtins.list[str | None] = [None] * n_lines
    decoded = batch.frame.get_column("event_id").to_list()
    for no, eid in zip(batch.lines_of(range(len(decoded))), decoded, strict=True):
        ids[no - 1] = eid
    return ids


def _validate(target: Validates | Ingests, batch: RawBatch) -> ValidationResult:
    """Run ``batch`` through ``target``; a pipeline's own quarantine callback is held back meanwhile."""
    if not isinstance(target, Ingests):
        return target.validate(batch)
    saved = target.on_rejected
    target.on_rejected = None
    try:
        return target.ingest(batch).validation
    finally:
        target.on_rejected = saved


def _pages(items: Iterable[QuarantinedEvent], size: int) -> Iterator[builtins.list[QuarantinedEvent]]:
    page: builtins.list[QuarantinedEvent] = []
    for item in items:
        page.append(item)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
