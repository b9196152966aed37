"""The compiled aggregation equals the reference Polars group-bys, metric for metric, on every window.

The reference path (``engine="reference"``) is one plain group-by per dimension set over the raw events with
``n_unique`` listeners and positional quantiles; the compiled path encodes the events once and runs one linear
kernel pass per set. Every column must be identical, with two float exceptions:

* the sums of non-integer weights (``stream_revenue_micros`` and ``est_revenue_micros``, which adds it) may
  differ by their summation order (relative 1e-12; on the simulated streams they are bit-identical);
* a startup quantile is ``2 γ^b / (γ + 1)`` of its bucket ``b``, and Polars evaluates that power with libm for a
  single value but with a vectorised kernel for a column, 1 ulp apart: the reference, evaluating it inside
  the group-by, takes either path depending on the group layout, so on tiny random frames the two engines may
  differ by 1 ulp there (relative 1e-15). On the simulated streams they are bit-identical.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.process import MusicDataProcessor
from tunewatch.process.dimensions import DIMENSION_SETS
from tunewatch.process.kernel import _DENSE_LIMIT, aggregate_groups, dense_codes, group_ids, set_group_ids
from tunewatch.schema import DIMENSION_FIELDS
from tunewatch.simulate import SimulationConfig, Simulator
from tunewatch.validate import EnterpriseDataValidator

KEYS = ["window_start", "dimset", *DIMENSION_FIELDS]
SUMMATION_ORDER_COLUMNS = ("stream_revenue_micros", "est_revenue_micros")
QUANTILE_COLUMNS = ("startup_ms_p50", "startup_ms_p95", "startup_ms_p99")
BASE_MS = 1_767_571_200_000


def _run(
    engine: Literal["compiled", "reference"], batches: list[Any], *, final: bool = False, **kwargs: Any
) -> tuple[pl.DataFrame, list[int]]:
    processor = MusicDataProcessor(engine=engine, **kwargs)
    frames: list[pl.DataFrame] = []
    windows: list[int] = []
    for batch in batches:
        result = processor.process(batch, final=final)
        frames.append(result.metrics)
        windows += result.windows
    last = processor.flush()
    frames.append(last.metrics)
    windows += last.windows
    return pl.concat(frames).sort(KEYS, nulls_last=True), windows


def assert_same_metrics(reference: pl.DataFrame, compiled: pl.DataFrame, *, bitwise: bool = False) -> None:
    """Identical rows and values; unless ``bitwise``, the float columns named above within their tolerance."""
    assert reference.columns == compiled.columns
    assert reference.height == compiled.height
    close: dict[str, float] = {}
    if not bitwise:
        close = {**dict.fromkeys(SUMMATION_ORDER_COLUMNS, 1e-12), **dict.fromkeys(QUANTILE_COLUMNS, 1e-15)}
    exact = [c for c in reference.columns if c not in close]
    assert reference.select(exact).equals(compiled.select(exact)), _first_difference(reference, compiled, exact)
    for column, rtol in close.items():
        ref = reference.get_column(column).to_numpy()
        new = compiled.get_column(column).to_numpy()
        assert np.array_equal(np.isnan(ref), np.isnan(new)), column
        np.testing.assert_allclose(new, ref, rtol=rtol, atol=0.0, equal_nan=True, err_msg=column)


def _first_difference(a: pl.DataFrame, b: pl.DataFrame, columns: list[str]) -> str:
    for c in columns:
        if not a.get_column(c).equals(b.get_column(c)):
            diff = (
                a.select(KEYS)
                .with_columns(ref=a.get_column(c), new=b.get_column(c))
                .filter(pl.col("ref").ne_missing(pl.col("new")))
            )
            return f"column {c!r} differs:\n{diff.head(5)}"
    return "no difference"


@pytest.fixture(scope="module")
def simulated() -> list[Any]:
    """An hour of simulated traffic with incidents (bot farm, outages…), dirt and late data, in 8-minute batches."""
    sim = Simulator(SimulationConfig(minutes=60, events_per_minute=1500, seed=11, warmup_minutes=5))
    validator = EnterpriseDataValidator()
    return [validator.validate(block) for block in sim.blocks(minutes_per_block=8)]


def test_simulated_stream_every_window_and_series_identical(simulated: list[Any]) -> None:
    reference, ref_windows = _run("reference", simulated)
    compiled, new_windows = _run("compiled", simulated)
    assert ref_windows == new_windows and len(set(new_windows)) >= 60
    assert set(compiled.get_column("dimset").unique()) == {d.name for d in DIMENSION_SETS}
    assert compiled.filter(pl.col("dimset") == "track_id").height > 60  # heavy hitters plus the folded rest
    assert_same_metrics(reference, compiled, bitwise=True)


def test_one_final_batch_over_many_windows_identical(simulated: list[Any]) -> None:
    frame = pl.concat([r.valid for r in simulated[:3]])
    reference, _ = _run("reference", [frame], final=True, top_k=5)
    compiled, _ = _run("compiled", [frame], final=True, top_k=5)
    assert compiled.get_column("window_start").n_unique() >= 20
    assert_same_metrics(reference, compiled)


def test_sketch_states_unchanged_with_compiled_engine(simulated: list[Any]) -> None:
    ref = MusicDataProcessor(engine="reference", keep_sketches=True).process(simulated[0])
    new = MusicDataProcessor(engine="compiled", keep_sketches=True).process(simulated[0])
    for name in ("hll", "startup_hist"):
        keys = [c for c in ref.sketches[name].columns if c not in ("hll_rank", "count")]
        a = ref.sketches[name].sort(keys, nulls_last=True)
        b = new.sketches[name].sort(keys, nulls_last=True)
        assert a.equals(b), name


def test_unknown_engine_is_rejected_by_name() -> None:
    unknown: Any = "numpy"  # not one of the Literal choices: the check is for untyped callers
    with pytest.raises(ValueError, match="engine: unknown aggregation engine 'numpy'"):
        MusicDataProcessor(engine=unknown)


# ------------------------------------------------------------------------------------ random event frames

_MARKETS = ["BR", "US", "DE"]
_PLATFORMS = ["ios", "android", "web"]
_TIERS = ["free", "premium"]
_SOURCES = ["playlist", "recommendation", None]
_CDNS = ["edge-1", "edge-2", None]
_TRACKS = ["t1", "t2", "t3", "t4", None]


def _events(seed: int, n: int, users: int, minutes: int) -> pl.DataFrame:
    """Accepted-event columns with nulls in optional dimensions, repeat listeners and missing startup times."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["play", "play", "play", "error", "ad"], n)
    is_play = kind == "play"

    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in rng.integers(0, len(values), n)]

    def optional(values: np.ndarray, share: float) -> list[Any]:
        return [None if m else v for v, m in zip(values.tolist(), rng.random(n) < share, strict=True)]

    tracks = pick(_TRACKS)
    return pl.DataFrame(
        {
            "ts": BASE_MS + rng.integers(0, minutes * 60_000, n),
            "event_type": kind,
            "user_id": [f"u{i}" for i in rng.integers(0, users, n)],
            "market": pick(_MARKETS),
            "platform": pick(_PLATFORMS),
            "tier": pick(_TIERS),
            "source": pick(_SOURCES),
            "cdn": pick(_CDNS),
            "track_id": tracks,
            "artist_id": [None if t is None else f"a{t}" for t in tracks],
            "ms_played": optional(np.where(is_play, rng.integers(0, 200_000, n), 0), 0.0),
            "skipped": rng.random(n) < 0.3,
            "reason_end": pick(["trackdone", "fwdbtn", "endplay"]),
            "rebuffer_ms": optional(rng.integers(0, 3_000, n), 0.4),
            "bitrate_kbps": optional(rng.choice([64, 160, 320], n), 0.2),
            "ad_revenue_micros": optional(np.where(kind == "ad", rng.integers(0, 5_000, n), 0), 0.5),
            "startup_ms": optional(rng.integers(0, 120_000, n), 0.3),
        },
        schema_overrides={"ms_played": pl.Int64, "rebuffer_ms": pl.Int64, "bitrate_kbps": pl.Int64},
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    users=st.integers(1, 60),
    minutes=st.integers(1, 4),
    top_k=st.integers(1, 3),
)
def test_random_frames_identical(seed: int, n: int, users: int, minutes: int, top_k: int) -> None:
    frame = _events(seed, n, users, minutes)
    reference, _ = _run("reference", [frame], final=True, top_k=top_k)
    compiled, _ = _run("compiled", [frame], final=True, top_k=top_k)
    assert_same_metrics(reference, compiled)


# ------------------------------------------------------------------------------------------- the kernels


def test_group_ids_number_groups_by_first_appearance_and_drop_nulls() -> None:
    window = np.array([0, 0, 1, 0, 1, 0])
    market = np.array([2, 0, 2, 2, -1, 0])
    gid, first = group_ids([window, market], [2, 3])
    assert gid.tolist() == [0, 1, 2, 0, -1, 1]
    assert first.tolist() == [0, 1, 2]


def test_group_ids_compact_keys_wider_than_the_lookup_table() -> None:
    big = np.array([5, _DENSE_LIMIT * 4, 5, 7, -1])
    gid, first = group_ids([np.zeros(5, dtype=np.int64), big, big], [1, _DENSE_LIMIT * 4 + 1, _DENSE_LIMIT * 4 + 1])
    assert gid.tolist() == [0, 1, 0, 2, -1]
    assert first.tolist() == [0, 1, 3]
    codes, card = dense_codes(np.array([9, -1, 3, 9]))
    assert codes.tolist() == [0, -1, 1, 0] and card == 2


@pytest.mark.parametrize("wide", [False, True])
def test_set_group_ids_match_the_general_path(wide: bool) -> None:
    rng = np.random.default_rng(5)
    cards = np.array([7, _DENSE_LIMIT, 3] if wide else [7, 5, 3], dtype=np.int64)
    codes = np.stack([rng.integers(-1, int(c), 500) for c in cards], axis=1)
    window = rng.integers(0, 4, 500)
    for fields in ([], [0], [2, 0], [0, 1, 2]):
        fast = set_group_ids(window, 4, codes, cards, fields)
        general = group_ids([window, *(codes[:, f] for f in fields)], [4, *(int(cards[f]) for f in fields)])
        assert np.array_equal(fast[0], general[0]) and np.array_equal(fast[1], general[1]), fields


def test_aggregate_groups_sums_distinct_listeners_and_lower_quantiles() -> None:
    gid = np.array([0, 0, 1, 0, 1, -1, 0])
    users = np.array([7, 7, 7, 3, 8, 9, 3])  # group 0 hears users 7 and 3, group 1 users 7 and 8
    bucket = np.array([5, 1, -1, 9, 4, 2, 1])  # group 0 buckets 5, 1, 9, 1; group 1 bucket 4
    values = np.arange(14, dtype=np.float64).reshape(7, 2)
    bucket_order = np.argsort(bucket, kind="stable")[int(np.count_nonzero(bucket < 0)) :]
    user_order = np.argsort(users, kind="stable")
    change = np.r_[0, np.diff(users[user_order]) != 0].astype(np.int64)
    qs = np.array([0.0, 0.5, 0.99, 1.0])
    sums, distinct, quantiles = aggregate_groups(
        gid, 2, values, bucket, bucket_order, user_order, np.cumsum(change), qs
    )
    rows = [i for i in range(7) if gid[i] == 0]
    assert sums[0].tolist() == values[rows].sum(axis=0).tolist()
    assert sums[1].tolist() == values[[2, 4]].sum(axis=0).tolist()
    assert distinct.tolist() == [2.0, 2.0]
    ordered = [1, 1, 5, 9]
    assert quantiles[0].tolist() == [ordered[math.floor(3 * q)] for q in qs]
    assert quantiles[1].tolist() == [4, 4, 4, 4]
