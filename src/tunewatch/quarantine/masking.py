"""Showing quarantined raw bytes: personal fields masked, unsafe characters escaped — the same for the HTTP API,
the console and the CLI (``--reveal`` / ``?reveal=true`` shows them as received, audited by the store).
"""

from __future__ import annotations

import re

import msgspec

from tunewatch.schema import PERSONAL_FIELDS

_REDACTED = "‹redacted›"
_PERSONAL_RE = re.compile(
    r'("(' + "|".join(map(re.escape, PERSONAL_FIELDS)) + r')"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\s]*)'
)
# C0/C1 controls, DEL, bidi marks/overrides/isolates, line/paragraph separators, BOM: shown as escapes
_UNSAFE = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F)]
_UNSAFE += [*range(0x2066, 0x206A), 0x2028, 0x2029, 0xFEFF]
_ESCAPES = {c: f"\\u{c:04x}" for c in _UNSAFE}


def display_raw(raw: bytes, *, reveal: bool = False) -> str:
    """A raw line made safe to show: personal fields masked (unless ``reveal``), unsafe characters escaped.

    A line whose personal fields cannot be located reliably (not a JSON object, escaped keys, nested values)
    is hidden whole unless ``reveal``.

    >>> display_raw(b'{"event_id":"e1","user_id":"alice","ip_addr":"10.0.0.1"}')
    '{"event_id":"e1","user_id":"‹redacted›","ip_addr":"‹redacted›"}'
    >>> display_raw(b'{"event_id":"e\\x1b[31m"}')
    '{"event_id":"e\\\\u001b[31m"}'
    """
    text = raw.decode("utf-8", errors="backslashreplace")
    if reveal or not raw:
        return safe_text(text)
    if raw.lstrip()[:1] != b"{":
        return "‹hidden: not a JSON object line; --reveal shows it›"
    found: set[str] = set()

    def mask(m: re.Match[str]) -> str:
        found.add(m.group(2))
        return f'{m.group(1)}"{_REDACTED}"'

    masked = _PERSONAL_RE.sub(mask, text)
    try:
        decoded = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        decoded = None
    if isinstance(decoded, dict):
        for name in PERSONAL_FIELDS:
            if name not in decoded:
                continue
            value = decoded[name]
            if name not in found or isinstance(value, dict | list):
                return "‹hidden: personal fields cannot be masked reliably; --reveal shows it›"
            if isinstance(value, str) and value and value in masked.replace(_REDACTED, ""):
                masked = masked.replace(value, _REDACTED)
    return safe_text(masked)


def safe_text(text: str) -> str:
    """``text`` with control, bidi and other unsafe characters shown as escapes."""
    """Escape control, bidi-override and line-separator characters so that text shows as it is."""
    return text.translate(_ESCAPES)
