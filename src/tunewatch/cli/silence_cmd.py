"""``tunewatch silences``: add, list and expire silences in the tunewatch database.

A thin shell over :class:`tunewatch.notify.silence.SilenceStore`; a running pipeline using the same database
picks changes up at its next group flush.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunewatch.alert.model import format_time
from tunewatch.errors import TunewatchError
from tunewatch.notify.config import parse_duration_ms
from tunewatch.notify.matchers import parse_matchers
from tunewatch.notify.silence import SilenceState, SilenceStore
from tunewatch.security.audit import record_admin_action
from tunewatch.store.sqlite import connect

app = typer.Typer(name="silences", help="Create, list and expire silences (mute alerts by label matchers).",
                  no_args_is_help=True)  # fmt: skip

DbOption = Annotated[
    Path, typer.Option("--db", envvar="TUNEWATCH_DB", help="tunewatch database (SQLite).", show_default=True)
]
_DEFAULT_DB = Path("tunewatch.db")


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _parse_time(text: str, now_ms: int) -> int:
    if text == "now":
        return now_ms
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z) or 'now'") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _store(db: Path) -> SilenceStore:
    return SilenceStore(connect(db))


def _fail(exc: TunewatchError) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    return typer.Exit(code=2)


@app.command("add")
def add(
    matchers: Annotated[list[str], typer.Argument(help='Label matchers: market=BR, cdn!=edge-1, alertname=~"High.*".')],
    duration: Annotated[str | None, typer.Option("--duration", "-d", help="How long, e.g. 2h (default 1h).")] = None,
    starts: Annotated[str, typer.Option("--starts", help="Start time, RFC 3339 or 'now'.")] = "now",
    ends: Annotated[str | None, typer.Option("--ends", help="End time, RFC 3339 (instead of --duration).")] = None,
    comment: Annotated[str, typer.Option("--comment", "-c", help="Why (required).")] = "",
    author: Annotated[str | None, typer.Option("--author", "-a", help="Who (default: $USER).")] = None,
    db: DbOption = _DEFAULT_DB,
) -> None:
    """Add a silence; prints its id."""
    now = _now_ms()
    if not comment.strip():
        raise typer.BadParameter("say why with --comment", param_hint="--comment")
    if duration is not None and ends is not None:
        raise typer.BadParameter("give --duration or --ends, not both", param_hint="--duration")
    start_ms = _parse_time(starts, now)
    if ends is not None:
        end_ms = _parse_time(ends, now)
    else:
        try:
            end_ms = start_ms + parse_duration_ms(duration or "1h")
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--duration") from exc
    who = author or os.environ.get("USER") or getpass.getuser()
    try:
        silence = _store(db).add(parse_matchers(matchers), starts_at=start_ms, ends_at=end_ms, created_by=who,
                                 comment=comment, now_ms=now)  # fmt: skip
    except TunewatchError as exc:
        raise _fail(exc) from None
    record_admin_action(db, "silence.create", silence.id, matchers=[str(m) for m in silence.matchers],
                        starts_at=start_ms, ends_at=end_ms, comment=comment)  # fmt: skip
    typer.echo(silence.id)


@app.command("list")
def list_(
    state: Annotated[
        str, typer.Option("--state", help="active, pending, expired, or all (default: active and pending).")
    ] = "current",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print ids.")] = False,
    db: DbOption = _DEFAULT_DB,
) -> None:
    """List silences."""
    if state not in ("current", "active", "pending", "expired", "all"):
        raise typer.BadParameter("use active, pending, expired or all", param_hint="--state")
    now = _now_ms()
    wanted: SilenceState | None = state if state in ("active", "pending", "expired") else None  # type: ignore[assignment]
    silences = _store(db).find(now, wanted)
    if state == "current":
        silences = [s for s in silences if s.state(now) != "expired"]
    if quiet:
        for s in silences:
            typer.echo(s.id)
        return
    table = Table("Matchers", "State", "Starts", "Ends", "Created by", "Comment")
    table.add_column("ID", no_wrap=True, min_width=32)
    for s in silences:
        table.add_row(" ".join(str(m) for m in s.matchers), s.state(now), format_time(s.starts_at),
                      format_time(s.ends_at), s.created_by, s.comment, s.id)  # fmt: skip
    Console(highlight=False, soft_wrap=True).print(table, markup=False)


@app.command("expire")
def expire(
    ids: Annotated[list[str], typer.Argument(help="Silence ids (or unique prefixes).")],
    db: DbOption = _DEFAULT_DB,
) -> None:
    """Expire silences now."""
    store = _store(db)
    now = _now_ms()
    for sid in ids:
        try:
            silence = store.expire(sid, now)
        except TunewatchError as exc:
            raise _fail(exc) from None
        record_admin_action(db, "silence.expire", silence.id)
        typer.echo(f"expired {silence.id}")
