"""How the command line talks to its user: the two consoles and one-line errors.

Every command reports unusable input the same way: ``error: <file or option>: <reason>`` on standard error, as
plain text (a file called ``events[bold].ndjson`` prints as it is, never as Rich markup), and a non-zero exit.
Results go to standard output (``out``); progress, notes and errors to standard error (``console``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from tunewatch.errors import TunewatchError

console = Console(stderr=True)
out = Console()

#: Temporary files standing for standard input, and the name to show instead of theirs (see ``cli.paths``).
_SHOWN_AS: dict[str, str] = {}


def shown_as(path: str, name: str) -> None:
    """Show ``name`` wherever a message mentions ``path`` (a spooled copy of standard input)."""
    _SHOWN_AS[path] = name


def plain(message: str) -> str:
    """``message`` with spooled stand-in file names replaced by the names the user gave."""
    for path, name in _SHOWN_AS.items():
        message = message.replace(path, name)
    return message


def print_error(message: str) -> None:
    """Print ``error: message`` on standard error as one line of plain text (never markup)."""
    line = " ".join(plain(message).split("\n"))
    console.print(Text.assemble(("error: ", "bold red"), line), highlight=False, soft_wrap=True)


def note(message: str) -> None:
    """Print a plain-text note on standard error."""
    console.print(Text(plain(message)), highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    print_error(message)
    raise typer.Exit(code)


OutputFormat = Literal["table", "json"]
OUTPUT = Annotated[
    str, typer.Option("--output", help="table (default, for people) or json (one JSON document on stdout).")
]


def output_format(value: str) -> OutputFormat:
    """``--output``: table or json (a one-line error otherwise)."""
    if value not in ("table", "json"):
        fail(f"--output: unknown format {value!r} (use table or json)")
    return value  # type: ignore[return-value]


def print_json(document: Any) -> None:
    """Write ``document`` as JSON to standard output (plain text, never markup)."""
    text = plain(json.dumps(document, indent=2, ensure_ascii=False))
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn tunewatch errors, and file-system errors that name their file, into one-line messages.

    Only errors whose message is meant for the user are caught; anything else is a bug and keeps its traceback.
    """
    try:
        yield
    except TunewatchError as exc:
        fail(str(exc))
    except ModuleNotFoundError as exc:
        fail(_missing_extra(exc))
    except OSError as exc:
        if exc.filename is None:
            raise
        fail(f"{exc.filename}: {exc.strerror or exc}")
    except sqlite3.DatabaseError as exc:
        fail(f"database: {exc}")
    except KeyboardInterrupt:
        fail("interrupted", 130)


def _missing_extra(exc: ModuleNotFoundError) -> str:
    from tunewatch.extras import missing_extra_message

    message = missing_extra_message(exc.name)
    if message is None:
        raise exc
    return message


def run_app(app: typer.Typer, prog_name: str) -> None:
    """Run ``app``; a command that needs an extra that is not installed says which, in one line."""
    try:
        app(prog_name=prog_name)
    except ModuleNotFoundError as exc:
        print_error(_missing_extra(exc))
        raise SystemExit(2) from None
