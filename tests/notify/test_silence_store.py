"""The one silence store: shared by connections and processes, re-read only when the silences changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunewatch.notify.matchers import parse_matchers
from tunewatch.notify.silence import SilenceError, SilenceStore

H = 3_600_000


def test_a_silence_written_by_another_connection_is_seen_without_a_reload_per_read(tmp_path: Path) -> None:
    db = tmp_path / "tw.db"
    service, cli = SilenceStore.open(db), SilenceStore.open(db)
    try:
        assert service.muting({"market": "BR"}, 0) == []
        reloads = service.reloads
        for _ in range(50):  # nothing changed: no re-read
            service.muting({"market": "BR"}, 0)
        assert service.reloads == reloads
        s = cli.add(parse_matchers(["market=BR"]), starts_at=0, ends_at=H, created_by="ops", comment="x", now_ms=0)
        assert service.muting({"market": "BR"}, 1) == [s.id]  # seen at the next read
        assert service.reloads == reloads + 1
        cli.expire(s.id[:6], 10)
        assert service.muting({"market": "BR"}, 11) == []
        assert service.find(11, "expired")[0].ends_at == 10
    finally:
        service.close()
        cli.close()


def test_changes_are_audited_with_their_actor_and_bounded_by_max_silence() -> None:
    seen: list[tuple[str, str, str, dict[str, Any]]] = []

    def audit(actor: str, action: str, target: str, **details: Any) -> None:
        seen.append((actor, action, target, details))

    store = SilenceStore.open(":memory:", max_ms=24 * H, audit=audit)
    with pytest.raises(SilenceError, match=r"at most 1d \(max_silence\)"):
        store.add(parse_matchers(["a=b"]), starts_at=0, ends_at=25 * H, created_by="ops", comment="x", now_ms=0)
    s = store.add(parse_matchers(["a=b"]), starts_at=0, ends_at=H, created_by="ops", comment="x", now_ms=0,
                  actor="api-key:k1:ci", via="http")  # fmt: skip
    store.expire(s.id, 5, actor="alice", via="cli")
    assert [(a, act, t, d.get("via")) for a, act, t, d in seen] == [
        ("api-key:k1:ci", "silence.create", s.id, "http"), ("alice", "silence.expire", s.id, "cli"),
    ]  # fmt: skip


def test_update_in_place_or_by_replacement_as_alertmanager_does() -> None:
    store = SilenceStore.open(":memory:")
    m = parse_matchers(["market=BR"])
    s = store.add(m, starts_at=0, ends_at=H, created_by="ops", comment="x", now_ms=0)
    longer = store.update(s.id, m, starts_at=0, ends_at=2 * H, created_by="ops", comment="longer", now_ms=10)
    assert (longer.id, longer.ends_at, longer.comment) == (s.id, 2 * H, "longer")
    other = store.update(s.id, parse_matchers(["market=SE"]), starts_at=0, ends_at=2 * H, created_by="ops",
                         comment="moved", now_ms=20)  # fmt: skip
    assert other.id != s.id
    assert {x.id: x.state(21) for x in store.find(21)} == {s.id: "expired", other.id: "active"}
    with pytest.raises(SilenceError, match="already expired"):
        store.update(s.id, m, starts_at=0, ends_at=3 * H, created_by="ops", comment="again", now_ms=30)
