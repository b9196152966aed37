"""Encryption at rest of the quarantine's raw bytes: AES-256-GCM with the data keys of the keyring.

Keys come from the same configuration as every other data key (``TUNEWATCH_DATA_KEY`` or
``TUNEWATCH_DATA_KEY_FILE``, see :mod:`tunewatch.security.keyring`); :func:`configured_keyring` returns None when
neither is set, and the quarantine then stores raw bytes in plaintext, as before.

A sealed row keeps ``nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`` in column ``raw`` and the key id in column
``raw_kid`` (NULL: a plaintext row, written without a key or before encryption existed). Each row gets a fresh
random 96-bit nonce; the associated data is ``tunewatch/quarantine/v1|<kid>|<row id>``, so a ciphertext moved to
another row, or relabelled with another key id, fails authentication instead of decrypting. Row ids are never
reused (``AUTOINCREMENT``). Only the AEAD call runs per row; it is inherent.

>>> from tunewatch.security.keyring import Keyring
>>> cipher = RawCipher(Keyring.generate("k1"))
>>> kid, (blob,) = cipher.seal([7], [b'{"user_id":"alice"}'])
>>> kid, len(blob), cipher.open(7, kid, blob)
('k1', 47, b'{"user_id":"alice"}')
>>> cipher.open(8, kid, blob)
Traceback (most recent call last):
...
tunewatch.quarantine.crypto.RawDecryptionError: quarantine entry 8: raw bytes sealed with key id 'k1' \
fail authentication (wrong key, or the row was altered or moved from another row)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Final

from cryptography.exceptions import InvalidTag

from tunewatch.errors import TunewatchError
from tunewatch.security.keyring import ENV_KEY, ENV_KEY_FILE, Keyring, KeyringError

NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
AAD_PREFIX: Final = b"tunewatch/quarantine/v1|"
NO_KEY_HINT: Final = f"set {ENV_KEY} or {ENV_KEY_FILE} (see docs/security.md)"


class RawDecryptionError(TunewatchError):
    """An encrypted quarantine row cannot be read: no key, unknown key id, or authentication failed."""


def configured_keyring(environ: Mapping[str, str] | None = None) -> Keyring | None:
    """The data keyring when ``TUNEWATCH_DATA_KEY`` or ``TUNEWATCH_DATA_KEY_FILE`` is set, else None.

    A set but invalid configuration raises :class:`~tunewatch.security.keyring.KeyringError` rather than falling
    back to plaintext.
    """
    env = os.environ if environ is None else environ
    if not env.get(ENV_KEY, "").strip() and not env.get(ENV_KEY_FILE, "").strip():
        return None
    return Keyring.from_env(env)


def associated_data(kid: str, entry_id: int) -> bytes:
    """What a sealed row's ciphertext is bound to: format version, key id and row id."""
    return AAD_PREFIX + f"{kid}|{entry_id}".encode("ascii")


class RawCipher:
    """Seal and open quarantine rows' raw bytes with a keyring (or pass them through when there is none)."""

    __slots__ = ("keyring",)

    def __init__(self, keyring: Keyring | None) -> None:
        self.keyring = keyring

    def __repr__(self) -> str:
        return f"RawCipher(keyring={self.keyring!r})"

    @property
    def active_kid(self) -> str | None:
        """Key id new rows are sealed with, or None when rows are stored in plaintext."""
        return None if self.keyring is None else self.keyring.active

    def seal(self, ids: Sequence[int], raws: Sequence[bytes]) -> tuple[str | None, list[bytes]]:
        """``(kid, stored bytes)`` for rows ``ids`` holding ``raws``; ``(None, raws)`` without a keyring."""
        if self.keyring is None:
            return None, list(raws)
        kid = self.keyring.active
        aead = self.keyring.aead(kid)
        nonces = os.urandom(NONCE_BYTES * len(raws))  # one random 96-bit nonce per row, drawn in one call
        prefix = associated_data(kid, 0)[:-1]  # the AAD up to the row id, built once
        encrypt = aead.encrypt
        out: list[bytes] = []
        for i, (entry_id, raw) in enumerate(zip(ids, raws, strict=True)):
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            out.append(nonce + encrypt(nonce, raw, prefix + b"%d" % entry_id))
        return kid, out

    def open(self, entry_id: int, kid: str | None, stored: bytes) -> bytes:
        """The raw bytes of row ``entry_id`` as received; plaintext rows (``kid`` None) are returned as they are.

        Raises :class:`RawDecryptionError` naming the row and key id (never key material nor plaintext).
        """
        if kid is None:
            return stored
        where = f"quarantine entry {entry_id}: raw bytes sealed with key id {kid!r}"
        if self.keyring is None:
            raise RawDecryptionError(f"{where} cannot be read: no data key is configured; {NO_KEY_HINT}")
        try:
            aead = self.keyring.aead(kid)
        except KeyringError:
            known = ", ".join(self.keyring.kids)
            raise RawDecryptionError(
                f"{where} cannot be read: that key id is not in the keyring (known: {known}); was it removed?"
            ) from None
        if len(stored) < NONCE_BYTES + TAG_BYTES:
            raise RawDecryptionError(f"{where} are truncated ({len(stored)} bytes): the row was altered")
        try:
            return aead.decrypt(stored[:NONCE_BYTES], stored[NONCE_BYTES:], associated_data(kid, entry_id))
        except InvalidTag:
            raise RawDecryptionError(
                f"{where} fail authentication (wrong key, or the row was altered or moved from another row)"
            ) from None
