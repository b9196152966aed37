"""Worker processes on a real redis-server: a SIGKILLed worker's entries are processed by its replacement, and an
entry processed twice (claimed from a stalled worker) is accounted once."""

from __future__ import annotations

import signal

import pytest

from tests.cache.servers import RedisProcess, wait_until
from tests.distributed.helpers import group_totals, simulated_batches, start_worker, summary_of
from tunewatch.distributed import Publisher
from tunewatch.distributed.connection import RedisClient, connect
from tunewatch.distributed.keys import KeyLayout

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = ("--claim-idle", "200", "--block", "100", "--read-count", "10", "--checkpoint-every", "3")


def _check_exact_accounting(client: RedisClient, group: str, published: dict[int, int], entries: int) -> None:
    totals = group_totals(client, group, sorted(published))
    for p, t in totals.items():
        assert t["received"] == published[p], f"partition {p}: {t} vs {published[p]} published"
        assert t["received"] == t["accepted"] + t["rejected"] + t["duplicates"], t
        assert client.xpending(KeyLayout().stream(p), group)["pending"] == 0
    assert sum(t["entries"] for t in totals.values()) == entries  # each entry accounted exactly once


def test_sigkilled_worker_is_replaced_without_loss_or_double_counting(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    stats = Publisher(client, 2, batch_size=200).publish(simulated_batches())
    assert stats.per_partition[0] > 0 and stats.per_partition[1] > 0
    url = ("--redis-url", redis_server.url)

    # worker a dies (SIGKILL) after processing its 4th entry, before the XACK; b runs normally
    a = start_worker(url, "--partitions", "0", "--consumer", "a", "--hold-before-ack-after", "4", *FAST)
    b = start_worker(url, "--partitions", "1", "--consumer", "b", "--exit-when-idle", "1.5", *FAST)
    wait_until(lambda: client.get("tw:held:a") is not None, 60, "worker a to hold an entry before its XACK")
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=10)
    assert client.xpending(KeyLayout().stream(0), "tunewatch")["pending"] > 0  # a's in-flight entries

    a2 = start_worker(url, "--partitions", "0", "--consumer", "a2", "--exit-when-idle", "1.5", *FAST)
    s_a2, s_b = summary_of(a2), summary_of(b)
    assert s_a2["reclaimed"] >= 1  # took over a's pending entries
    assert s_a2["redelivered"] == 0 and s_b["reclaimed"] == 0
    _check_exact_accounting(client, "tunewatch", stats.per_partition, stats.entries)
    cp = client.get(KeyLayout().checkpoint(0, "tunewatch"))
    assert cp is not None  # the replacement checkpointed its position


def test_entry_processed_twice_after_a_stall_counts_once(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    stats = Publisher(client, 1, batch_size=400).publish(simulated_batches())
    url = ("--redis-url", redis_server.url)

    # a stalls before acking its 2nd entry; c claims a's pending entries and processes everything
    a = start_worker(url, "--partitions", "0", "--consumer", "a", "--hold-before-ack-after", "2",
                     "--exit-when-idle", "1", *FAST)  # fmt: skip
    wait_until(lambda: client.get("tw:held:a") is not None, 60, "worker a to hold an entry before its XACK")
    c = start_worker(url, "--partitions", "0", "--consumer", "c", "--exit-when-idle", "1.5", *FAST)
    s_c = summary_of(c)
    assert s_c["reclaimed"] >= 1
    a.send_signal(signal.SIGUSR1)  # a wakes up and commits entries c has already accounted
    s_a = summary_of(a)
    assert s_a["redelivered"] >= 1
    assert s_a["events"] + s_c["events"] == stats.events  # each event counted by exactly one of them
    _check_exact_accounting(client, "tunewatch", stats.per_partition, stats.entries)
