"""Cache benchmark (issue 6): hit ratio, ops/s and latency per backend, codec throughput, manager overhead.

Usage: python bench/cache.py [--keys 1000000] [--requests 1000000] [--ops 20000] [--batch 100] [--no-cluster]

Starts its own redis-server and a 6-process Redis Cluster on free loopback ports, then prints:
  1. hit ratio of a read-through workload (miss → compute + set) whose keys follow a bounded Zipf(1.1) over
     --keys keys, with a 100K-entry memory tier: memory only (LRU), the static optimum for that size (the
     probability mass of the 100K most popular keys — no eviction policy can beat it), and two-tier (memory in
     front of Redis, Redis holding the key space as a long-running service's would);
  2. ops/s and p50/p99 latency of get/set (single) and get_many/set_many (batched) for memory, Redis and Redis
     Cluster, beside plain redis-py GET/SET/MGET/pipeline on the same values (ratio = manager / plain);
  3. serialisation + compression MB/s and ratio on a metrics window (what ``ProcessingResult.cache_items()``
     produces) and on a detector checkpoint (NumPy arrays).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis
from redis.cluster import ClusterNode, RedisCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the local-server helpers live with the tests
from tests.cache.servers import RedisClusterProcesses, RedisProcess  # noqa: I001
from tunewatch.cache import MusicStreamingCacheManager
from tunewatch.cache.codec import Codec

MEMORY_ENTRIES = 100_000


def zipf_ranks(n_keys: int, n: int, s: float, seed: int) -> np.ndarray:
    """``n`` draws of ranks 0..n_keys-1 with P(rank k) ∝ (k+1)^-s."""
    cdf = np.cumsum(np.arange(1, n_keys + 1, dtype=np.float64) ** -s)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, np.random.default_rng(seed).random(n))


def static_optimum(n_keys: int, size: int, s: float) -> float:
    """Hit ratio of a cache that always holds the ``size`` most popular keys."""
    p = np.arange(1, n_keys + 1, dtype=np.float64) ** -s
    return float(p[:size].sum() / p.sum())


def read_through(cache: MusicStreamingCacheManager, keys: list[str]) -> None:
    """Replay ``keys`` through get_or_compute (the computation is a small dict)."""
    for key in keys:
        cache.get_or_compute(key, lambda k=key: {"id": k, "plays": 1})  # type: ignore[misc]


def hit_ratios(args: argparse.Namespace, redis_url: str) -> list[tuple[str, str]]:
    """Section 1."""
    ranks = zipf_ranks(args.keys, 2 * args.requests, 1.1, seed=7)
    keys = [f"k{r}" for r in ranks.tolist()]
    warm, measured = keys[: args.requests], keys[args.requests :]
    rows: list[tuple[str, str]] = []

    mem = MusicStreamingCacheManager(memory_max_entries=MEMORY_ENTRIES)
    read_through(mem, warm)
    mem.counters = type(mem.counters)()
    started = time.perf_counter()
    read_through(mem, measured)
    elapsed = time.perf_counter() - started
    s = mem.stats()
    rows.append(
        ("memory tier only (LRU, 100K entries)", f"{s['hit_ratio']:.2%}  ({len(measured) / elapsed:,.0f} req/s)")
    )
    rows.append(("static optimum for 100K entries", f"{static_optimum(args.keys, MEMORY_ENTRIES, 1.1):.2%}"))

    two = MusicStreamingCacheManager(redis_url=redis_url, two_tier=True, memory_max_entries=MEMORY_ENTRIES)
    try:
        prefill = {f"k{i}": {"id": f"k{i}", "plays": 1} for i in range(args.keys)}
        batch = list(prefill.items())
        for i in range(0, len(batch), 10_000):
            two.set_many(dict(batch[i : i + 10_000]))
        read_through(two, warm[: args.requests // 4])  # warm the memory tier
        two.counters = type(two.counters)()
        started = time.perf_counter()
        read_through(two, measured)
        elapsed = time.perf_counter() - started
        s = two.stats()
        total = s["hits"] + s["misses"]
        rows.append(
            (
                "two-tier (memory 100K + Redis holding the key space)",
                f"{s['hit_ratio']:.2%}  (memory {s['memory_hits'] / total:.2%}, redis {s['remote_hits'] / total:.2%};"
                f" {len(measured) / elapsed:,.0f} req/s)",
            )
        )
    finally:
        two.close()
    return rows


def _timed(n: int, op: Callable[[int], Any]) -> np.ndarray:
    lat = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        op(i)
        lat[i] = time.perf_counter() - t0
    return lat


def _row(name: str, lat: np.ndarray, per_call: int) -> tuple[str, float, float, float]:
    return (
        name,
        per_call * len(lat) / lat.sum(),
        float(np.percentile(lat, 50) * 1e6),
        float(np.percentile(lat, 99) * 1e6),
    )


def throughput(
    label: str, cache: MusicStreamingCacheManager, plain: Any, n: int, batch: int
) -> list[tuple[str, float, float, float, str]]:
    """Section 2 for one backend: manager vs. plain redis-py on the same values."""
    value = {"track_id": "t123", "title": "A Song", "artist_id": "a9", "duration_ms": 201_000, "genres": ["pop"]}
    keys = [f"bench:{i}" for i in range(n)]
    groups = [keys[i : i + batch] for i in range(0, n, batch)]
    results = [
        _row(f"{label} set", _timed(n, lambda i: cache.set(keys[i], value)), 1),
        _row(f"{label} get", _timed(n, lambda i: cache.get(keys[i])), 1),
        _row(
            f"{label} set_many({batch})",
            _timed(len(groups), lambda i: cache.set_many(dict.fromkeys(groups[i], value))),
            batch,
        ),
        _row(f"{label} get_many({batch})", _timed(len(groups), lambda i: cache.get_many(groups[i])), batch),
    ]
    if plain is None:
        return [(*r, "") for r in results]
    blob = cache.codec.encode(value)
    full = [cache.full_key(k) for k in keys]
    full_groups = [full[i : i + batch] for i in range(0, n, batch)]
    ttl = cache.config.ttl_default

    def pipe_set(i: int) -> None:
        p = plain.pipeline(transaction=False)
        for k in full_groups[i]:
            p.set(k, blob, ex=ttl)
        p.execute()

    mget = plain.mget_nonatomic if isinstance(plain, RedisCluster) else plain.mget
    baseline = [
        _row("", _timed(n, lambda i: plain.set(full[i], blob, ex=ttl)), 1),
        _row("", _timed(n, lambda i: plain.get(full[i])), 1),
        _row("", _timed(len(groups), pipe_set), batch),
        _row("", _timed(len(groups), lambda i: mget(full_groups[i])), batch),
    ]
    return [(*r, f"{b[1]:>11,.0f} {r[1] / b[1]:>6.2f}") for r, b in zip(results, baseline, strict=True)]


def realistic_values() -> dict[str, Any]:
    """A metrics-window entry like ``cache_items()`` produces, and a detector checkpoint."""
    from tunewatch.process import MusicDataProcessor
    from tunewatch.validate import EnterpriseDataValidator

    rng = np.random.default_rng(3)
    markets = ["BR", "US", "MX", "DE", "FR", "GB", "JP", "IN", "ES", "IT", "SE", "AR"]
    platforms = ["ios", "android", "web", "desktop", "tv"]
    events = [
        {
            "event_id": f"e{i}", "ts": 1_699_999_980_000 + int(i * 3), "event_type": "play",
            "user_id": f"u{rng.integers(5000)}", "market": markets[i % 12], "platform": platforms[i % 5],
            "tier": "premium" if i % 3 else "free", "cdn": f"edge-{i % 4}", "source": "playlist",
            "track_id": f"t{rng.integers(300)}", "artist_id": f"a{rng.integers(80)}",
            "ms_played": int(rng.integers(1_000, 200_000)), "track_duration_ms": 200_000,
            "reason_end": "trackdone" if i % 4 else "fwdbtn", "startup_ms": int(rng.integers(50, 3000)),
            "bitrate_kbps": 320,
        }
        for i in range(20_000)
    ]  # fmt: skip
    items = MusicDataProcessor().process(EnterpriseDataValidator().validate(events)).cache_items()
    biggest = max(items, key=lambda k: len(items[k]["window_start"]))
    checkpoint = {"series": 10_000, "level": rng.normal(size=10_000), "scale": rng.random(10_000),
                  "last_ts": np.full(10_000, 1_699_999_980_000, dtype=np.int64)}  # fmt: skip
    return {f"metrics window ({biggest.split(':')[1]}, {len(items[biggest]['window_start'])} rows)": items[biggest],
            "detector checkpoint (3 arrays × 10K)": checkpoint}  # fmt: skip


def codec_rows() -> list[tuple[str, str, str, str, str]]:
    """Section 3."""
    rows = []
    for name, value in realistic_values().items():
        for label, codec in (("msgpack+zstd", Codec(compress_threshold=1024)), ("msgpack", Codec(compression=False))):
            raw_size = (
                len(codec.encode(value)) if not codec.compression else len(Codec(compression=False).encode(value))
            )
            blob = codec.encode(value)
            reps = max(5, int(20_000_000 / raw_size))
            t0 = time.perf_counter()
            for _ in range(reps):
                codec.encode(value)
            enc = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(reps):
                codec.decode(blob)
            dec = time.perf_counter() - t0
            mb = raw_size * reps / 1e6
            rows.append((f"{name} {label}", f"{raw_size:,} → {len(blob):,} B", f"{raw_size / len(blob):.1f}×",
                         f"{mb / enc:,.0f}", f"{mb / dec:,.0f}"))  # fmt: skip
    return rows


def _table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]], widths: tuple[int, ...]) -> None:
    print(f"\n== {title}")
    print(
        "  ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, widths, strict=True)))
    )
    for row in rows:
        cells = []
        for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
            text = f"{cell:,.1f}" if isinstance(cell, float) else str(cell)
            cells.append(f"{text:<{w}}" if i == 0 else f"{text:>{w}}")
        print("  ".join(cells))


def main() -> None:
    """Run every section and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="key space of the Zipf workload")
    parser.add_argument("--requests", type=int, default=1_000_000, help="measured read-through requests")
    parser.add_argument("--ops", type=int, default=20_000, help="single operations per backend and kind")
    parser.add_argument("--batch", type=int, default=100, help="keys per get_many/set_many call")
    parser.add_argument("--no-cluster", action="store_true", help="skip the Redis Cluster (no 6-node start-up)")
    args = parser.parse_args()

    started = time.perf_counter()
    server = RedisProcess().start()
    cluster = None if args.no_cluster else RedisClusterProcesses().start()
    try:
        title = f"1. hit ratio: read-through, Zipf(1.1) over {args.keys:,} keys, {args.requests:,} measured requests"
        _table(title, ("configuration", "hit ratio"), hit_ratios(args, server.url), (52, 60))
        server.client().flushall()

        rows = throughput("memory", MusicStreamingCacheManager(), None, args.ops, args.batch)
        plain_redis = redis.Redis(port=server.port)
        rows += throughput("redis", MusicStreamingCacheManager(redis_url=server.url), plain_redis, args.ops, args.batch)
        if cluster is not None:
            cache = MusicStreamingCacheManager(redis_cluster=True, cluster_nodes=cluster.addresses)
            plain_cluster = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", cluster.nodes[0].port)])
            rows += throughput("cluster", cache, plain_cluster, args.ops, args.batch)
        header = ("operation", "keys/s", "p50 µs", "p99 µs", "plain redis-py keys/s  ratio")
        _table("2. throughput and latency (value ≈ 90 B; batched rows count keys/s, latency per call)",
               header, rows, (24, 12, 9, 9, 30))  # fmt: skip

        _table("3. serialisation + compression (MB/s of msgpack bytes)",
               ("value", "size", "ratio", "encode MB/s", "decode MB/s"), codec_rows(), (58, 22, 7, 12, 12))  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
        if cluster is not None:
            cluster.stop()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
