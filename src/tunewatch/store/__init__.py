"""Store: embedded control-state storage (SQLite in WAL mode with per-component schema migrations).

Owns opening databases and migrating their schemas; each component (notifications, the alert log, the
quarantine, API keys, ...) keeps its own tables and migration list. The SQLite helpers import nothing else from
tunewatch but :mod:`tunewatch.errors`.
"""

from tunewatch.store.sqlite import StoreError, connect, migrate, open_store, transaction

__all__ = ["StoreError", "connect", "migrate", "open_store", "transaction"]
