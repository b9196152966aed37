"""Server settings, from keyword arguments or ``TUNEWATCH_*`` environment variables (pydantic-settings).

Authentication is off by default: ``tunewatch serve`` and ``tunewatch run`` listen on loopback (127.0.0.1), where
only local users can connect. Set ``TUNEWATCH_AUTH=1`` (and create keys with ``tunewatch keys create``) before
listening on any other address. ``TUNEWATCH_DB`` names the SQLite database that keeps alerts, silences and API
keys across restarts; without it they live in memory only. :func:`tunewatch.server.runtime.build_runtime` builds
the whole process from these settings; :func:`process_settings` settles them, default paths included, for each
kind of process (``serve``, ``run``, the uvicorn factory, the distributed worker) in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tunewatch.home import default_db, ensure_folder_of, home, writable_file
from tunewatch.notify.config import parse_duration_ms

#: the database name that keeps nothing (a private in-memory database)
MEMORY = ":memory:"
#: the kinds of tunewatch process built from these settings (see :func:`process_settings`)
ProcessKind = Literal["serve", "run", "factory", "worker"]


class ServerSettings(BaseSettings):
    """Settings of the HTTP service; every field can be set with ``TUNEWATCH_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TUNEWATCH_", extra="ignore", frozen=True)

    auth: bool = Field(
        default=False, description="Require API keys (header `Authorization: Bearer <key>` or `X-API-Key`)."
    )
    metrics_auth: bool = Field(
        default=True,
        description="With auth on, /metrics needs a key with the `metrics` scope (it carries per-market revenue).",
    )
    db: Path | None = Field(
        default=None, description="SQLite database for alerts, silences and API keys (none: memory)."
    )
    rules: Path | None = Field(default=None, description="Rule file (YAML); none: the built-in pack.")
    notify_config: Path | None = Field(
        default=None, description="Notification config (Alertmanager-shaped YAML); none: no notifications."
    )
    notify_db: Path | None = Field(
        default=None, description="SQLite file for the notification log and outbox; none: the service's `db`."
    )
    served_url: str | None = Field(
        default=None,
        description="The address the service is served at (set by `serve` and `run`): the `externalURL` and links "
        "of notifications unless the notification settings name an external URL.",
    )
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0, description="Largest ingest body accepted, as sent.")
    max_decoded_bytes: int = Field(default=64 * 1024 * 1024, gt=0, description="Largest body after decompression.")
    max_events_per_request: int = Field(
        default=100_000, gt=0, description="Most NDJSON lines, array elements or msgpack items per request (413)."
    )
    max_quarantine_per_request: int = Field(
        default=1000, ge=0, description="Rejected events of one request kept one by one; the rest in one summary row."
    )
    max_rejected_per_minute: int = Field(
        default=10_000, gt=0, description="Rejected events per client address per minute before ingest answers 429."
    )
    max_api_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest request body of every endpoint but ingest (413)."
    )
    max_silence: str = Field(default="30d", description="Longest silence, and how far ahead one may start.")
    allowed_hosts: str = Field(
        default="localhost,127.0.0.1,[::1]",
        description="Host header values served (comma-separated, port ignored; '*' for any): defeats DNS rebinding.",
    )
    allowed_origins: str = Field(
        default="",
        description="Origins (scheme://host:port) besides the service's own allowed to send state-changing requests.",
    )
    forwarded_allow_ips: str = Field(
        default="",
        description="Proxy addresses/networks whose X-Forwarded-For / -Proto are trusted (comma-separated; none).",
    )
    auth_failures_per_address: str = Field(
        default="10/minute", description="Failed authentications per client address before 429 (limits notation)."
    )
    rate_limit_per_key: str = Field(default="20000/second", description="Per API key (limits notation; empty: none).")
    rate_limit_per_address: str = Field(default="20000/second", description="Per client address (empty: none).")
    rate_limit_storage: str | None = Field(
        default=None, description="limits storage URL, e.g. redis://host:6379 (memory)."
    )
    rate_limit_timeout_s: float = Field(
        default=0.25, gt=0, le=10, description="Timeout of one rate-limit storage call; then in-memory limits apply."
    )
    batch_max_events: int = Field(default=50_000, gt=0, description="Most events the ingest batcher runs in one step.")
    restored_alert_grace_windows: int = Field(
        default=15, ge=1, description="Windows after a restart before alerts the engine did not re-fire resolve."
    )
    wal_fsync: Literal["always", "write", "off"] = Field(
        default="always",
        description="Ingest WAL: fsync each step before answering (always), hand it to the OS only (write: survives "
        "kill -9, not power loss), or no WAL (off).",
    )
    wal_checkpoint_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0, description="WAL bytes after which the pipeline is snapshotted."
    )
    overlap_steps: bool = Field(
        default=False,
        description="Validate the next ingest step while the stream advances with the last one (processing, "
        "detection, alerts on their own thread). Off: the next step waits for that advance (the answers never do). "
        "On uses both cores when they are free; with other work on the cores its three busy Python threads gave a "
        "worse p99 at 8 connections (35-84 against 9-16 ms at load 4-6).",
    )
    advance_every_s: float = Field(
        default=0.25,
        ge=0,
        description="While ingest requests keep coming, counted steps advance the stream (processing, detection, "
        "alerts) together, at most this long after the first of them was answered: an advance costs milliseconds "
        "whatever its size. The steps are handed on as soon as no request waits, and before any query. 0: each step "
        "advances at once.",
    )
    gc_freeze: bool = Field(default=True, description="gc.freeze() at start-up (shorter garbage-collector pauses).")
    gil_switch_interval_s: float = Field(
        default=0.0005,
        gt=0,
        description="sys.setswitchinterval while serving: how long a thread waiting for the GIL waits before it asks "
        "for it (Python's default 0.005). The ingest worker takes the GIL back after each Polars call; with the event "
        "loop busy, the default let a pipeline step wait up to 5 ms each time.",
    )
    history_dir: Path | None = Field(
        default=None, description="Folder of the metric history (Parquet by day); default: beside `db`, else none."
    )
    history_retention_days: int = Field(default=30, ge=1, description="Days of metric history kept.")
    series_windows: int = Field(default=6 * 60, gt=0, description="Windows of detection results kept per series.")

    @property
    def max_silence_ms(self) -> int:
        """``max_silence`` in milliseconds."""
        return parse_duration_ms(self.max_silence)


def process_settings(kind: ProcessKind, **given: Any) -> ServerSettings:
    """The settings of one kind of tunewatch process: ``TUNEWATCH_*`` environment variables, overridden by ``given``
    (the command line; None means not given), with the state paths settled the same way for every entry point:

    * ``db`` — given or ``TUNEWATCH_DB``, ``:memory:`` keeping nothing; else ``serve`` owns the shared default
      ``$TUNEWATCH_HOME/tunewatch.db`` and the others (``run``, the uvicorn ``factory``, the distributed
      ``worker``) keep their state in memory;
    * ``notify_db`` (with a ``notify_config`` only) — given or ``TUNEWATCH_NOTIFY_DB``; else ``run`` keeps
      ``$TUNEWATCH_HOME/run.db``, ``serve`` the database (``$TUNEWATCH_HOME/notify.db`` when that is in memory),
      the others the database.

    A given path's folder is created, or :class:`~tunewatch.errors.InputError` names the file and the reason
    before any work; so is ``TUNEWATCH_HOME`` for a default path.

    >>> import tempfile
    >>> db = Path(tempfile.mkdtemp()) / "state" / "t.db"
    >>> s = process_settings("worker", db=db, served_url="http://127.0.0.1:8787")
    >>> s.db == db and db.parent.is_dir(), s.notify_db, s.served_url
    (True, None, 'http://127.0.0.1:8787')
    >>> process_settings("serve", db=Path(":memory:")).db is None
    True
    """
    base = ServerSettings()
    chosen = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(chosen) - set(ServerSettings.model_fields))
    if unknown:
        raise TypeError(f"process_settings: unknown setting(s) {', '.join(unknown)}")
    db = _database(kind, chosen.get("db", base.db))
    config = chosen.get("notify_config", base.notify_config)
    notify_db = _notify_db(kind, chosen.get("notify_db", base.notify_db), db) if config is not None else None
    return base.model_copy(update={**chosen, "db": db, "notify_config": config, "notify_db": notify_db})


def _database(kind: ProcessKind, db: Path | None) -> Path | None:
    """The process's database file, None for a private in-memory one."""
    if db is None:
        return ensure_folder_of(default_db()) if kind == "serve" else None
    if str(db) == MEMORY:
        return None
    return writable_file(Path(db), "database")


def _notify_db(kind: ProcessKind, notify_db: Path | None, db: Path | None) -> Path | None:
    """The notification log's and outbox's file; None: the process's database (in memory when that is)."""
    if notify_db is not None:
        return writable_file(Path(notify_db), "notification database")
    if kind == "run":
        return ensure_folder_of(home() / "run.db")
    if kind == "serve" and db is None:
        return ensure_folder_of(home() / "notify.db")
    return db
