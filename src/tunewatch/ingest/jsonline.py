"""Precise decoding of one NDJSON line, for the lines the columnar fast path cannot vouch for.

Each known field's JSON value is classified by its own token, so that a hostile line yields field-level
reasons (``user_id: bad_type``, ``ms_played: not_finite``, ``cdn: invalid_utf8``) for the validator rather
than one opaque ``line: invalid_json``. Unknown fields are skipped without being decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import msgspec

from tunewatch.ingest.coerce import BAD_TYPE, BAD_UTF8, NOT_FINITE, json_scalar_text, normalise_number
from tunewatch.schema import FIELD_BY_NAME, FIELD_NAMES, Kind

_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
_STRING = msgspec.json.Decoder(str)
_BOOL_FIELDS = frozenset(f.name for f in FIELD_BY_NAME.values() if f.kind is Kind.BOOL)


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why a whole line could not be decoded: a ``line: reason`` code and a message without the raw value."""

    reason: str
    detail: str


def decode_line(line: bytes) -> dict[str, str | None] | LineProblem:
    """Decode one NDJSON line into ``{field: text or marker}`` for the schema fields, or say why it cannot be."""
    try:
        values = _TOP_LEVEL.decode(line)
    except msgspec.ValidationError:
        return LineProblem("line: not_object", "a line must hold one JSON object")
    except RecursionError:
        return LineProblem("line: too_deep", "JSON nested too deeply")
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _decode_lenient(line)
    record = {name: _token_text(name, bytes(values[name])) for name in FIELD_NAMES if name in values}
    if BAD_UTF8 not in record.values() and not _is_utf8(line):
        return LineProblem("line: invalid_utf8", "line is not valid UTF-8 (outside the schema fields)")
    return record


def _token_text(name: str, token: bytes) -> str | None:
    first = token[:1]
    if first == b'"':
        try:
            return _STRING.decode(token)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return BAD_UTF8
    if first in (b"{", b"["):
        return BAD_TYPE
    if token in (b"true", b"false"):
        return token.decode() if name in _BOOL_FIELDS else BAD_TYPE
    if token == b"null":
        return None
    return normalise_number(token.decode("ascii", errors="replace"))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_lenient(line: bytes) -> dict[str, str | None] | LineProblem:
    """Second chance for lines msgspec refuses: NaN/Infinity (as lenient writers emit them) get field reasons."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return LineProblem("line: invalid_utf8", "line is not valid UTF-8")
    try:
        value = json.loads(text, parse_constant=lambda _: _NonFinite(), parse_int=str, parse_float=normalise_number)
    except RecursionError:
        return LineProblem("line: too_deep", "JSON nested too deeply")
    except (json.JSONDecodeError, ValueError) as exc:
        return LineProblem("line: invalid_json", f"line is not valid JSON ({str(exc).split(':')[0][:60]})")
    if not isinstance(value, dict):
        return LineProblem("line: not_object", "a line must hold one JSON object")
    return {name: _python_text(name, value[name]) for name in FIELD_NAMES if name in value}


class _NonFinite:
    """Stands for NaN / Infinity while a lenient line is decoded."""


def _python_text(name: str, value: object) -> str | None:
    if isinstance(value, _NonFinite):
        return NOT_FINITE
    if isinstance(value, str):
        return value if _is_utf8_str(value) else BAD_UTF8
    return json_scalar_text(value, boolean=name in _BOOL_FIELDS)


def _is_utf8_str(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogate escape such as "\ud800"
        return False
    return True
