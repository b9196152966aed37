"""``tunewatch audit``: list and verify the tamper-evident audit trail in the tunewatch database.

A thin shell over :class:`tunewatch.security.audit.AuditLog`. ``verify`` needs the data keys
(``TUNEWATCH_DATA_KEY`` or ``TUNEWATCH_DATA_KEY_FILE``), or without them the server secret beside the database
that signed the trail; ``list`` needs neither. ``verify`` exits 0 when the chain is
intact, 1 with the first bad entry id when it is not, 2 on unusable input (no database, no key).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunewatch.errors import TunewatchError
from tunewatch.home import default_db

if TYPE_CHECKING:  # lazy: `tunewatch --help` stays fast
    from tunewatch.security.audit import AuditLog
    from tunewatch.security.keyring import Keyring

app = typer.Typer(name="audit", help="List and verify the tamper-evident audit trail.", no_args_is_help=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="TUNEWATCH_DB", show_default=False,
                 help="tunewatch database (SQLite); default $TUNEWATCH_HOME/tunewatch.db, the one `serve` uses."),
]  # fmt: skip
out = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(code=2)


def _open(db: Path | None, keyring: Keyring | None = None) -> AuditLog:
    from tunewatch.security.audit import AuditLog

    db = db if db is not None else default_db()
    if not db.is_file():
        raise _fail(f"no audit trail at {db}: no such database (use --db or TUNEWATCH_DB)")
    try:
        return AuditLog(db, keyring)
    except TunewatchError as exc:
        raise _fail(str(exc)) from None


def _since_ms(text: str, now_ms: int) -> int:
    """RFC 3339 time, or a duration back from now (``1h``, ``30m``, ``7d``)."""
    from tunewatch.notify.config import parse_duration_ms

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now_ms - parse_duration_ms(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is neither an RFC 3339 time (2026-01-05T12:00:00Z) nor a duration (1h, 30m)",
                param_hint="--since",
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _printable(text: str) -> str:
    """Control characters shown escaped, so a stored value cannot drive the terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


@app.command("list")
def list_entries(
    since: Annotated[
        str | None, typer.Option("--since", help="Only entries from this time (RFC 3339) or this long ago (1h).")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only entries by this actor.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only entries of this action.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Show the newest N entries (0: all).", min=0)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
    db: DbOption = None,
) -> None:
    """List audit entries, oldest first."""
    from tunewatch.alert.model import format_time

    since_ms = None if since is None else _since_ms(since, int(datetime.now(UTC).timestamp() * 1000))
    with _open(db) as log:
        entries = log.entries(since_ms=since_ms, actor=actor, action=action, limit=limit or None)
    if as_json:
        for e in entries:
            record = {
                "id": e.id,
                "time": format_time(e.ts_ms),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "details": e.details_dict,
                "hash": e.hash,
            }
            out.print(json.dumps(record, ensure_ascii=True), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"audit trail: {len(entries)} entries", title_justify="left")
    for col in ("id", "time", "actor", "action", "target", "details"):
        table.add_column(col, overflow="fold")
    for e in entries:
        cells = (str(e.id), format_time(e.ts_ms), e.actor, e.action, e.target, e.details)
        table.add_row(*(Text(_printable(c)) for c in cells))
    out.print(table)


@app.command("verify")
def verify(db: DbOption = None) -> None:
    """Check the hash chain; exit 1 naming the first edited, deleted, reordered or inserted entry."""
    from tunewatch.security.audit import audit_keyring
    from tunewatch.security.keyring import Keyring

    db = db if db is not None else default_db()
    try:
        keyring = audit_keyring(db, create=False) if db.is_file() else Keyring.from_env()
    except TunewatchError as exc:
        raise _fail(str(exc)) from None
    with _open(db, keyring) as log:
        result = log.verify()
    if result.ok:
        out.print(
            f"audit trail OK: {result.checked} entries, head id {result.head_id}, head hash {result.head_hash}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    out.print(
        f"audit trail BROKEN at entry id {result.first_bad_id}: {result.reason} "
        f"({result.checked} entries before it verified)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(code=1)
