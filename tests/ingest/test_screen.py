"""The one-pass chunk screen against plain byte-level definitions of each of its tests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.ingest.screen import screen_chunk

#: bytes that matter to some test of the screen, and a few that do not
_ALPHABET = [*b'\n{}[]\\\x7f "tfruealsx:,', 0xC2, 0xA0, 0xD8, 0xE1, 0xE2, 0xE3, 0xEF, 0xC3, 0xA9]


def _padded(line: bytes) -> bool:
    """A space inside a string of ``line``, next to the quote that opens or closes it (quotes taken in turn)."""
    quotes = [i for i, b in enumerate(line) if b == 34]
    for start, end in zip(quotes[::2], [*quotes[1::2], len(line)], strict=False):
        if end > start + 1 and (line[start + 1] == 32 or line[end - 1] == 32) and end < len(line):
            return True
        if end == len(line) and start + 1 < len(line) and line[start + 1] == 32:  # an unclosed string
            return True
    return False


def _reference(chunk: bytes) -> tuple[list[int], bool, bool, int]:
    newlines = [i for i, b in enumerate(chunk) if b == 10]
    if not chunk.endswith(b"\n"):
        newlines.append(len(chunk))
    unsafe = any(b in chunk for b in (b"\\", b"\x7f", b"\xc2", b"\xd8", b"\xe1", b"\xe2", b"\xe3", b"\xef"))
    padded = any(_padded(line) for line in chunk.split(b"\n"))
    nests = b"[" in chunk or chunk.count(b"{") > len(newlines)
    literals = sum(chunk[i : i + 4] in (b"true", b"fals") for i in range(len(chunk)))
    return newlines, not (unsafe or padded), nests, literals


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=80).map(bytes))
def test_screen_equals_the_byte_definitions(chunk: bytes) -> None:
    found = screen_chunk(chunk)
    assert (found.newlines.tolist(), found.text_clean, found.may_nest, found.bool_literals) == _reference(chunk)


def test_screen_of_a_typical_line() -> None:
    chunk = b'{"event_id":"e1","offline":false,"shuffle":true,"market":"BR"}\n{"event_id":"e2"}\n'
    found = screen_chunk(chunk)
    assert found.newlines.tolist() == [62, 80]
    assert (found.text_clean, found.may_nest, found.bool_literals, found.lines) == (True, False, 2, 2)
