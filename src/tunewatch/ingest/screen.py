"""Byte-level screening of an NDJSON chunk: cheap whole-chunk tests that let the hot path skip per-value work.

Every test here is one compiled pass over the chunk's bytes (:func:`screen_chunk`: the newlines, the text test,
the nesting test and the boolean literals together), a ``memchr``/``memmem`` scan or a NumPy pass, never a
Python loop per line. A test that cannot vouch for a chunk only sends it (or some of its lines) to a slower,
exact path: it never changes a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numba
import numpy as np
import numpy.typing as npt

#: Lead bytes of every non-ASCII character the validator refuses in text: C1 controls and NBSP (C2), U+061C
#: (D8), U+1680 (E1), U+2000-U+206F (E2), U+3000 (E3), U+FEFF (EF). Single bytes: one class each in the screen.
_UNSAFE_LEAD_BYTES: Final = (b"\xc2", b"\xd8", b"\xe1", b"\xe2", b"\xe3", b"\xef")


@dataclass(frozen=True, slots=True)
class ChunkScreen:
    """Every whole-chunk test of an NDJSON chunk, from one pass over its bytes (:func:`screen_chunk`)."""

    #: byte offset of every newline
    newlines: npt.NDArray[np.int64]
    #: no string value can hold a control, bidi or zero-width character or padding (see :func:`text_is_clean`)
    text_clean: bool
    #: some line may hold a nested value: a ``[`` anywhere, or more ``{`` than lines
    may_nest: bool
    #: upper bound of the ``true``/``false`` literals: occurrences of ``true`` and ``fals``
    bool_literals: int

    @property
    def lines(self) -> int:
        """Number of lines, the last one counted even without its newline (as :func:`line_spans` does)."""
        return self.newlines.size


# byte classes of the screen's pass (0: nothing to note); unsafe: a backslash (any escape), DEL, a suspect lead byte
_NEWLINE: Final = 1
_BRACE: Final = 2
_BRACKET: Final = 3
_UNSAFE: Final = 4
_SPACE: Final = 5
_T: Final = 6
_F: Final = 7
_QUOTE_CLASS: Final = 8
_QUOTE: Final = 34
_CLASSES = np.zeros(256, dtype=np.uint8)
_CLASSES[[10, 123, 91, 92, 0x7F, 32, ord("t"), ord("f"), _QUOTE]] = [_NEWLINE, _BRACE, _BRACKET, _UNSAFE, _UNSAFE,
                                                                      _SPACE, _T, _F, _QUOTE_CLASS]  # fmt: skip
_CLASSES[[lead[0] for lead in _UNSAFE_LEAD_BYTES]] = _UNSAFE


@numba.njit(cache=True, nogil=True)
def _screen(
    arr: npt.NDArray[np.uint8], classes: npt.NDArray[np.uint8]
) -> tuple[  # pragma: no cover - compiled
    npt.NDArray[np.int64], int, bool, bool, bool, int
]:
    """Newline offsets, ``{`` count, whether a ``[``, an unsafe byte and a padded string (a space inside a string,
    next to its opening or closing quote) occur, and the number of ``true``/``fals`` words, in one pass.

    Strings are followed by their quotes, each ``"`` opening or closing one, from the start of each line; an
    escaped quote would mislead that, but any backslash is an unsafe byte, which already makes the chunk unclean
    (and a line with an unclosed string is not JSON: the reader refuses it). A space outside strings
    (``", "``, ``": "``, Python's default ``json.dumps``) is not padding."""
    n = arr.shape[0]
    newlines = np.empty(n, dtype=np.int64)
    n_nl = 0
    braces = 0
    bracket = False
    unsafe = False
    padded = False
    literals = 0
    in_string = False  # between an opening and a closing quote
    for i in range(n):
        c = classes[arr[i]]
        if c == 0:
            continue
        if c == _NEWLINE:
            newlines[n_nl] = i
            n_nl += 1
            in_string = False  # a line of valid JSON closes its strings (a raw newline in one is invalid)
        elif c == _BRACE:
            braces += 1
        elif c == _BRACKET:
            bracket = True
        elif c == _UNSAFE:
            unsafe = True
        elif c == _QUOTE_CLASS:
            in_string = not in_string
        elif c == _SPACE:
            padded |= in_string and ((i > 0 and arr[i - 1] == _QUOTE) or (i + 1 < n and arr[i + 1] == _QUOTE))
        elif c == _T:
            literals += i + 3 < n and arr[i + 1] == 114 and arr[i + 2] == 117 and arr[i + 3] == 101  # "rue"
        elif c == _F:
            literals += i + 3 < n and arr[i + 1] == 97 and arr[i + 2] == 108 and arr[i + 3] == 115  # "als"
    return newlines[:n_nl].copy(), braces, bracket, unsafe, padded, literals


def screen_chunk(chunk: bytes) -> ChunkScreen:
    """All the whole-chunk tests of ``chunk`` from one compiled pass (results equal to the single tests')."""
    arr = np.frombuffer(chunk, dtype=np.uint8)
    newlines, braces, bracket, unsafe, padded, literals = _screen(arr, _CLASSES)
    if not chunk.endswith(b"\n"):
        newlines = np.append(newlines, len(chunk))
    return ChunkScreen(
        newlines=newlines,
        text_clean=not (unsafe or padded),
        may_nest=bracket or braces > newlines.size,
        bool_literals=literals,
    )


def text_is_clean(chunk: bytes) -> bool:
    """True when no string value in ``chunk`` can hold a control, bidi or zero-width character or padding.

    Any escape needs a backslash and raw C0 controls are invalid JSON; DEL and the non-ASCII suspects are looked
    for by their (lead) byte; a value with a leading or trailing space shows as a space inside a string beside
    one of its quotes (a space between tokens, as in ``{"a": "b", "c": 1}``, is not one).
    """
    return screen_chunk(chunk).text_clean


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


def line_spans(
    chunk: bytes, newlines: npt.NDArray[np.int64] | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and end offsets (end exclusive, without ``\\r``) of every line of ``chunk``, blank ones included.

    ``newlines`` are the line ends if the caller has them (:attr:`ChunkScreen.newlines`)."""
    arr = np.frombuffer(chunk, dtype=np.uint8)
    nl = screen_chunk(chunk).newlines if newlines is None else newlines
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
    return _structured(arr, starts.astype(np.int64, copy=False), ends.astype(np.int64, copy=False))


@numba.njit(cache=True, nogil=True)
def _structured(
    arr: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:  # pragma: no cover - compiled
    out = np.zeros(starts.shape[0], dtype=np.bool_)
    for j in range(starts.shape[0]):
        braces = 0
        for i in range(starts[j], ends[j]):
            c = arr[i]
            if c == 91:  # [
                out[j] = True
                break
            if c == 123:  # {
                braces += 1
                if braces > 1:
                    out[j] = True
                    break
    return out
