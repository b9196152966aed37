"""File arguments of the command line: checked before any work, ``-`` for standard input or output.

* :func:`text_input` — a rule, config, labels or alerts file must exist and be UTF-8 text: a binary file is a
  one-line :class:`~tunewatch.errors.InputError` naming it, never a ``UnicodeDecodeError`` traceback.
* :func:`input_path` — ``-`` reads standard input (spooled to a temporary file that messages call ``<stdin>``).
* :func:`output_path` — a file to write: its folder is created when missing, or a clear error is raised before
  the command starts working (not after a whole replay).
* :func:`open_output` — ``-`` writes to standard output.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tunewatch.cli.feedback import shown_as
from tunewatch.errors import InputError
from tunewatch.home import writable_file

STDIO = "-"
STDIN_NAME = "<stdin>"
_TEXT_SNIFF_BYTES = 1 << 20


def is_stdio(path: Path | str | None) -> bool:
    """Whether ``path`` is ``-`` (standard input or output)."""
    return path is not None and str(path) == STDIO


def input_path(path: Path) -> Path:
    """``path``, or for ``-`` a temporary copy of standard input (removed at exit; messages say ``<stdin>``)."""
    if not is_stdio(path):
        return path
    folder = Path(tempfile.mkdtemp(prefix="tunewatch-stdin-"))
    atexit.register(shutil.rmtree, folder, True)
    spooled = folder / "stdin"
    with spooled.open("wb") as fh:
        shutil.copyfileobj(sys.stdin.buffer, fh)
    shown_as(str(spooled), STDIN_NAME)
    return spooled


def existing_file(path: Path, what: str) -> Path:
    """``path`` if it is a readable regular file; :class:`InputError` naming it and the reason otherwise."""
    path = input_path(path)
    if not path.exists():
        raise InputError(f"{path}: no such {what}")
    if path.is_dir():
        raise InputError(f"{path}: is a directory (expected: {what})")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: {what} is not readable (permission denied)")
    return path


def text_input(path: Path, what: str, *, allow_empty: bool = True) -> Path:
    """``path`` checked to be a UTF-8 text file (``-``: standard input); :class:`InputError` otherwise.

    ``what`` names the file's role in messages, e.g. ``"rule file"``.
    """
    path = existing_file(path, what)
    with path.open("rb") as fh:
        head = fh.read(_TEXT_SNIFF_BYTES)
    if not head.strip() and not allow_empty:
        raise InputError(f"{path}: {what} is empty")
    if b"\x00" in head:
        raise InputError(f"{path}: binary file, not UTF-8 text (expected: {what})")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a multi-byte character cut by the sniff limit
            raise InputError(f"{path}: not UTF-8 text (bad byte at offset {exc.start}; expected: {what})") from None
    return path


def output_path(path: Path, what: str = "output file") -> Path:
    """Check, before any work, that ``path`` can be written: its folder is created when missing.

    ``-`` (standard output) is always fine. Raises :class:`InputError` naming the file and the reason.
    """
    if is_stdio(path):
        return path
    return writable_file(path, what)


def output_dir(path: Path, what: str = "output folder") -> Path:
    """Create the folder ``path`` (and its parents) now, or raise :class:`InputError` naming it."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory (expected: {what})")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the {what}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write in the {what} (permission denied)")
    return path


@contextlib.contextmanager
def open_output(path: Path) -> Iterator[IO[bytes]]:
    """Open ``path`` for writing bytes; ``-`` is standard output (left open)."""
    if is_stdio(path):
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        fh = path.open("wb")
    except OSError as exc:
        raise InputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    with fh:
        yield fh
