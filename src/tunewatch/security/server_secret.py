"""The server secret: 32 random bytes generated on first start, kept in a ``0600`` file beside the database.

It keys what must be keyed even when no data key is configured: the hashes of API keys (HMAC-SHA256, so that
a copy of the database alone does not let anyone test guesses) and the signatures of the audit trail. One
sub-key per purpose is derived with HKDF-SHA256; the secret itself never leaves this module. The file is
``<database>.secret`` (``TUNEWATCH_SECRET_FILE`` names another place). It is created with ``O_EXCL`` and mode
``0600``; a file readable or writable by group or others is refused. Losing it invalidates every API key (make
new ones with ``tunewatch keys create``) and makes the audit entries signed with it unverifiable: back it up
with the database, but store the backup apart from it.

>>> secret = ServerSecret(bytes(32))
>>> len(secret.derive("api-keys/v1")), secret.derive("a") != secret.derive("b")
(32, True)
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
import threading
import time
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tunewatch.errors import TunewatchError

ENV_SECRET_FILE: Final = "TUNEWATCH_SECRET_FILE"
SUFFIX: Final = ".secret"
SECRET_BYTES: Final = 32
_CACHE: dict[str, ServerSecret] = {}
_CACHE_LOCK = threading.Lock()


class ServerSecretError(TunewatchError):
    """The server secret file is unreadable, malformed or not private.

    >>> try:
    ...     ServerSecret(b"short")
    ... except ServerSecretError as exc:
    ...     isinstance(exc, TunewatchError)
    True
    """


class ServerSecret:
    """A 32-byte secret and the sub-keys derived from it (never its bytes).

    >>> secret = ServerSecret.ephemeral()
    >>> len(secret.derive("api-keys/v1")), secret.derive("a") == secret.derive("a")
    (32, True)
    """

    __slots__ = ("_derived", "_material")

    def __init__(self, material: bytes) -> None:
        if len(material) != SECRET_BYTES:
            raise ServerSecretError(f"server secret: need {SECRET_BYTES} bytes, got {len(material)}")
        self._material = material
        self._derived: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return "ServerSecret(...)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a ServerSecret cannot be pickled")

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (HKDF-SHA256, info ``tunewatch/<purpose>``)."""
        key = self._derived.get(purpose)
        if key is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"tunewatch/{purpose}".encode())
            key = self._derived[purpose] = hkdf.derive(self._material)
        return key

    @classmethod
    def ephemeral(cls) -> ServerSecret:
        """A secret for an in-memory database (gone with the process, as the database is)."""
        return cls(secrets.token_bytes(SECRET_BYTES))

    @classmethod
    def for_database(cls, db: str | Path | None) -> ServerSecret:
        """The secret of database ``db`` (created on first use); ephemeral for ``None``/``":memory:"``/``""``."""
        if db is None or str(db) in ("", ":memory:"):
            return cls.ephemeral()
        path = Path(os.environ.get(ENV_SECRET_FILE) or f"{db}{SUFFIX}").resolve()
        with _CACHE_LOCK:
            cached = _CACHE.get(str(path))
            if cached is None:
                cached = _CACHE[str(path)] = cls(_load_or_create(path))
            return cached


def database_file(conn: object) -> str | None:
    """The file of a SQLite connection's main database, or None when it is in memory."""
    row = conn.execute("PRAGMA database_list").fetchone()  # type: ignore[attr-defined]
    return str(row[2]) if row is not None and row[2] else None


def _load_or_create(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path)
    except OSError as exc:
        raise ServerSecretError(f"cannot create the server secret {path}: {exc.strerror}") from None
    material = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(material).decode() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return material


def _load(path: Path) -> bytes:
    for _ in range(50):  # another process may have created it a moment ago and not written it yet
        try:
            mode = path.stat().st_mode
            text = path.read_text().strip()
        except OSError as exc:
            raise ServerSecretError(f"cannot read the server secret {path}: {exc.strerror}") from None
        if text:
            break
        time.sleep(0.02)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServerSecretError(
            f"the server secret {path} is readable or writable by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"chmod 600 it"
        )
    try:
        material = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ServerSecretError(f"the server secret {path} is not base64") from None
    if len(material) != SECRET_BYTES:
        raise ServerSecretError(f"the server secret {path} holds {len(material)} bytes, not {SECRET_BYTES}")
    return material
