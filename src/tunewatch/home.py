"""Where tunewatch keeps its files when no path is given: the one place defaults live.

* ``TUNEWATCH_HOME`` — the folder; default ``$XDG_DATA_HOME/tunewatch``, else ``~/.local/share/tunewatch``.
  Never the current directory.
* ``TUNEWATCH_DB`` — the database that ``tunewatch serve`` keeps alerts, silences, API keys, the quarantine and
  the notification log in, and that ``tunewatch silences``, ``keys``, ``audit`` and ``quarantine`` use when no
  ``--db`` is given; default ``$TUNEWATCH_HOME/tunewatch.db``.
* ``TUNEWATCH_URL`` — a running service (e.g. ``http://127.0.0.1:8787``): when set (or ``--url`` is given),
  ``tunewatch silences`` talks to its API instead of opening a database, as ``amtool`` talks to Alertmanager.

>>> import os
>>> env = {"TUNEWATCH_HOME": "/srv/tw"}
>>> str(home(env)), str(default_db(env))
('/srv/tw', '/srv/tw/tunewatch.db')
>>> str(home({"XDG_DATA_HOME": "/x"})), str(default_db({"TUNEWATCH_DB": "/db/t.db"}))
('/x/tunewatch', '/db/t.db')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tunewatch.errors import InputError

DB_NAME = "tunewatch.db"


def home(env: Mapping[str, str] | None = None) -> Path:
    """The tunewatch folder (``TUNEWATCH_HOME``, else ``$XDG_DATA_HOME/tunewatch``, else ``~/.local/share/…``)."""
    env = os.environ if env is None else env
    if env.get("TUNEWATCH_HOME"):
        return Path(env["TUNEWATCH_HOME"]).expanduser()
    data = env.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(data).expanduser() / "tunewatch"


def default_db(env: Mapping[str, str] | None = None) -> Path:
    """The shared database: ``TUNEWATCH_DB``, else ``TUNEWATCH_HOME/tunewatch.db``."""
    env = os.environ if env is None else env
    if env.get("TUNEWATCH_DB"):
        return Path(env["TUNEWATCH_DB"]).expanduser()
    return home(env) / DB_NAME


def writable_file(path: Path, what: str) -> Path:
    """Check, before any work, that the file ``path`` can be written: its folder is created when missing.

    Raises :class:`InputError` naming the file, its role (``what``, e.g. ``"database"``) and the reason.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> writable_file(folder / "new" / "t.db", "database") == folder / "new" / "t.db"
    True
    >>> writable_file(folder, "database")
    Traceback (most recent call last):
    ...
    tunewatch.errors.InputError: ...: is a directory; give a file name for the database
    """
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file name for the {what}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{path}: cannot write the {what}: {folder} is not a folder") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot create its folder {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise InputError(f"{path}: cannot write the {what}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{path}: cannot write the {what} (permission denied)")
    return path


def ensure_folder_of(path: Path) -> Path:
    """Create the folder of a default file (``TUNEWATCH_HOME``) if missing; :class:`InputError` if impossible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the tunewatch folder ({exc.strerror or exc}); "
                         "set TUNEWATCH_HOME or TUNEWATCH_DB") from None  # fmt: skip
    return path
