"""Byte-level screening of an NDJSON chunk: cheap whole-chunk tests that let the hot path skip per-value work.

Every test here is a ``memchr``/``memmem`` scan (gigabytes per second) or a NumPy pass, never a Python loop per
line. A test that cannot vouch for a chunk only sends it (or some of its lines) to a slower, exact path: it
never changes a verdict.
"""

from __future__ import annotations

import threading
from typing import Final

import numpy as np
import numpy.typing as npt

#: Lead bytes of every non-ASCII character the validator refuses in text: C1 controls and NBSP (C2), U+061C
#: (D8), U+1680 (E1), U+2000-U+206F (E2), U+3000 (E3), U+FEFF (EF). Single bytes, so each test is a ``memchr``.
_UNSAFE_LEAD_BYTES: Final = (b"\xc2", b"\xd8", b"\xe1", b"\xe2", b"\xe3", b"\xef")


_LOCAL = threading.local()


def _equal(arr: npt.NDArray[np.uint8], byte: int) -> npt.NDArray[np.bool_]:
    """``arr == byte`` into a per-thread scratch buffer (a fresh 16 MiB array costs more in page faults)."""
    buf: npt.NDArray[np.bool_] | None = getattr(_LOCAL, "buf", None)
    if buf is None or buf.size < arr.size:
        buf = np.empty(max(arr.size, 1 << 20), dtype=np.bool_)
        _LOCAL.buf = buf
    out = buf[: arr.size]
    np.equal(arr, byte, out=out)
    return out


def text_is_clean(chunk: bytes) -> bool:
    """True when no string value in ``chunk`` can hold a control, bidi or zero-width character or padding.

    Any escape needs a backslash and raw C0 controls are invalid JSON; DEL and the non-ASCII suspects are looked
    for by their (lead) byte; a value with a leading or trailing space shows as a space beside a quote.
    """
    if b"\\" in chunk or b"\x7f" in chunk:
        return False
    if not chunk.isascii() and any(lead in chunk for lead in _UNSAFE_LEAD_BYTES):
        return False
    if b" " not in chunk:
        return True
    arr = np.frombuffer(chunk, dtype=np.uint8)
    spaces = np.flatnonzero(_equal(arr, 32))
    before = arr[np.maximum(spaces - 1, 0)]
    after = arr[np.minimum(spaces + 1, len(arr) - 1)]
    return not bool(((before == 34) | (after == 34)).any())


def first_long_line(chunk: bytes, limit: int) -> int:
    """Byte offset of the start of the first line longer than ``limit`` bytes (``-1`` if none).

    Jumps ``limit`` bytes at a time with ``rfind``: one C scan over the chunk and ``len / limit`` Python steps.
    """
    start, end = 0, len(chunk)
    while end - start > limit:
        nl = chunk.rfind(b"\n", start, start + limit + 1)
        if nl < 0:
            return start
        start = nl + 1
    return -1


def line_spans(chunk: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and end offsets (end exclusive, without ``\\r``) of every line of ``chunk``, blank ones included."""
    arr = np.frombuffer(chunk, dtype=np.uint8)
    nl = np.flatnonzero(_equal(arr, 10)).astype(np.int64)
    if not chunk.endswith(b"\n"):
        nl = np.append(nl, len(chunk))
    starts = np.concatenate([np.zeros(1, dtype=np.int64), nl[:-1] + 1])
    ends = nl.copy()
    cr = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
    ends[cr] -= 1
    return starts, ends


def nonblank(chunk: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Mask of the lines holding anything but whitespace (Polars skips the others)."""
    arr = np.frombuffer(chunk, dtype=np.uint8)
    keep = ends > starts
    first = arr[np.minimum(starts, max(len(arr) - 1, 0))] if len(arr) else np.zeros(0, dtype=np.uint8)
    maybe_blank = keep & ((first == 32) | (first == 9) | (first == 13))
    for i in np.flatnonzero(maybe_blank):
        keep[i] = bool(chunk[starts[i] : ends[i]].strip())
    return keep


def structured_lines(chunk: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Mask of the lines that may hold a nested value: a ``[`` anywhere, or a second ``{``."""
    arr = np.frombuffer(chunk, dtype=np.uint8)
    pos = np.flatnonzero((arr == 91) | (arr == 123))
    line = np.searchsorted(ends, pos, side="left")
    counts = np.bincount(line, minlength=len(starts))[: len(starts)]
    brackets = np.zeros(len(starts), dtype=bool)
    sq = pos[arr[pos] == 91]
    brackets[np.searchsorted(ends, sq, side="left")] = True
    return brackets | (counts > 1)


def may_nest(chunk: bytes, lines: int | None = None) -> bool:
    """Cheap test: can any line of ``chunk`` hold a nested JSON value (``[`` anywhere or more ``{`` than lines)?

    ``lines`` is the number of lines of ``chunk`` if the caller knows it already.
    """
    if b"[" in chunk:
        return True
    arr = np.frombuffer(chunk, dtype=np.uint8)
    if lines is None:
        lines = int(np.count_nonzero(_equal(arr, 10))) + (0 if chunk.endswith(b"\n") else 1)
    return int(np.count_nonzero(_equal(arr, 123))) > lines


_TRUE: Final = int.from_bytes(b"true", "little")
_FALS: Final = int.from_bytes(b"fals", "little")


def bool_tokens(chunk: bytes) -> int:
    """Upper bound of the ``true``/``false`` literals in ``chunk``: occurrences of ``true`` and ``fals``.

    Counted as 32-bit words at each of the four byte offsets, which NumPy compares far faster than a byte search.
    """
    arr = np.frombuffer(chunk, dtype=np.uint8)
    total = 0
    for k in range(4):
        part = arr[k:]
        words = part[: part.size // 4 * 4].view(np.uint32)
        total += int(np.count_nonzero(words == _TRUE)) + int(np.count_nonzero(words == _FALS))
    return total
