"""``tunewatch keys``: create, list and revoke API keys in the tunewatch database.

A key is printed once, at creation; the database keeps only its scrypt hash. The service checks keys when
started with ``TUNEWATCH_AUTH=1`` on the same database (``--db`` / ``TUNEWATCH_DB``, default
``$TUNEWATCH_HOME/tunewatch.db``: the one ``tunewatch serve`` uses, see :mod:`tunewatch.home`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from tunewatch.cli.feedback import OUTPUT, console, fail, out, output_format, print_json, user_errors
from tunewatch.cli.tables import Column, fitted_table
from tunewatch.home import default_db, ensure_folder_of
from tunewatch.security.audit import record_admin_action
from tunewatch.security.keys import SCOPES, ApiKeyStore
from tunewatch.store.sqlite import connect

app = typer.Typer(name="keys", help="Create, list and revoke API keys (scopes: ingest, read, admin, metrics).",
                  no_args_is_help=True)  # fmt: skip

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="TUNEWATCH_DB", show_default=False,
                 help="tunewatch database (SQLite); default $TUNEWATCH_HOME/tunewatch.db, the one `serve` uses."),
]  # fmt: skip


def _database(db: Path | None, *, create: bool) -> Path:
    """``--db`` or the shared default; reading never creates a database."""
    path = db if db is not None else default_db()
    if not path.exists():
        if not create:
            fail(f"{path}: no such database" + ("" if db is not None else " (no key created yet)"))
        if db is None:
            ensure_folder_of(path)
    return path


def _store(db: Path) -> ApiKeyStore:
    return ApiKeyStore(connect(db))


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="Who or what uses the key.")],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help=f"Scope, repeatable: {', '.join(SCOPES)}.")],
    db: DbOption = None,
) -> None:
    """Create a key and print it (once: only its hash is stored)."""
    with user_errors():
        path = _database(db, create=True)
        key, info = _store(path).create(name, set(scope), now_ms=int(time.time() * 1000))
        record_admin_action(path, "api_key.create", info.id, name=info.name, scopes=sorted(info.scopes))
    console.print(Text(f"created key {info.id} ({info.name}; scopes {', '.join(sorted(info.scopes))}) in {path}; "
                       "store it now:"), highlight=False, soft_wrap=True)  # fmt: skip
    out.print(key, highlight=False, markup=False, soft_wrap=True)


@app.command("list")
def list_keys(db: DbOption = None, output: OUTPUT = "table") -> None:
    """List keys (ids, names, scopes, state; never the secrets)."""
    from tunewatch.alert.model import format_time  # lazy: `tunewatch --help` stays fast

    fmt = output_format(output)
    with user_errors():
        keys = _store(_database(db, create=False)).list()
    rows = [{"id": k.id, "name": k.name, "scopes": sorted(k.scopes), "created": format_time(k.created_ms),
             "revoked": format_time(k.revoked_ms) if k.revoked_ms is not None else None} for k in keys]  # fmt: skip
    if fmt == "json":
        print_json(rows)
        return
    columns = [Column("id", 8), Column("name", 8), Column("scopes", 10), Column("created", 20, drop=1),
               Column("revoked", 20, drop=2)]  # fmt: skip
    cells = [[k.id, k.name, ", ".join(sorted(k.scopes)), format_time(k.created_ms),
              format_time(k.revoked_ms) if k.revoked_ms is not None else ""] for k in keys]  # fmt: skip
    out.print(fitted_table(out, columns, cells, title="API keys"))


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (the part after tw_, as shown by `keys list`).")],
    db: DbOption = None,
) -> None:
    """Revoke a key: it stops working at once, in this and every running process (their next request is refused)."""
    with user_errors():
        path = _database(db, create=False)
        info = _store(path).revoke(key_id, now_ms=int(time.time() * 1000))
        record_admin_action(path, "api_key.revoke", info.id, name=info.name)
    out.print(Text(f"revoked key {info.id} ({info.name})"), highlight=False)
