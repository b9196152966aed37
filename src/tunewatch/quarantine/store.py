"""Quarantine: every rejected event kept verbatim (its raw bytes as received), with reasons, source and time.

The store is a SQLite database in WAL mode (see :mod:`tunewatch.store.sqlite`), so a running pipeline can add
rejected events while the CLI lists, exports or replays them. An entry is *pending* until a replay accepts
it (or finds it to be a duplicate of an accepted event); it is then *replayed* and kept, with its outcome,
until purged. Replay feeds the stored raw lines (or lines the user fixed in an export) back through a
validator or a pipeline, so they pass validation *and* duplicate detection again.

The raw bytes stay exactly as received, personal data included: this is the quarantine. Presenting them
(masking personal fields) is the job of whoever shows them. When a data key is configured (``TUNEWATCH_DATA_KEY``
or ``TUNEWATCH_DATA_KEY_FILE``, the keyring's usual configuration) they are stored encrypted with AES-256-GCM and
decrypted transparently on reading (:mod:`tunewatch.quarantine.crypto`); rows written in plaintext (no key,
or before encryption existed) still read, and :meth:`QuarantineStore.rekey` encrypts them.

The store is the one owner of quarantined events: the live service adds to it, its API and the CLI read the
same rows (shown through :mod:`tunewatch.quarantine.masking`). Export, replay and rekey live in their own modules
(:mod:`~tunewatch.quarantine.export`, :mod:`~tunewatch.quarantine.replay`, :mod:`~tunewatch.quarantine.rekey`);
the store's methods call them and record each operation in the audit trail (``audit``), whatever interface asked.

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

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tunewatch.quarantine.export import ExportFormat, export
from tunewatch.quarantine.rekey import RekeyReport, rekey
from tunewatch.quarantine.replay import Ingests, ReplayReport, Validates, replay, replay_file
from tunewatch.quarantine.rows import QuarantinedEvent, QuarantineError, QuarantineRows, State

__all__ = ["QuarantineError", "QuarantineStore", "QuarantinedEvent", "State"]


class QuarantineStore(QuarantineRows):
    """The quarantine (see :class:`~tunewatch.quarantine.rows.QuarantineRows` for the arguments) with its
    operations — export, rekey, replay — each recorded in the audit trail (``audit``), whatever interface asked."""

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
        actor: str | None = None,
        via: str | None = None,
    ) -> int:
        """Write matching entries to ``path`` (see :func:`tunewatch.quarantine.export.export`); audited."""
        n = export(self, path, fmt, reason=reason, source=source, since=since, state=state, ids=ids)
        target = str(path) if isinstance(path, str | Path) else "<stream>"
        self.record(actor, "quarantine.export", via, to=target, format=fmt, entries=n)
        return n

    def rekey(self, *, actor: str | None = None, via: str | None = None) -> RekeyReport:
        """Seal every row with the active key (see :func:`tunewatch.quarantine.rekey.rekey`); audited."""
        report = rekey(self)
        self.record(actor, "quarantine.rekey", via, kid=report.kid, encrypted=report.encrypted,
                    reencrypted=report.reencrypted)  # fmt: skip
        return report

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
        actor: str | None = None,
        via: str | None = None,
    ) -> ReplayReport:
        """Replay pending entries (see :func:`tunewatch.quarantine.replay.replay`); audited unless ``dry_run``."""
        report = replay(self, target, ids=ids, reason=reason, source=source, since=since,
                        accepted_out=accepted_out, dry_run=dry_run, now=now)  # fmt: skip
        if not dry_run:
            self.record(actor, "quarantine.replay", via, received=report.received, accepted=report.accepted,
                        rejected=report.rejected, duplicates=report.duplicates)  # fmt: skip
        return report

    def replay_file(
        self,
        path: str | Path,
        target: Validates | Ingests,
        *,
        accepted_out: IO[bytes] | None = None,
        dry_run: bool = False,
        now: float | None = None,
        actor: str | None = None,
        via: str | None = None,
    ) -> ReplayReport:
        """Replay lines of a file (see :func:`tunewatch.quarantine.replay.replay_file`); audited unless ``dry_run``."""
        report = replay_file(self, path, target, accepted_out=accepted_out, dry_run=dry_run, now=now)
        if not dry_run:
            self.record(actor, "quarantine.replay", via, file=str(path), received=report.received,
                        accepted=report.accepted, rejected=report.rejected, duplicates=report.duplicates)  # fmt: skip
        return report
