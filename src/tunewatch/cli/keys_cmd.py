"""``tunewatch keys``: create, list and revoke API keys in the tunewatch database.

A key is printed once, at creation; the database keeps only its scrypt hash. The service checks keys when
started with ``TUNEWATCH_AUTH=1`` on the same database (``--db`` / ``TUNEWATCH_DB``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunewatch.alert.model import format_time
from tunewatch.errors import TunewatchError
from tunewatch.security.audit import record_admin_action
from tunewatch.security.keys import SCOPES, ApiKeyStore
from tunewatch.store.sqlite import connect

app = typer.Typer(name="keys", help="Create, list and revoke API keys (scopes: ingest, read, admin).",
                  no_args_is_help=True)  # fmt: skip

DbOption = Annotated[
    Path, typer.Option("--db", envvar="TUNEWATCH_DB", help="tunewatch database (SQLite).", show_default=True)
]
_DEFAULT_DB = Path("tunewatch.db")
out = Console()
err = Console(stderr=True)


def _store(db: Path) -> ApiKeyStore:
    try:
        return ApiKeyStore(connect(db))
    except TunewatchError as exc:
        raise _fail(exc) from exc


def _fail(exc: TunewatchError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    return typer.Exit(code=2)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="Who or what uses the key.")],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help=f"Scope, repeatable: {', '.join(SCOPES)}.")],
    db: DbOption = _DEFAULT_DB,
) -> None:
    """Create a key and print it (once: only its hash is stored)."""
    store = _store(db)
    try:
        key, info = store.create(name, set(scope), now_ms=int(time.time() * 1000))
    except TunewatchError as exc:
        raise _fail(exc) from exc
    record_admin_action(db, "api_key.create", info.id, name=info.name, scopes=sorted(info.scopes))
    err.print(f"created key {info.id} ({info.name}; scopes {', '.join(sorted(info.scopes))}); store it now:")
    out.print(key, highlight=False, markup=False, soft_wrap=True)


@app.command("list")
def list_keys(db: DbOption = _DEFAULT_DB) -> None:
    """List keys (ids, names, scopes, state; never the secrets)."""
    table = Table(title="API keys")
    for col in ("id", "name", "scopes", "created", "revoked"):
        table.add_column(col)
    for k in _store(db).list():
        revoked = format_time(k.revoked_ms) if k.revoked_ms is not None else ""
        table.add_row(k.id, k.name, ", ".join(sorted(k.scopes)), format_time(k.created_ms), revoked)
    out.print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (the part after tw_, as shown by `keys list`).")],
    db: DbOption = _DEFAULT_DB,
) -> None:
    """Revoke a key: it stops working at once in new processes, within a minute in running ones."""
    try:
        info = _store(db).revoke(key_id, now_ms=int(time.time() * 1000))
    except TunewatchError as exc:
        raise _fail(exc) from exc
    record_admin_action(db, "api_key.revoke", info.id, name=info.name)
    out.print(f"revoked key {info.id} ({info.name})", highlight=False)
