"""Personal fields (``user_id``, ``ip_addr``): AES-256-GCM encryption and keyed pseudonymisation of Polars columns.

Encryption turns each value into a compact token ``v1.<kid>.<base64url(nonce | ciphertext | tag)>``: a fresh
96-bit random nonce per value, the key ``kid`` of the :class:`~tunewatch.security.keyring.Keyring` (the active
one for new values), and ``v1|<kid>|<field>`` as associated data, so a token moved to another field or relabelled
with another key id fails to decrypt. Decryption checks the whole column first and returns nothing at all if any
token is malformed, made with an unknown key, or altered (:class:`DecryptionError` names the field and row).
Nulls stay nulls.

Pseudonymisation replaces a value by ``<kid>.<base64url(HMAC-SHA256(k, field NUL value)[:16])>``, with ``k``
derived from a data key for this purpose only: equal ids give equal pseudonyms (distinct-listener counts and
joins still work), the raw id is not stored and cannot be recomputed without the key. Pseudonyms change when
the key does; pin ``pseudonym_kid`` to keep them stable across a rotation of the active key.

Only the AEAD and HMAC calls run per value (they are inherent); parsing, encoding, null handling, de-duplication
and reassembly are Polars expressions. ``python -m tunewatch.security.personal_data`` measures rows/s.

>>> import polars as pl
>>> from tunewatch.security.keyring import Keyring
>>> protector = PersonalDataProtector(Keyring.generate("k1"))
>>> users = pl.Series("user_id", ["alice", None, "bob"])
>>> tokens = protector.encrypt_column(users)
>>> tokens[0].startswith("v1.k1."), tokens[1], protector.decrypt_column(tokens).to_list()
(True, None, ['alice', None, 'bob'])
>>> p = protector.pseudonymise(pl.Series("user_id", ["alice", "bob", "alice"]))
>>> p.n_unique(), p[0] == p[2], "alice" in p[0]
(2, True, False)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Final

import polars as pl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac

from tunewatch.errors import TunewatchError
from tunewatch.schema import PERSONAL_FIELDS
from tunewatch.security.keyring import Keyring

TOKEN_VERSION: Final = "v1"
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
PSEUDONYM_BYTES: Final = 16
_PSEUDONYM_PURPOSE: Final = "pseudonym/v1"
_KID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_Decrypt = Callable[[bytes, bytes, bytes | None], bytes]


class PersonalDataError(TunewatchError):
    """A column cannot be protected (wrong type).

    >>> try:
    ...     PersonalDataProtector(Keyring.generate()).encrypt_column(pl.Series("user_id", [1, 2]))
    ... except PersonalDataError as exc:
    ...     isinstance(exc, TunewatchError)
    True
    """


class DecryptionError(PersonalDataError):
    """A token cannot be decrypted: malformed, unknown key id, or altered (authentication failed).

    >>> try:
    ...     PersonalDataProtector(Keyring.generate()).decrypt_column(pl.Series("user_id", ["v1.k1.garbage"]))
    ... except DecryptionError as exc:
    ...     isinstance(exc, PersonalDataError)
    True
    """


class PersonalDataProtector:
    """Encrypt, decrypt and pseudonymise personal fields with the keys of a :class:`Keyring`.

    ``pseudonym_kid`` picks the key whose derived HMAC key makes pseudonyms (default: the active key).
    Thread-safe (no mutable state beyond the keyring's caches).

    >>> protector = PersonalDataProtector(Keyring.generate("k1"))
    >>> frame = pl.DataFrame({"user_id": ["alice"], "ip_addr": ["203.0.113.9"], "market": ["SE"]})
    >>> sealed = protector.encrypt_frame(frame)
    >>> sealed["market"][0], sealed["user_id"][0] != "alice", protector.decrypt_frame(sealed).equals(frame)
    ('SE', True, True)
    """

    def __init__(
        self, keyring: Keyring, *, fields: Iterable[str] = PERSONAL_FIELDS, pseudonym_kid: str | None = None
    ) -> None:
        self.keyring = keyring
        self.fields: tuple[str, ...] = tuple(fields)
        self.pseudonym_kid = keyring.active if pseudonym_kid is None else pseudonym_kid
        keyring.derive(_PSEUDONYM_PURPOSE, self.pseudonym_kid)  # fail now on an unknown key id

    def __repr__(self) -> str:
        return f"PersonalDataProtector(keyring={self.keyring!r}, fields={self.fields!r})"

    # -- frames ---------------------------------------------------------------------------------------------------

    def encrypt_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Encrypt every personal field present in ``frame`` (others untouched)."""
        return frame.with_columns(self.encrypt_column(frame[f], f) for f in self.fields if f in frame.columns)

    def decrypt_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Decrypt every personal field present in ``frame``; all or nothing (see :meth:`decrypt_column`)."""
        return frame.with_columns(self.decrypt_column(frame[f], f) for f in self.fields if f in frame.columns)

    def pseudonymise_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Pseudonymise every personal field present in ``frame``."""
        return frame.with_columns(self.pseudonymise(frame[f], f) for f in self.fields if f in frame.columns)

    # -- columns --------------------------------------------------------------------------------------------------

    def encrypt_column(self, column: pl.Series, field: str | None = None) -> pl.Series:
        """Tokens for the values of a string column (nulls stay null); ``field`` defaults to the column name."""
        field = column.name if field is None else field
        values = _strings(column, field).cast(pl.Binary).to_list()
        kid = self.keyring.active
        encrypt = self.keyring.aead(kid).encrypt
        aad = _aad(kid, field)
        pool = os.urandom(NONCE_BYTES * len(values))
        blobs = [
            None if v is None else (nonce := pool[i : i + NONCE_BYTES]) + encrypt(nonce, v, aad)
            for i, v in zip(range(0, len(pool), NONCE_BYTES), values, strict=True)
        ]
        payload = _b64url(pl.Series(blobs, dtype=pl.Binary))
        return pl.select(pl.concat_str([pl.lit(f"{TOKEN_VERSION}.{kid}."), payload]).alias(column.name)).to_series()

    def decrypt_column(self, column: pl.Series, field: str | None = None) -> pl.Series:
        """Plaintext of a token column (nulls stay null); raises :class:`DecryptionError` if any token is bad."""
        field = column.name if field is None else field
        kids, blobs = _parse_tokens(_strings(column, field), field)
        ciphers: dict[str, tuple[_Decrypt, bytes]] = {}
        plain: list[bytes | None] = []
        for row, (kid, blob) in enumerate(zip(kids, blobs, strict=True)):
            if blob is None or kid is None:
                plain.append(None)
                continue
            entry = ciphers.get(kid)
            if entry is None:
                entry = ciphers[kid] = (self._decryptor(kid, field, row), _aad(kid, field))
            decrypt, aad = entry
            try:
                plain.append(decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad))
            except InvalidTag:
                raise DecryptionError(
                    f"{field}: row {row}: authentication failed with key {kid!r}: the token was altered, "
                    "belongs to another field, or was made with a different key"
                ) from None
        return pl.Series(column.name, plain, dtype=pl.Binary).cast(pl.String)

    def pseudonymise(self, column: pl.Series, field: str | None = None) -> pl.Series:
        """Keyed pseudonyms (HMAC-SHA256) of a string column; equal values map to equal pseudonyms.

        Each distinct value is hashed once, then mapped back onto the column.
        """
        field = column.name if field is None else field
        values = _strings(column, field)
        distinct = values.drop_nulls().unique()
        key = self.keyring.derive(_PSEUDONYM_PURPOSE, self.pseudonym_kid)
        keyed = hmac.HMAC(key, hashes.SHA256())
        keyed.update(field.encode() + b"\x00")  # copies of a keyed, field-prefixed state: no re-keying per value
        digests = [_mac(keyed, v)[:PSEUDONYM_BYTES] for v in distinct.cast(pl.Binary).to_list()]
        mapped = pl.select(
            pl.concat_str([pl.lit(f"{self.pseudonym_kid}."), _b64url(pl.Series(digests, dtype=pl.Binary))])
        ).to_series()
        return values.replace_strict(distinct, mapped, return_dtype=pl.String).alias(column.name)

    # -- single values --------------------------------------------------------------------------------------------

    def encrypt_value(self, value: str, field: str) -> str:
        """Token of one value (same format as :meth:`encrypt_column`)."""
        return str(self.encrypt_column(pl.Series(field, [value], dtype=pl.String))[0])

    def decrypt_value(self, token: str, field: str) -> str:
        """Plaintext of one token; raises :class:`DecryptionError` if it is malformed, unknown or altered."""
        return str(self.decrypt_column(pl.Series(field, [token], dtype=pl.String))[0])

    def _decryptor(self, kid: str, field: str, row: int) -> _Decrypt:
        if kid not in self.keyring:
            shown = repr(kid) if _KID_RE.fullmatch(kid) else "(malformed)"
            raise DecryptionError(
                f"{field}: row {row}: unknown key id {shown} (known: {', '.join(self.keyring.kids)}); "
                "was that key removed from the keyring?"
            )
        return self.keyring.aead(kid).decrypt


def _aad(kid: str, field: str) -> bytes:
    """Associated data: the version, key id (no ``|`` in ids) and field name, unambiguous."""
    return f"{TOKEN_VERSION}|{kid}|{field}".encode()


def _parse_tokens(tokens: pl.Series, field: str) -> tuple[list[str | None], list[bytes | None]]:
    """Key ids and decoded ``nonce | ciphertext | tag`` blobs (vectorised); raises if any token is malformed."""
    parts = (
        pl.DataFrame({"t": tokens})
        .select(
            pl.col("t").is_not_null().alias("present"),
            pl.col("t").str.splitn(".", 3).struct.rename_fields(["version", "kid", "payload"]).alias("p"),
        )
        .unnest("p")
    )
    n = pl.col("payload").str.len_bytes()
    parts = parts.with_columns(
        pl.concat_str([pl.col("payload"), pl.lit("==").str.slice(0, (4 - n % 4) % 4)])
        .str.replace_all("-", "+", literal=True)
        .str.replace_all("_", "/", literal=True)
        .str.decode("base64", strict=False)  # strict alphabet and canonical padding bits, else null
        .alias("blob")
    )
    malformed = parts.select(
        pl.col("present")
        & (
            (pl.col("version") != TOKEN_VERSION).fill_null(True)
            | pl.col("blob").is_null()
            | (pl.col("blob").bin.size() < NONCE_BYTES + TAG_BYTES).fill_null(True)
        )
    ).to_series()
    if malformed.any():
        row = int(malformed.arg_true()[0])
        raise DecryptionError(
            f"{field}: row {row}: not a {TOKEN_VERSION} token ({TOKEN_VERSION}.<key id>.<base64url>); "
            f"{int(malformed.sum())} malformed value(s) in the column"
        )
    return parts["kid"].to_list(), parts["blob"].to_list()


def _mac(keyed: hmac.HMAC, value: bytes) -> bytes:
    state = keyed.copy()
    state.update(value)
    return state.finalize()


def _strings(column: pl.Series, field: str) -> pl.Series:
    if column.dtype == pl.Null:
        return column.cast(pl.String)
    if column.dtype != pl.String:
        raise PersonalDataError(f"{field}: personal data column must be of type String, got {column.dtype}")
    return column


def _b64url(blobs: pl.Series) -> pl.Expr:
    """Unpadded URL-safe base64 of a binary series, as a Polars expression."""
    return (
        pl.lit(blobs.bin.encode("base64"))
        .str.replace_all("+", "-", literal=True)
        .str.replace_all("/", "_", literal=True)
        .str.strip_chars_end("=")
    )


def _benchmark(rows: int = 200_000) -> None:  # pragma: no cover - manual measurement
    import time

    ring = Keyring.generate("k1")
    protector = PersonalDataProtector(ring)
    frame = pl.DataFrame(
        {
            "user_id": [f"user-{i % 50_000:06d}@example.com" for i in range(rows)],
            "ip_addr": [f"10.{i % 256}.{(i // 256) % 256}.{i % 7}" for i in range(rows)],
        }
    )
    for name, run in (
        ("encrypt", lambda f: protector.encrypt_frame(f)),
        ("pseudonymise", lambda f: protector.pseudonymise_frame(f)),
    ):
        start = time.perf_counter()
        out = run(frame)
        elapsed = time.perf_counter() - start
        print(f"{name:>13}: {rows:,} rows x 2 fields in {elapsed:.3f} s = {rows / elapsed:,.0f} rows/s")
        if name == "encrypt":
            start = time.perf_counter()
            back = protector.decrypt_frame(out)
            elapsed = time.perf_counter() - start
            assert back.equals(frame)
            print(f"{'decrypt':>13}: {rows:,} rows x 2 fields in {elapsed:.3f} s = {rows / elapsed:,.0f} rows/s")


if __name__ == "__main__":  # pragma: no cover
    _benchmark()
