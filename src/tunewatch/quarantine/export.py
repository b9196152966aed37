"""Export of quarantined events: NDJSON records (lossless, what replay reads back) or the raw lines.

A file is created with mode 0600: it holds personal data as received. Exporting is audited by the store.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

from tunewatch.quarantine.crypto import RawDecryptionError
from tunewatch.quarantine.rows import QuarantinedEvent, QuarantineError, QuarantineRows, State

ExportFormat = Literal["ndjson", "raw"]


def export(
    store: QuarantineRows,
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
    entries = store.iter(reason=reason, source=source, since=since, state=state, ids=ids)
    if isinstance(path, str | Path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                return _write_export(fh, entries, fmt)
        except RawDecryptionError:
            Path(path).unlink(missing_ok=True)  # no partial export of a quarantine that cannot be read whole
            raise
    return _write_export(path, entries, fmt)


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
        "reasons": list(entry.reasons),
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
