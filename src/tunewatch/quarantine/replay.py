"""Replay: feed quarantined raw lines (or lines the user fixed in an export) back through a validator or a
pipeline, so they pass validation *and* duplicate detection again; settle the entries in the store.

The validator or pipeline is given by the caller and typed structurally (:class:`Validates`, :class:`Ingests`).
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec
import polars as pl

from tunewatch.ingest.batch import RawBatch
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.quarantine.rows import QuarantinedEvent, QuarantineError, QuarantineRows
from tunewatch.store.sqlite import transaction

if TYPE_CHECKING:
    from tunewatch.validate.validator import ValidationResult

_PAGE = 20_000  # entries per replay batch
_SQL_VARS = 500  # ids per IN (...) list


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


def replay(
    store: QuarantineRows,
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
    entries = store.iter(reason=reason, source=source, since=since, state="pending", ids=ids)
    for page in _pages(entries, _PAGE):
        lines = []
        for e in page:
            if _replayable(e.raw):
                lines.append(_Line(e.raw, e.id))
            else:
                report.skipped += 1
        _replay_lines(store, lines, target, "quarantine", report, accepted_out, dry_run, now)
    return report


def replay_file(
    store: QuarantineRows,
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
        _replay_lines(store, lines[start : start + _PAGE], target, str(p), report, accepted_out, dry_run, now)
    return report


def _replay_lines(
    store: QuarantineRows,
    lines: list[_Line],
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
    _link_pending(store, lines, event_ids)
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
    accepted: list[int] = []
    duplicate: list[int] = []
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
    report.replayed_ids += _settle(store, accepted, duplicate, again, when)
    report.rejected_ids += [link for link, _ in again if link is not None]
    if fresh_rows:
        fresh = rejected.filter(pl.col("__i").is_in(fresh_rows)).with_columns(
            pl.lit(source).alias("source"),
            pl.col("__i")
            .replace_strict({i: lines[i].line_no for i in fresh_rows}, default=None, return_dtype=pl.Int64)
            .alias("line_no"),
        )
        report.new_ids += store.insert(fresh.drop("__i"), when)


def _settle(
    store: QuarantineRows,
    accepted: list[int],
    duplicate: list[int],
    again: list[tuple[int | None, list[str]]],
    when: float,
) -> list[int]:
    """Record one replay batch's outcome in one transaction; return the ids marked replayed."""
    settle = "UPDATE quarantine SET replayed_at = ?, outcome = ?, attempts = attempts + 1, last_attempt_at = ? "
    with transaction(store.conn) as conn:
        conn.executemany(settle + "WHERE id = ?", [(when, "accepted", when, i) for i in accepted])
        conn.executemany(settle + "WHERE id = ?", [(when, "duplicate", when, i) for i in duplicate])
        conn.executemany(
            "UPDATE quarantine SET reasons = ?, attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
            [(msgspec.json.encode(reasons).decode(), when, link) for link, reasons in again],
        )
    return accepted + duplicate


def _link_pending(store: QuarantineRows, lines: list[_Line], event_ids: list[str | None]) -> None:
    """Keep links to pending entries only; link unlinked lines by event_id; one line per entry."""
    linked = [line.link for line in lines if line.link is not None]
    pending = set(_pending_among(store, linked))
    wanted = [eid for line, eid in zip(lines, event_ids, strict=True) if line.link is None and eid is not None]
    by_event = _pending_by_event_id(store, wanted)
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


def _pending_among(store: QuarantineRows, ids: Sequence[int]) -> Iterator[int]:
    for chunk in _chunks(list(dict.fromkeys(ids)), _SQL_VARS):
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT id FROM quarantine WHERE replayed_at IS NULL AND id IN ({marks})"
        yield from (int(r[0]) for r in store.conn.execute(sql, chunk))


def _pending_by_event_id(store: QuarantineRows, event_ids: Sequence[str]) -> dict[str, int]:
    """Newest pending entry per event id, in one scan (a temporary table joined to the quarantine)."""
    wanted = list(dict.fromkeys(event_ids))
    if not wanted:
        return {}
    conn = store.conn
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


def _file_lines(data: bytes) -> list[_Line]:
    """Lines of a replay file: exported records are unwrapped to their raw line and linked to their entry."""
    decoder = msgspec.json.Decoder(_ExportRecord)
    out: list[_Line] = []
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


def _event_ids_by_line(batch: RawBatch, n_lines: int) -> list[str | None]:
    """event_id of each payload line (None for a line that did not decode)."""
    ids: list[str | None] = [None] * n_lines
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


def _pages(items: Iterable[QuarantinedEvent], size: int) -> Iterator[list[QuarantinedEvent]]:
    page: list[QuarantinedEvent] = []
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
