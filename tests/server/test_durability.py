"""A 200 means durable (issue 14): a real ``tunewatch serve`` killed with SIGKILL at seeded random points while
three senders stream batches, restarted on the same database each time, unconfirmed batches re-sent. Compared
with an uninterrupted run of the same batches: every event accepted exactly once, the same metric history
window by window (none lost, none counted twice), and batches re-sent after they were confirmed are reported
as duplicates."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.live import JSON, Served, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENDERS = 3
BATCHES = 72
BATCH_EVENTS = 200
SECONDS_PER_BATCH = 10  # 72 batches: 12 minutes of event time
SEED = 1405
KILLS = 3
SLACK = 4


def _batches(play: Callable[..., dict[str, Any]]) -> tuple[list[bytes], bytes, int]:
    """The batches (JSON bodies), a last batch far enough ahead to close every window, and its window start."""
    import json

    start = (int(time.time() * 1000) // 60_000 - 16) * 60_000
    rng = random.Random(SEED)
    bodies = []
    for b in range(BATCHES):
        base = start + b * SECONDS_PER_BATCH * 1000
        events = [
            play(b * BATCH_EVENTS + i, base + rng.randrange(SECONDS_PER_BATCH * 1000), event_id=f"d{b}-{i}",
                 market=rng.choice(["BR", "US", "DE"]), ms_played=rng.choice([10_000, 60_000]))
            for i in range(BATCH_EVENTS)
        ]  # fmt: skip
        bodies.append(json.dumps(events).encode())
    flush_at = start + (BATCHES * SECONDS_PER_BATCH // 60 + 3) * 60_000
    flush = json.dumps([play(10**7 + i, flush_at + i, event_id=f"flush-{i}") for i in range(10)]).encode()
    return bodies, flush, flush_at


class Stream:
    """Three senders, each sending its share of the batches in order, none more than ``SLACK`` batches ahead of
    the others (so that event time stays within the allowed lateness); every 200 answer is kept."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.pending = [deque(range(s, len(bodies), SENDERS)) for s in range(SENDERS)]
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.confirmed = 0
        self.lock = threading.Condition()
        self.errors: list[str] = []
        self.stopped = False

    def _may_send(self, b: int) -> bool:
        return self.stopped or all(not q or q[0] >= b - SLACK for q in self.pending)

    def run(self, served: Served, kill_after: int | None) -> None:
        """Send until done, or until the server is killed (after ``kill_after`` more confirmed batches)."""
        target = None if kill_after is None else self.confirmed + kill_after
        self.stopped = False

        def sender(s: int) -> None:
            with httpx.Client(base_url=served.base, timeout=180) as client:
                while self.pending[s]:
                    b = self.pending[s][0]
                    with self.lock:
                        self.lock.wait_for(lambda b=b: self._may_send(b))
                        if self.stopped:
                            return
                    try:
                        r = client.post("/api/v1/events", content=self.bodies[b], headers=JSON)
                    except httpx.TransportError as exc:
                        with self.lock:
                            self.errors.append(repr(exc))
                            self.stopped = True
                            self.lock.notify_all()
                        return  # killed: this batch stays pending (unconfirmed)
                    assert r.status_code == 200, r.text
                    with self.lock:
                        self.pending[s].popleft()
                        self.answers.append((b, r.json()))
                        self.confirmed += 1
                        self.lock.notify_all()
                        if target is not None and self.confirmed == target:
                            served.proc.send_signal(signal.SIGKILL)

        threads = [threading.Thread(target=sender, args=(s,)) for s in range(SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        if target is not None:
            served.proc.wait(30)


def _history(served: Served, before_ms: int) -> list[tuple[Any, ...]]:
    points: list[tuple[Any, ...]] = []
    for dimset, dims in (("global", {}), ("market", {"market": "BR"}), ("market", {"market": "US"})):
        for metric in ("plays", "streams"):
            r = httpx.get(served.base + f"/api/v1/history/{metric}", params={"dimset": dimset, **dims})
            assert r.status_code == 200, r.text
            for p in r.json()["points"]:
                if p["window_start"] < before_ms:
                    points.append((metric, dimset, str(dims), p["window_start"], p["value"]))
    return sorted(points)


def _send_all(served: Served, bodies: list[bytes]) -> list[dict[str, Any]]:
    with httpx.Client(base_url=served.base, timeout=180) as client:
        return [client.post("/api/v1/events", content=b, headers=JSON).json() for b in bodies]


def test_kill_9_at_random_points_loses_and_doubles_nothing(tmp_path: Path, play: Callable[..., dict[str, Any]]) -> None:
    bodies, flush, flush_at = _batches(play)

    (tmp_path / "reference").mkdir()
    with serve(tmp_path / "reference") as ref:
        reference = Stream(bodies)
        reference.run(ref, None)
        assert reference.errors == []
        _send_all(ref, [flush])
        expected = _history(ref, flush_at)
        assert sum(a["accepted"] for _, a in reference.answers) == BATCHES * BATCH_EVENTS
    assert len(expected) > 40 and {p[3] for p in expected}  # several closed windows, several series

    rng = random.Random(SEED)
    kill_points = [rng.randrange(5, BATCHES // (KILLS + 1)) for _ in range(KILLS)]
    db = tmp_path / "killed" / "tw.db"
    db.parent.mkdir()
    stream = Stream(bodies)
    for kill_after in kill_points:
        with serve(db.parent, db=db) as served:
            stream.run(served, kill_after)
            assert served.proc.returncode == -signal.SIGKILL
    with serve(db.parent, db=db) as served:
        stream.run(served, None)  # every unconfirmed batch re-sent, then the rest
        assert all(not p for p in stream.pending)
        # a batch is one WAL record: the first answer for it accepts all its events, or (it was logged and run
        # just before a kill, its answer lost) reports them all as duplicates; never a part, never twice
        first: dict[int, tuple[int, int]] = {}
        for b, a in stream.answers:
            first.setdefault(b, (a["accepted"], a["duplicates"]))
        odd = [a for b, a in stream.answers if (a["accepted"], a["duplicates"]) == (0, 0)]
        assert not odd, str(odd[0])[:600]
        assert len(first) == BATCHES and set(first.values()) <= {(BATCH_EVENTS, 0), (0, BATCH_EVENTS)}
        assert list(first.values()).count((0, BATCH_EVENTS)) <= SENDERS * KILLS
        assert all(a["rejected"] == 0 for _, a in stream.answers)
        # batches confirmed before a kill, sent again: all duplicates (the dedup horizon survived)
        again = _send_all(served, [bodies[0], bodies[kill_points[0]], bodies[BATCHES // 2]])
        assert [(a["accepted"], a["duplicates"]) for a in again] == [(0, BATCH_EVENTS)] * 3
        _send_all(served, [flush])
        assert _history(served, flush_at) == expected  # no window lost, none written twice, no event twice
