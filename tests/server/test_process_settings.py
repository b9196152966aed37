"""One place works out the state paths of every kind of process (serve, run, the uvicorn factory, the worker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunewatch.errors import InputError
from tunewatch.server.alerting import database
from tunewatch.server.settings import ProcessKind, process_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("TUNEWATCH_HOME", str(folder))
    for name in ("DB", "NOTIFY_DB", "NOTIFY_CONFIG"):
        monkeypatch.delenv(f"TUNEWATCH_{name}", raising=False)
    return folder


def test_default_paths_of_each_kind_of_process(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "notify.yaml"
    serve = process_settings("serve", notify_config=config)
    assert serve.db == home / "tunewatch.db" and serve.notify_db == serve.db and home.is_dir()
    memory = process_settings("serve", db=Path(":memory:"), notify_config=config)
    assert database(memory) == ":memory:" and memory.notify_db == home / "notify.db"
    run = process_settings("run", notify_config=config)
    assert run.db is None and run.notify_db == home / "run.db"
    for kind in ("factory", "worker"):
        other = process_settings(kind, notify_config=config)
        assert other.db is None and other.notify_db is None  # state in memory, notifications in the same db
    assert process_settings("serve").notify_db is None  # no notifications, no notification database


def test_given_paths_and_the_environment_win_over_the_defaults(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEWATCH_DB", str(tmp_path / "env" / "tw.db"))
    kinds: tuple[ProcessKind, ...] = ("serve", "run", "factory", "worker")
    for kind in kinds:
        assert process_settings(kind).db == tmp_path / "env" / "tw.db"
    given = process_settings(
        "serve", db=tmp_path / "given" / "a.db", notify_db=tmp_path / "n" / "n.db",
        notify_config=tmp_path / "notify.yaml", allowed_hosts="*", forwarded_allow_ips=None,
    )  # fmt: skip
    assert given.db == tmp_path / "given" / "a.db" and (tmp_path / "given").is_dir()
    assert given.notify_db == tmp_path / "n" / "n.db" and given.allowed_hosts == "*"
    assert given.forwarded_allow_ips == ""  # None: not given, the default stays
    assert not home.exists()  # nothing defaulted, nothing created in TUNEWATCH_HOME


def test_an_unusable_path_is_refused_before_any_work(home: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"file/tw\.db: cannot write the database: .* is not a folder"):
        process_settings("worker", db=blocker / "tw.db")
    with pytest.raises(InputError, match=r"is a directory; give a file name for the notification database"):
        process_settings("run", notify_db=tmp_path, notify_config=tmp_path / "n.yaml")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match=r"cannot write the database \(permission denied\)"):
            process_settings("serve", db=locked / "tw.db")
    with pytest.raises(TypeError, match="unknown setting"):
        process_settings("serve", dbb=tmp_path)
