r"""Which lines of an NDJSON chunk are certainly one well-formed JSON object: one compiled pass over the bytes.

When Polars refuses a chunk because a few of its lines are broken (truncated by a crashed writer, say), the
reader does not have to decode all of the chunk's lines one by one: :func:`suspect_lines` finds the lines that
are not certainly a JSON object (RFC 8259 syntax, UTF-8 strings), those alone are decoded exactly, and the
rest of the chunk is parsed in columnar form again. The test is strict in one direction only: a line it passes
is valid JSON holding one object; a line it flags may still be valid (nested deeper than it follows, a
surrogate escape, a number near a double's range), and the reader then treats the chunk as before.

>>> from tunewatch.ingest.screen import line_spans
>>> chunk = b'{"a": 1, "b": [true, null, -2.5e3], "c": "\\u00e9"}\n{"a": 1, "b": \n  \n[1]\n{"a": "\xc3"}\n{"a": 01}\n'
>>> suspect_lines(chunk, *line_spans(chunk)).tolist()
[False, True, False, True, True, True]
"""

from __future__ import annotations

from typing import Final

import numba
import numpy as np
import numpy.typing as npt

#: Deepest nesting the test follows; a deeper line is flagged (and decoded exactly).
MAX_DEPTH: Final = 32

#: Largest decimal magnitude of a number the test passes (a double reaches 1.8e308).
MAX_DECIMAL_EXPONENT: Final = 300

_OPEN_OBJECT: Final = 1
_OPEN_ARRAY: Final = 2


@numba.njit(cache=True, nogil=True, inline="always")
def _skip_space(arr: npt.NDArray[np.uint8], i: int, end: int) -> int:  # pragma: no cover - compiled
    while i < end and (arr[i] == 32 or arr[i] == 9 or arr[i] == 13 or arr[i] == 10):
        i += 1
    return i


@numba.njit(cache=True, nogil=True)
def _string_end(arr: npt.NDArray[np.uint8], i: int, end: int) -> int:  # pragma: no cover - compiled
    """Offset just past the string opening at ``i`` (a quote), or -1 if it is not a well-formed string (a raw
    control byte, a bad escape, a surrogate escape, malformed UTF-8, no closing quote)."""
    i += 1
    while i < end:
        c = arr[i]
        if c == 34:  # closing quote
            return i + 1
        if c == 92:  # backslash
            if i + 1 >= end:
                return -1
            e = arr[i + 1]
            if e == 117:  # \uXXXX
                if i + 5 >= end:
                    return -1
                value = 0
                for k in range(i + 2, i + 6):
                    h = arr[k]
                    if 48 <= h <= 57:
                        value = value * 16 + (h - 48)
                    elif 97 <= h <= 102:
                        value = value * 16 + (h - 87)
                    elif 65 <= h <= 70:
                        value = value * 16 + (h - 55)
                    else:
                        return -1
                if 0xD800 <= value <= 0xDFFF:  # a surrogate: decoders differ on lone ones
                    return -1
                i += 6
            elif e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 110 or e == 114 or e == 116:
                i += 2
            else:
                return -1
        elif c < 32:
            return -1
        elif c < 128:
            i += 1
        else:  # UTF-8 (RFC 3629): the lead byte's length, continuation bytes, no overlong form, no surrogate
            if 0xC2 <= c <= 0xDF:
                n, lo, hi = 1, 0x80, 0xBF
            elif c == 0xE0:
                n, lo, hi = 2, 0xA0, 0xBF
            elif c == 0xED:
                n, lo, hi = 2, 0x80, 0x9F
            elif 0xE1 <= c <= 0xEF:
                n, lo, hi = 2, 0x80, 0xBF
            elif c == 0xF0:
                n, lo, hi = 3, 0x90, 0xBF
            elif 0xF1 <= c <= 0xF3:
                n, lo, hi = 3, 0x80, 0xBF
            elif c == 0xF4:
                n, lo, hi = 3, 0x80, 0x8F
            else:
                return -1
            if i + n >= end or not (lo <= arr[i + 1] <= hi):
                return -1
            for k in range(i + 2, i + n + 1):
                if not (0x80 <= arr[k] <= 0xBF):
                    return -1
            i += n + 1
    return -1


@numba.njit(cache=True, nogil=True)
def _number_end(arr: npt.NDArray[np.uint8], i: int, end: int) -> int:  # pragma: no cover - compiled
    """Offset just past the number starting at ``i``, or -1 if it is not a JSON number or its magnitude may be
    beyond a double's (decoders refuse it: more than :data:`MAX_DECIMAL_EXPONENT` decimal digits either way)."""
    if arr[i] == 45:  # minus
        i += 1
    if i >= end:
        return -1
    digits = 0
    if arr[i] == 48:  # a leading zero stands alone
        i += 1
        digits = 1
    elif 49 <= arr[i] <= 57:
        while i < end and 48 <= arr[i] <= 57:
            i += 1
            digits += 1
    else:
        return -1
    if i < end and arr[i] == 46:  # fraction
        i += 1
        if i >= end or not (48 <= arr[i] <= 57):
            return -1
        while i < end and 48 <= arr[i] <= 57:
            i += 1
    exponent = 0
    if i < end and (arr[i] == 101 or arr[i] == 69):  # exponent
        i += 1
        negative = False
        if i < end and (arr[i] == 43 or arr[i] == 45):
            negative = arr[i] == 45
            i += 1
        if i >= end or not (48 <= arr[i] <= 57):
            return -1
        while i < end and 48 <= arr[i] <= 57:
            exponent = min(exponent * 10 + (arr[i] - 48), 100_000)
            i += 1
        if negative:
            exponent = -exponent
    if digits + exponent > MAX_DECIMAL_EXPONENT or exponent < -MAX_DECIMAL_EXPONENT:
        return -1
    return i


@numba.njit(cache=True, nogil=True)
def _word_end(arr: npt.NDArray[np.uint8], i: int, end: int, word: npt.NDArray[np.uint8]) -> int:  # pragma: no cover
    """Offset just past the literal ``word`` at ``i``, or -1."""
    if i + word.shape[0] > end:
        return -1
    for k in range(word.shape[0]):
        if arr[i + k] != word[k]:
            return -1
    return i + word.shape[0]


@numba.njit(cache=True, nogil=True)
def _object_line(
    arr: npt.NDArray[np.uint8], start: int, end: int, stack: npt.NDArray[np.uint8], words: npt.NDArray[np.uint8]
) -> bool:  # pragma: no cover - compiled
    """True when ``arr[start:end]`` is blank or exactly one JSON object (with surrounding whitespace)."""
    i = _skip_space(arr, start, end)
    if i == end:
        return True
    if arr[i] != 123:  # a line must hold an object
        return False
    depth = 0
    expect_value = True
    while True:
        if expect_value:
            i = _skip_space(arr, i, end)
            if i >= end:
                return False
            c = arr[i]
            if c == 123 or c == 91:  # { or [: open a container
                if depth == MAX_DEPTH:
                    return False
                stack[depth] = _OPEN_OBJECT if c == 123 else _OPEN_ARRAY
                depth += 1
                i = _skip_space(arr, i + 1, end)
                if i >= end:
                    return False
                if arr[i] == (125 if c == 123 else 93):  # empty container
                    depth -= 1
                    i += 1
                    expect_value = False
                    continue
                if c == 91:
                    continue  # an array's first value
                # an object's first key
            elif c == 34:
                i = _string_end(arr, i, end)
                expect_value = False
                if i < 0:
                    return False
                continue
            elif c == 45 or 48 <= c <= 57:
                i = _number_end(arr, i, end)
                expect_value = False
                if i < 0:
                    return False
                continue
            else:
                if c == 116:
                    i = _word_end(arr, i, end, words[0:4])  # true
                elif c == 102:
                    i = _word_end(arr, i, end, words[4:9])  # false
                elif c == 110:
                    i = _word_end(arr, i, end, words[9:13])  # null
                else:
                    return False
                expect_value = False
                if i < 0:
                    return False
                continue
        else:  # after a value: the end of the line at the top level, else a comma or the container's close
            i = _skip_space(arr, i, end)
            if depth == 0:
                return i == end
            if i >= end:
                return False
            c = arr[i]
            top = stack[depth - 1]
            if c == 44:  # comma
                i += 1
                if top == _OPEN_ARRAY:
                    expect_value = True
                    continue
            elif (c == 125 and top == _OPEN_OBJECT) or (c == 93 and top == _OPEN_ARRAY):
                depth -= 1
                i += 1
                continue
            else:
                return False
        # an object's key and its colon, then its value
        i = _skip_space(arr, i, end)
        if i >= end or arr[i] != 34:
            return False
        i = _string_end(arr, i, end)
        if i < 0:
            return False
        i = _skip_space(arr, i, end)
        if i >= end or arr[i] != 58:
            return False
        i += 1
        expect_value = True


@numba.njit(cache=True, nogil=True)
def _suspects(
    arr: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], words: npt.NDArray[np.uint8]
) -> npt.NDArray[np.bool_]:  # pragma: no cover - compiled
    stack = np.zeros(MAX_DEPTH, dtype=np.uint8)
    out = np.zeros(starts.shape[0], dtype=np.bool_)
    for j in range(starts.shape[0]):
        out[j] = not _object_line(arr, starts[j], ends[j], stack, words)
    return out


_WORDS: Final = np.frombuffer(b"truefalsenull", dtype=np.uint8)


def suspect_lines(chunk: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Mask of the lines (``chunk[starts[i]:ends[i]]``) that are not certainly blank or one JSON object."""
    arr = np.frombuffer(chunk, dtype=np.uint8)
    return _suspects(arr, starts.astype(np.int64, copy=False), ends.astype(np.int64, copy=False), _WORDS)
