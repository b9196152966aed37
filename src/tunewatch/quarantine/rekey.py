"""Rekey: seal every quarantined row's raw bytes with the active data key."""

from __future__ import annotations

from dataclasses import dataclass

from tunewatch.quarantine.crypto import NO_KEY_HINT
from tunewatch.quarantine.rows import QuarantineError, QuarantineRows
from tunewatch.store.sqlite import transaction

_REKEY_PAGE = 5_000


@dataclass(frozen=True, slots=True)
class RekeyReport:
    """What :meth:`QuarantineStore.rekey` did: rows newly encrypted, re-encrypted under the active key, untouched."""

    kid: str  #: the active key id every row is now sealed with
    encrypted: int = 0  #: plaintext rows now encrypted
    reencrypted: int = 0  #: rows moved from an older key to the active one
    unchanged: int = 0  #: rows already under the active key


def rekey(store: QuarantineRows) -> RekeyReport:
    """Seal every row's raw bytes with the active key: encrypt plaintext rows, re-encrypt older keys' rows.

    Works in pages of a few thousand rows, one transaction each (safe while a pipeline adds rows). Every key
    that sealed a row must still be in the keyring. The old bytes are overwritten in the database file
    (``secure_delete``) and the WAL is checkpointed and truncated at the end.
    """
    kid = store.cipher.active_kid
    if kid is None:
        raise QuarantineError(f"rekey needs a data key: {NO_KEY_HINT}")
    encrypted = reencrypted = 0
    last = 0
    while True:
        with transaction(store.conn) as conn:
            rows = conn.execute(
                "SELECT id, raw, raw_kid FROM quarantine WHERE id > ? AND raw_kid IS NOT ? ORDER BY id LIMIT ?",
                (last, kid, _REKEY_PAGE),
            ).fetchall()
            if not rows:
                break
            ids = [int(r[0]) for r in rows]
            plain = [store.cipher.open(i, r[2], bytes(r[1])) for i, r in zip(ids, rows, strict=True)]
            _, sealed = store.cipher.seal(ids, plain)
            conn.executemany(
                "UPDATE quarantine SET raw = ?, raw_kid = ? WHERE id = ?",
                [(blob, kid, i) for blob, i in zip(sealed, ids, strict=True)],
            )
        fresh = sum(1 for r in rows if r[2] is None)
        encrypted += fresh
        reencrypted += len(rows) - fresh
        last = ids[-1]
    if store.path != ":memory:":
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    unchanged = store.count() - encrypted - reencrypted
    return RekeyReport(kid=kid, encrypted=encrypted, reencrypted=reencrypted, unchanged=unchanged)
