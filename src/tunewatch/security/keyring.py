"""Data keys: 256-bit secrets from the environment or a private key file, each with a key id, one active.

Sources (exactly one must be set):

- ``TUNEWATCH_DATA_KEY``: one or more entries separated by commas or white space;
- ``TUNEWATCH_DATA_KEY_FILE``: a file of entries, one a line (``#`` starts a comment). The file must not be
  readable or writable by group or others (mode ``0600``, ``0400`` …); a looser mode is refused.

An entry is ``<kid>:<base64 of 32 random bytes>`` (standard or URL-safe alphabet, padding optional), or just
the base64, in which case the key id is ``k`` followed by 8 hex digits of a keyed fingerprint of the key. Key
ids are 1 to 32 characters among ``A-Z a-z 0-9 _ -``. **The first entry is the active key** (new values are
encrypted and new audit entries signed with it); the others are kept to read what they produced. Rotate by
putting a new entry first; drop an old one only when nothing made with it is still kept.

The keyring hands out AES-GCM objects and HKDF-derived sub-keys (one per purpose, so that the encryption key is
never used as an HMAC key) but never its key material; its ``repr`` names the key ids only, and it refuses to
be pickled. New keys: ``python -m tunewatch.security.keyring [KID]`` or ``openssl rand -base64 32``.

>>> ring = Keyring([("k2", bytes(range(32))), ("k1", bytes(32))])
>>> ring
Keyring(active='k2', kids=('k2', 'k1'))
>>> len(ring.derive("example", "k1"))
32
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import re
import secrets
import stat
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tunewatch.errors import TunewatchError

logger = logging.getLogger(__name__)

ENV_KEY: Final = "TUNEWATCH_DATA_KEY"
ENV_KEY_FILE: Final = "TUNEWATCH_DATA_KEY_FILE"
KEY_BYTES: Final = 32
_KID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_ENTRY_SPLIT: Final = re.compile(r"[\s,]+")


class KeyringError(TunewatchError):
    """Data keys are missing, malformed, or stored unsafely; or a key id is unknown.

    >>> try:
    ...     Keyring([("k1", b"too short")])
    ... except KeyringError as exc:
    ...     isinstance(exc, TunewatchError)
    True
    """


class Keyring:
    """A set of 256-bit data keys by key id; the first (or ``active``) one is used for new values.

    ``keys`` holds ``(kid, 32-byte key)`` pairs. Thread-safe: the derived keys and cipher objects are cached
    under a lock.

    >>> ring = Keyring.generate("k1")
    >>> ring.active, len(ring.derive("pseudonyms"))
    ('k1', 32)
    """

    __slots__ = ("_active", "_aead", "_derived", "_keys", "_lock")

    def __init__(self, keys: Iterable[tuple[str, bytes]], active: str | None = None) -> None:
        table: dict[str, bytes] = {}
        for kid, material in keys:
            _check_kid(kid, "key id")
            if kid in table:
                raise KeyringError(f"key id {kid!r} is given twice; key ids must be unique")
            if not isinstance(material, bytes) or len(material) != KEY_BYTES:
                size = len(material) if isinstance(material, bytes) else type(material).__name__
                raise KeyringError(f"key {kid!r}: need {KEY_BYTES} bytes for AES-256, got {size}")
            table[kid] = bytes(material)
        if not table:
            raise KeyringError("a keyring needs at least one key")
        if active is None:
            active = next(iter(table))
        elif active not in table:
            raise KeyringError(f"active key id {active!r} is not among the keys ({', '.join(table)})")
        self._keys: Final = table
        self._active: Final = active
        self._aead: dict[str, AESGCM] = {}
        self._derived: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring:
        """Load from ``TUNEWATCH_DATA_KEY`` or ``TUNEWATCH_DATA_KEY_FILE`` (exactly one of them must be set)."""
        env = os.environ if environ is None else environ
        inline, path = env.get(ENV_KEY, "").strip(), env.get(ENV_KEY_FILE, "").strip()
        if inline and path:
            raise KeyringError(f"set {ENV_KEY} or {ENV_KEY_FILE}, not both")
        if path:
            return cls.from_file(path)
        if not inline:
            raise KeyringError(
                f"no data key: set {ENV_KEY} to the base64 of 32 random bytes (e.g. `openssl rand -base64 32`) "
                f"or {ENV_KEY_FILE} to a file holding it (mode 0600)"
            )
        ring = cls(parse_entries(_ENTRY_SPLIT.split(inline), ENV_KEY))
        logger.info("data keyring loaded from %s: %d key(s), active key id %s", ENV_KEY, len(ring.kids), ring.active)
        return ring

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """Load from a key file that only its owner may read (refused if group or others have any access)."""
        p = Path(path)
        try:
            st = p.stat()
        except OSError as exc:
            raise KeyringError(f"key file {p}: cannot read it ({exc.strerror or exc})") from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyringError(f"key file {p}: not a regular file")
        if st.st_mode & 0o077:
            raise KeyringError(
                f"key file {p}: mode {stat.S_IMODE(st.st_mode):04o} lets group or others access it; "
                f"it must be 0600 or stricter (chmod 600 {p})"
            )
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyringError(f"key file {p}: cannot read it ({type(exc).__name__})") from None
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        ring = cls(parse_entries((line for line in lines if line), f"key file {p}"))
        logger.info("data keyring loaded from %s: %d key(s), active key id %s", p, len(ring.kids), ring.active)
        return ring

    @classmethod
    def generate(cls, kid: str = "k1") -> Keyring:
        """A keyring with one fresh random key (tests, local experiments; nothing is written anywhere)."""
        return cls([(kid, secrets.token_bytes(KEY_BYTES))])

    # -- use ----------------------------------------------------------------------------------------------------

    @property
    def active(self) -> str:
        """Id of the key used for new values."""
        return self._active

    @property
    def kids(self) -> tuple[str, ...]:
        """All key ids, the active one first when built from the environment or a file."""
        return tuple(self._keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def aead(self, kid: str) -> AESGCM:
        """The AES-256-GCM cipher of key ``kid`` (raises :class:`KeyringError` for an unknown id)."""
        with self._lock:
            cipher = self._aead.get(kid)
            if cipher is None:
                cipher = self._aead[kid] = AESGCM(self._material(kid))
            return cipher

    def derive(self, purpose: str, kid: str | None = None) -> bytes:
        """A 32-byte sub-key of key ``kid`` (default: active) for ``purpose`` (HKDF-SHA256, info = purpose).

        Different purposes give independent keys, so an HMAC key is never the encryption key itself.
        """
        kid = self._active if kid is None else kid
        with self._lock:
            sub = self._derived.get((kid, purpose))
            if sub is None:
                hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tunewatch/" + purpose.encode())
                sub = self._derived[(kid, purpose)] = hkdf.derive(self._material(kid))
            return sub

    def _material(self, kid: str) -> bytes:
        try:
            return self._keys[kid]
        except KeyError:
            known = ", ".join(self._keys)
            msg = f"unknown key id {kid!r} (known: {known}); was that key removed from the keyring?"
            raise KeyringError(msg) from None

    def __repr__(self) -> str:
        return f"Keyring(active={self._active!r}, kids={self.kids!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Keyring is not picklable (it would copy key material): load it in each process instead")


def parse_entries(entries: Iterable[str], source: str) -> list[tuple[str, bytes]]:
    """Parse ``[kid:]base64`` entries; errors name the source and entry number, never the key itself."""
    out: list[tuple[str, bytes]] = []
    for n, raw in enumerate((e for e in entries if e), start=1):
        kid, sep, encoded = raw.partition(":")
        if not sep:
            kid, encoded = "", raw
        else:
            _check_kid(kid, f"{source}, entry {n}: key id")
        material = _decode_key(encoded, f"{source}, entry {n}" + (f" (key id {kid!r})" if kid else ""))
        kid = kid or fingerprint_kid(material)
        if any(kid == seen for seen, _ in out):
            raise KeyringError(f"{source}, entry {n}: key id {kid!r} is given twice; key ids must be unique")
        out.append((kid, material))
    if not out:
        raise KeyringError(f"{source}: no key found")
    return out


def fingerprint_kid(material: bytes) -> str:
    """The default key id of a key: ``k`` + 8 hex digits of HMAC-SHA256(key, label) (reveals nothing of it)."""
    return "k" + hmac.digest(material, b"tunewatch key id", "sha256").hex()[:8]


def new_entry(kid: str = "k1") -> str:
    """A fresh ``kid:base64`` entry for a key file or ``TUNEWATCH_DATA_KEY``."""
    _check_kid(kid, "key id")
    return f"{kid}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def _decode_key(encoded: str, where: str) -> bytes:
    text = encoded.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        material = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}: not valid base64") from None
    if len(material) != KEY_BYTES:
        raise KeyringError(f"{where}: decodes to {len(material)} bytes, need {KEY_BYTES} (AES-256)")
    return material


def _check_kid(kid: object, what: str) -> None:
    if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
        # the value is not echoed: a malformed entry may hold key material where the id should be
        raise KeyringError(f"{what} is invalid: use 1-32 characters among A-Z a-z 0-9 _ -")


if __name__ == "__main__":  # pragma: no cover - prints a fresh key entry
    print(new_entry(sys.argv[1] if len(sys.argv) > 1 else "k1"))
