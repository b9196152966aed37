"""Deterministic ids and keyed pseudonyms as Polars expressions (polars-hash: stable across versions and runs).

* :func:`record_id`: ``<prefix>-`` + the first 32 hex digits of SHA-256 over the given columns joined by a unit
  separator: the same record always gets the same ``event_id``, so importing a file twice yields duplicates
  that the pipeline counts, not new plays.
* :func:`pseudonym`: ``HMAC-SHA256(key, user)`` in hex, the key from ``TUNEWATCH_PSEUDONYM_KEY``: stable for one
  key, not reversible, and not linkable across deployments with different keys.
"""

from __future__ import annotations

import os
from typing import Final, cast

import polars as pl
import polars_hash as plh

from tunewatch.errors import ConfigError

PSEUDONYM_KEY_ENV: Final = "TUNEWATCH_PSEUDONYM_KEY"
_MIN_KEY_CHARS: Final = 16
_SEP: Final = "\x1f"


def pseudonym_key(value: str | None = None) -> str:
    """The pseudonymisation key: ``value`` or ``$TUNEWATCH_PSEUDONYM_KEY``; at least 16 characters."""
    key = value if value is not None else os.environ.get(PSEUDONYM_KEY_ENV, "")
    if not key:
        raise ConfigError(f"{PSEUDONYM_KEY_ENV}: not set; it keys the HMAC that pseudonymises user ids")
    if len(key) < _MIN_KEY_CHARS:
        raise ConfigError(f"{PSEUDONYM_KEY_ENV}: too short ({len(key)} characters, need >= {_MIN_KEY_CHARS})")
    return key


def _hashable(*exprs: pl.Expr, separator: str = "") -> plh.HExpr:
    return cast(plh.HExpr, plh.concat_str(*exprs, separator=separator))


def pseudonym(expr: pl.Expr, key: str) -> pl.Expr:
    """HMAC-SHA256 of ``expr`` (text) under ``key``, as 64 hex digits; null stays null."""
    return _hashable(expr.cast(pl.String)).chash.hmac_sha256(key=key)


def record_id(prefix: str, *columns: pl.Expr) -> pl.Expr:
    """``<prefix>-<32 hex>``: SHA-256 over ``columns`` (as text, null as empty) joined by U+001F."""
    parts = [c.cast(pl.String).fill_null("") for c in columns]
    digest = _hashable(*parts, separator=_SEP).chash.sha2_256().str.slice(0, 32)
    return pl.lit(prefix + "-") + digest


def name_id(prefix: str, name: pl.Expr) -> pl.Expr:
    """A stable id for a name that has no catalogue id (``<prefix>-<32 hex>`` of its case-folded, trimmed text)."""
    digest = _hashable(name.cast(pl.String).str.strip_chars().str.to_lowercase()).chash.sha2_256()
    return (
        pl.when(name.is_null() | (name.cast(pl.String).str.strip_chars() == ""))
        .then(None)
        .otherwise(pl.lit(prefix + "-") + digest.str.slice(0, 32))
    )
