"""``tunewatch silences``: add, list and expire silences — of the running service, or in its database.

Where silences go (one silence store, never the current directory):

* with ``--url`` / ``TUNEWATCH_URL`` set: to the running service, through its API (as ``amtool`` talks to
  Alertmanager); its clock decides when a silence given a ``--duration`` starts;
* otherwise: to the database ``tunewatch serve`` uses by default (``--db`` / ``TUNEWATCH_DB``, default
  ``$TUNEWATCH_HOME/tunewatch.db``, see :mod:`tunewatch.home`); a service on that database applies a change at
  its next check.

Every command says on standard error which of the two it used.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tunewatch.cli.feedback import OUTPUT, fail, note, out, output_format, print_json, user_errors
from tunewatch.cli.tables import Column, fitted_table
from tunewatch.home import default_db, ensure_folder_of

if TYPE_CHECKING:
    from tunewatch.notify.silence import Silence, SilenceState, SilenceStore

app = typer.Typer(name="silences", help="Create, list and expire silences (mute alerts by label matchers).",
                  no_args_is_help=True)  # fmt: skip

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db", envvar="TUNEWATCH_DB", show_default=False,
        help="tunewatch database (SQLite); default $TUNEWATCH_HOME/tunewatch.db, the one `tunewatch serve` uses.",
    ),
]  # fmt: skip
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="TUNEWATCH_URL", show_default=False,
        help="A running service, e.g. http://127.0.0.1:8787: change its silences through its API (wins over --db).",
    ),
]  # fmt: skip
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="TUNEWATCH_API_KEY", show_default=False,
                 help="API key with admin scope, for a service started with TUNEWATCH_AUTH=1."),
]  # fmt: skip


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z) or 'now'") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@contextmanager
def _database(db: Path | None, *, create: bool) -> Iterator[tuple[SilenceStore, Path]]:
    """The silence store of ``db`` (default: the shared database); reading never creates a database.

    The default database not existing yet is an empty store; a ``--db`` that does not exist is an error. The
    store audits its changes in the database's trail (actor: the operating-system user) and bounds silences by
    ``max_silence`` (``TUNEWATCH_MAX_SILENCE``), as the service does.
    """
    from tunewatch.notify.silence import SilenceStore  # lazy: `tunewatch --help` stays fast
    from tunewatch.security.audit import record_admin_action
    from tunewatch.server.settings import ServerSettings

    path = db if db is not None else default_db()
    location: Path | str = path
    if not path.exists():
        if create and db is None:
            ensure_folder_of(path)
        elif not create and db is not None:
            fail(f"{path}: no such database (see --db and --url)")
        elif not create:
            location = ":memory:"  # nothing silenced yet: an empty store, and no file created by reading

    def audit(actor: str, action: str, target: str, **details: Any) -> None:
        record_admin_action(path, action, target, **details)

    store = SilenceStore.open(location, max_ms=ServerSettings().max_silence_ms,
                              audit=audit if location != ":memory:" else None)  # fmt: skip
    try:
        yield store, path
    finally:
        store.close()


def _row(silence: Silence, state: SilenceState) -> dict[str, Any]:
    from tunewatch.alert.model import format_time

    return {"id": silence.id, "matchers": [str(m) for m in silence.matchers], "state": state,
            "startsAt": format_time(silence.starts_at), "endsAt": format_time(silence.ends_at),
            "createdBy": silence.created_by, "comment": silence.comment}  # fmt: skip


@app.command("add")
def add(
    matchers: Annotated[list[str], typer.Argument(help='Label matchers: market=BR, cdn!=edge-1, alertname=~"High.*".')],
    duration: Annotated[str | None, typer.Option("--duration", "-d", help="How long, e.g. 2h (default 1h).")] = None,
    starts: Annotated[str, typer.Option("--starts", help="Start time, RFC 3339 or 'now'.")] = "now",
    ends: Annotated[str | None, typer.Option("--ends", help="End time, RFC 3339 (instead of --duration).")] = None,
    comment: Annotated[str, typer.Option("--comment", "-c", help="Why (required).")] = "",
    author: Annotated[str | None, typer.Option("--author", "-a", help="Who (default: $USER).")] = None,
    db: DbOption = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Add a silence; prints its id."""
    from tunewatch.alert.model import format_time  # lazy: `tunewatch --help` stays fast
    from tunewatch.notify.config import parse_duration_ms
    from tunewatch.notify.matchers import parse_matchers
    from tunewatch.notify.silence_api import SilenceApiClient

    if not comment.strip():
        raise typer.BadParameter("say why with --comment", param_hint="--comment")
    if duration is not None and ends is not None:
        raise typer.BadParameter("give --duration or --ends, not both", param_hint="--duration")
    start = None if starts == "now" else _parse_time(starts)
    end = _parse_time(ends) if ends is not None else None
    if duration is not None:
        try:
            parse_duration_ms(duration)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--duration") from exc
    who = author or os.environ.get("USER") or getpass.getuser()
    with user_errors():
        parsed = parse_matchers(matchers)
        if url:
            with SilenceApiClient(url, api_key=api_key) as client:
                created = client.add(
                    [str(m) for m in parsed], comment=comment, created_by=who,
                    duration=duration if end is None else None, starts_at=start, ends_at=end,
                )  # fmt: skip
            silence, where = created.silence, f"the service at {url}"
        else:
            now = _now_ms()
            start_ms = _ms(start) if start is not None else now
            end_ms = _ms(end) if end is not None else start_ms + parse_duration_ms(duration or "1h")
            with _database(db, create=True) as (store, path):
                silence = store.add(parsed, starts_at=start_ms, ends_at=end_ms, created_by=who, comment=comment,
                                    now_ms=now, via="cli")  # fmt: skip
            where = f"{path} (a service on this database applies it at its next check)"
    typer.echo(silence.id)
    note(f"silence {silence.id[:8]} until {format_time(silence.ends_at)} added to {where}")


@app.command("list")
def list_(
    state: Annotated[
        str, typer.Option("--state", help="active, pending, expired, or all (default: active and pending).")
    ] = "current",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print ids.")] = False,
    output: OUTPUT = "table",
    db: DbOption = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List silences, newest first."""
    from tunewatch.notify.silence_api import RemoteSilence, SilenceApiClient  # lazy: `tunewatch --help` stays fast

    if state not in ("current", "active", "pending", "expired", "all"):
        raise typer.BadParameter("use active, pending, expired or all", param_hint="--state")
    fmt = output_format(output)
    with user_errors():
        if url:
            with SilenceApiClient(url, api_key=api_key) as client:
                found = client.find()
            where = f"the service at {url}"
        else:
            now = _now_ms()
            with _database(db, create=False) as (store, path):
                found = [RemoteSilence(s, s.state(now)) for s in store.find(now)]
            where = str(path)
    wanted = {"current": ("active", "pending"), "all": ("active", "pending", "expired")}.get(state, (state,))
    shown = [f for f in found if f.state in wanted]
    if quiet:
        for f in shown:
            typer.echo(f.silence.id)
        return
    rows = [_row(f.silence, f.state) for f in shown]
    if fmt == "json":
        print_json(rows)
        return
    columns = [Column("ID", 8), Column("Matchers", 14), Column("State", 7), Column("Starts", 20, drop=3),
               Column("Ends", 20), Column("Created by", 8, drop=2), Column("Comment", 10, drop=1)]  # fmt: skip
    cells = [[r["id"], " ".join(r["matchers"]), r["state"], r["startsAt"], r["endsAt"], r["createdBy"], r["comment"]]
             for r in rows]  # fmt: skip
    out.print(fitted_table(out, columns, cells, title=f"{len(rows)} silences in {where}"))


@app.command("expire")
def expire(
    ids: Annotated[list[str], typer.Argument(help="Silence ids (or unique prefixes).")],
    db: DbOption = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Expire silences now."""
    from tunewatch.notify.silence_api import SilenceApiClient  # lazy: `tunewatch --help` stays fast

    with user_errors():
        if url:
            with SilenceApiClient(url, api_key=api_key) as client:
                for sid in ids:
                    typer.echo(f"expired {client.expire(sid).silence.id}")
            return
        with _database(db, create=False) as (store, _):
            for sid in ids:
                silence = store.expire(sid, _now_ms(), via="cli")
                typer.echo(f"expired {silence.id}")
