"""MusicDataProcessor: accepted events → closed 1-minute windows of metrics for every dimension set.

Events are buffered (only the derived columns aggregation needs) while their window may still receive
on-time events; a window closes once the watermark passes its end plus the allowed lateness, and all windows
that close together are aggregated at once: by default with the compiled kernels of
:mod:`tunewatch.process.compiled` (the events encoded once, then one linear pass per dimension set), or with
``engine="reference"`` by one Polars group-by per dimension set (:mod:`tunewatch.process.reference`), the
straightforward definition the compiled path is tested against. Both give the same metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import polars as pl

from tunewatch.process.catalogue import METRICS
from tunewatch.process.dimensions import DIMENSION_SETS, OTHER, TOP_K_FIELDS, DimensionSet
from tunewatch.process.heavy_hitters import HeavyHitters
from tunewatch.process.quality import QualityLedger
from tunewatch.process.reference import aggregate_reference, prepare, sketch_states
from tunewatch.process.revenue import RateTable
from tunewatch.process.sketches import bucket_column, hll_columns
from tunewatch.process.weights import SUMS
from tunewatch.schema import DIMENSION_FIELDS, LOW_QUALITY_KBPS, STREAM_MIN_MS, VALID_SCHEMA
from tunewatch.validate.dedup import check_state
from tunewatch.validate.validator import ValidationResult
from tunewatch.validate.watermark import DEFAULT_ALLOWED_LATENESS_MS

WINDOW_MS: Final = 60_000
_MAX_BUFFER_PIECES: Final = 32
KEY_COLUMNS: Final = ("window_start", "dimset", *DIMENSION_FIELDS)
_SUMS: Final = SUMS
#: layout version of :meth:`MusicDataProcessor.state_dict`
STATE_VERSION: Final = 1
#: buffered columns derived from ``user_id`` (pseudonymous personal data): exported apart, under ``personal``
PERSONAL_COLUMNS: Final = ("user_hash", "hll_reg", "hll_rank")
#: Aggregation engines: the compiled one-pass kernels (default) or the reference Polars group-bys.
ENGINES: Final = ("compiled", "reference")


@dataclass(slots=True)
class ProcessingResult:
    """Metrics of the windows closed by one :meth:`MusicDataProcessor.process` call.

    ``metrics`` is wide: one row per (window_start, dimset, dimension values) with the key columns
    ``KEY_COLUMNS`` (dimensions outside the set are null) and one column per metric and weight.
    Window values are exact (distinct listeners) or sketch-exact (startup quantiles: the log-bucket
    histogram's answer, within 1 % relative error). With ``keep_sketches`` the processor also emits the
    mergeable sketch states — HyperLogLog registers and startup-time histograms per window and series — in
    ``sketches``, for rollups over time and merges across workers (see :mod:`tunewatch.process.sketches`).

    >>> from tunewatch.validate import EnterpriseDataValidator
    >>> ev = [{"event_id": f"e{i}", "ts": 1_699_999_980_000 + i, "event_type": "play", "user_id": "u1",
    ...        "market": "SE", "platform": "web", "tier": "free", "track_id": "t", "artist_id": "a",
    ...        "ms_played": 40_000, "track_duration_ms": 200_000, "reason_end": "trackdone"} for i in range(4)]
    >>> result = MusicDataProcessor().process(EnterpriseDataValidator().validate(ev))
    >>> result.events, result.windows, result.series("streams").rows()
    (4, [1699999980000], [(1699999980000, 4.0)])
    """

    metrics: pl.DataFrame
    windows: list[int]
    events: int
    sketches: dict[str, pl.DataFrame] = field(default_factory=dict)

    def series(self, metric: str, dimset: str = "global") -> pl.DataFrame:
        """One metric of one dimension set: key columns in use plus ``value``, sorted by window."""
        from tunewatch.process.dimensions import dimension_set

        d = dimension_set(dimset)
        return (
            self.metrics.filter(pl.col("dimset") == d.name)
            .select("window_start", *d.fields, pl.col(metric).alias("value"))
            .sort("window_start", *d.fields)
        )

    def cache_items(self) -> dict[str, Any]:
        """Cache entries: ``metrics:<dimset>:<window_start>`` → columns of that window's rows."""
        items: dict[str, Any] = {}
        if self.metrics.is_empty():
            return items
        for (window, dimset), part in self.metrics.group_by(["window_start", "dimset"]):
            items[f"metrics:{dimset}:{window}"] = part.to_dict(as_series=False)
        return items


class MusicDataProcessor:
    """Aggregates validated events into the metric catalogue per 1-minute window and dimension set.

    ``engine`` picks the aggregation: ``"compiled"`` (default, Numba kernels) or ``"reference"`` (Polars
    group-bys, kept for tests and benchmarks); the metrics are the same.

    >>> import polars as pl
    >>> from tunewatch.validate import EnterpriseDataValidator
    >>> ev = [{"event_id": f"e{i}", "ts": 1_699_999_980_000 + i, "event_type": "play", "user_id": f"u{i % 3}",
    ...        "market": "BR", "platform": "android", "tier": "premium", "track_id": "t1", "artist_id": "a1",
    ...        "ms_played": 45_000, "track_duration_ms": 180_000, "reason_end": "trackdone"} for i in range(10)]
    >>> result = MusicDataProcessor().process(EnterpriseDataValidator().validate(ev))
    >>> result.series("streams", "market").row(0)
    (1699999980000, 'BR', 10.0)
    """

    def __init__(
        self,
        *,
        allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS,
        top_k: int = 50,
        rates: RateTable | None = None,
        dimension_sets: tuple[DimensionSet, ...] = DIMENSION_SETS,
        keep_sketches: bool = False,
        engine: Literal["compiled", "reference"] = "compiled",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine: unknown aggregation engine {engine!r} (known: {', '.join(ENGINES)})")
        self.engine = engine
        self.allowed_lateness_ms = allowed_lateness_ms
        self.rates = rates or RateTable.configured()
        self.dimension_sets = dimension_sets
        self.keep_sketches = keep_sketches
        self.heavy = {f: HeavyHitters(k=top_k) for f in TOP_K_FIELDS}
        self.quality = QualityLedger()
        self._buffer: list[pl.DataFrame] = []
        self._buffer_first: int | None = None  # earliest window_start in the buffer
        self.watermark: int | None = None
        self.closed_until: int | None = None  # windows starting before this are closed

    def process(
        self, valid: ValidationResult | pl.DataFrame, *, final: bool = True, now_s: float | None = None
    ) -> ProcessingResult:
        """Add accepted events (and, from a ValidationResult, the data-quality counts); return the metrics
        of every window that closed.

        ``final=True`` (the default, for one-off batches) closes every window in the buffer; the streaming
        pipeline passes ``final=False`` and windows close as the watermark advances. ``now_s`` (live mode)
        is the wall clock, for the freshness lag.
        """
        frame = valid.valid if isinstance(valid, ValidationResult) else valid
        if isinstance(valid, ValidationResult) and valid.watermark is not None:
            self.watermark = valid.watermark if self.watermark is None else max(self.watermark, valid.watermark)
        if isinstance(valid, ValidationResult):
            self.quality.record(valid, open_from=self.closed_until, now_s=now_s)
        if frame.height:
            derived = self._derive(frame)
            self._buffer.append(derived)
            first = int(derived.get_column("window_start").min())  # type: ignore[arg-type]
            self._buffer_first = first if self._buffer_first is None else min(self._buffer_first, first)
            if len(self._buffer) > _MAX_BUFFER_PIECES:  # many small HTTP batches: keep later concatenations cheap
                self._buffer = [pl.concat(self._buffer, rechunk=True)]
            if self.watermark is None and not isinstance(valid, ValidationResult):
                self.watermark = int(frame.get_column("ts").max())  # type: ignore[arg-type]
        if final:
            return self._close(None)
        if self.watermark is None:
            return self._close(-(2**62))
        return self._close(self.watermark - self.allowed_lateness_ms - WINDOW_MS)

    def flush(self) -> ProcessingResult:
        """Close every open window (end of stream)."""
        return self._close(None)

    @property
    def buffered_events(self) -> int:
        """Events waiting for their window to close."""
        return sum(f.height for f in self._buffer)

    # ------------------------------------------------------------------------------------------ state

    def entity_prior(self, column: str, values: Sequence[str]) -> np.ndarray:
        """Rates (plays per minute) that entities of a top-K ``column`` had before they joined its heavy hitters
        (NaN where unknown), for the detection stage to start their series from."""
        hh = self.heavy.get(column)
        return hh.entry_rates(values) if hh is not None else np.full(len(values), np.nan)

    def entity_prior_snapshot(self) -> Callable[[str, Sequence[str]], np.ndarray]:
        """:meth:`entity_prior` as it answers now, unchanged by later batches: for a detection stage that runs
        behind the processor (replay processes the next batch while the current one is detected)."""
        tables: dict[str, dict[str, float]] = {}
        for f, hh in self.heavy.items():
            members = sorted(hh.members)
            tables[f] = dict(zip(members, hh.entry_rates(members).tolist(), strict=True))

        def prior(column: str, values: Sequence[str]) -> np.ndarray:
            table = tables.get(column, {})
            return np.array([table.get(v, np.nan) for v in values], dtype=np.float64)

        return prior

    def state_dict(self) -> dict[str, Any]:
        """The open windows and what decides how they close, as plain values, NumPy and Polars (Arrow) frames.

        ``buffer`` holds the buffered events' derived columns (dimensions and 0/1 flags, no user id), and
        ``personal`` the columns derived from the user id (:data:`PERSONAL_COLUMNS`: a 64-bit hash, and with
        ``keep_sketches`` its HyperLogLog register and rank), needed to count distinct listeners exactly: a writer
        must protect it. ``hash_probe`` pins the hash function (Polars' hash is only stable within one version).
        Also the heavy-hitter tables, the data-quality ledger, the watermark and the first open window.
        """
        if self._buffer:
            buffer = pl.concat(self._buffer, rechunk=False) if len(self._buffer) > 1 else self._buffer[0]
        else:
            buffer = self._derive(pl.DataFrame(schema=VALID_SCHEMA))
        personal = [c for c in buffer.columns if c in PERSONAL_COLUMNS]
        return {
            "component": "MusicDataProcessor",
            "version": STATE_VERSION,
            "watermark": self.watermark,
            "closed_until": self.closed_until,
            "buffer": buffer.drop(personal),
            "personal": buffer.select(personal),
            "hash_probe": _hash_probe(),
            "heavy": {f: hh.state_dict() for f, hh in self.heavy.items()},
            "quality": self.quality.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from a :meth:`state_dict` export; raises ``ValueError`` naming the reason for another layout,
        other buffered columns (e.g. ``keep_sketches`` differs) or another hash function (Polars upgraded)."""
        check_state(state, "MusicDataProcessor", STATE_VERSION)
        if state["hash_probe"] != _hash_probe():
            raise ValueError(
                "MusicDataProcessor state: written with another user-id hash (another Polars version); "
                "its open windows cannot be merged with new events"
            )
        buffer, personal = state["buffer"], state["personal"]
        if not isinstance(buffer, pl.DataFrame) or not isinstance(personal, pl.DataFrame):
            raise ValueError("MusicDataProcessor state: buffer and personal must be frames")
        if buffer.height != personal.height:
            raise ValueError(f"MusicDataProcessor state: {buffer.height} buffered rows but {personal.height} personal")
        expected = self._derive(pl.DataFrame(schema=VALID_SCHEMA)).schema
        buffer = pl.concat([buffer, personal], how="horizontal")
        if buffer.schema != expected:
            raise ValueError(
                f"MusicDataProcessor state: buffered columns {list(buffer.schema)} differ from this processor's "
                f"{list(expected)} (keep_sketches or the metric catalogue changed)"
            )
        buffer = buffer.select(list(expected))
        heavy = state["heavy"]
        if set(heavy) != set(self.heavy):
            raise ValueError(f"MusicDataProcessor state: heavy hitters of {sorted(heavy)}, not {sorted(self.heavy)}")
        for f, hh in self.heavy.items():
            hh.load_state_dict(heavy[f])
        self.quality.load_state_dict(state["quality"])
        self._buffer = [buffer] if buffer.height else []
        self._buffer_first = int(buffer.get_column("window_start").min()) if buffer.height else None  # type: ignore[arg-type]
        self.watermark = None if state["watermark"] is None else int(state["watermark"])
        self.closed_until = None if state["closed_until"] is None else int(state["closed_until"])

    # ------------------------------------------------------------------------------------------ internals

    def _derive(self, ev: pl.DataFrame) -> pl.DataFrame:
        is_play = pl.col("event_type") == "play"
        is_rec = is_play & (pl.col("source") == "recommendation")
        ms = pl.when(is_play).then(pl.col("ms_played")).otherwise(0)
        stream = is_play & (pl.col("ms_played") >= STREAM_MIN_MS)
        flag = pl.Int32
        return ev.select(
            (pl.col("ts") - pl.col("ts") % WINDOW_MS).alias("window_start"),
            *DIMENSION_FIELDS,
            pl.lit(1, dtype=flag).alias("events"),
            is_play.cast(flag).alias("plays"),
            stream.cast(flag).alias("streams"),
            (pl.col("event_type") == "error").cast(flag).alias("errors"),
            (pl.col("event_type") == "ad").cast(flag).alias("ads"),
            (is_play & pl.col("skipped")).cast(flag).alias("skips"),
            (is_play & (pl.col("reason_end") == "trackdone")).cast(flag).alias("completions"),
            pl.when(is_play)
            .then(pl.col("rebuffer_ms").fill_null(0))
            .otherwise(0)
            .cast(pl.Float64)
            .alias("rebuffer_ms"),
            ms.cast(pl.Float64).alias("ms_played"),
            (is_play & pl.col("bitrate_kbps").is_not_null()).cast(flag).alias("bitrate_n"),
            (is_play & (pl.col("bitrate_kbps") < LOW_QUALITY_KBPS)).fill_null(False).cast(flag).alias("low_quality_n"),
            is_rec.cast(flag).alias("rec_plays"),
            (is_rec & ~pl.col("skipped")).cast(flag).alias("rec_accepted"),
            pl.col("ad_revenue_micros").fill_null(0).cast(pl.Float64).alias("ad_revenue_micros"),
            pl.when(stream).then(self.rates.rate_expr()).otherwise(0.0).alias("stream_revenue_micros"),
            (is_play & pl.col("startup_ms").is_not_null()).cast(flag).alias("startup_n"),
            pl.when(is_play).then(bucket_column("startup_ms")).alias("q_bucket"),
            pl.col("user_id").hash().alias("user_hash"),
            *(hll_columns("user_id") if self.keep_sketches else []),
        )

    def _close(self, before: int | None) -> ProcessingResult:
        """Aggregate and drop buffered windows starting before ``before`` (all when None)."""
        if not self._buffer or (before is not None and self._buffer_first is not None and self._buffer_first >= before):
            return self._quality_only(before)  # nothing buffered closes: no concatenation, no scan
        buf = pl.concat(self._buffer, rechunk=False) if len(self._buffer) > 1 else self._buffer[0]
        if before is None:
            ready, rest = buf, buf.clear()
        else:
            in_ready = pl.col("window_start") < before
            ready, rest = buf.filter(in_ready), buf.filter(~in_ready)
        self._buffer = [rest] if rest.height else []
        self._buffer_first = int(rest.get_column("window_start").min()) if rest.height else None  # type: ignore[arg-type]
        if ready.is_empty():
            return self._quality_only(before)
        # heavy hitters learn from the windows as they close (once per window, not per micro-batch)
        plays = ready.select(pl.col(f).filter(pl.col("plays") == 1) for f in self.heavy)
        newest = int(ready.get_column("window_start").max())  # type: ignore[arg-type]
        for f, hh in self.heavy.items():
            hh.update(plays.get_column(f), newest)
        mapped = ready.with_columns([hh.map_expr(f, OTHER) for f, hh in self.heavy.items()])
        frames, sketches = self._aggregate(mapped)
        last = int(ready.get_column("window_start").max())  # type: ignore[arg-type]
        quality = self.quality.take(last + WINDOW_MS if before is None else before)
        metrics = _conform(_with_quality(pl.concat(frames, how="diagonal_relaxed"), quality))
        windows = sorted(set(ready.get_column("window_start").unique().to_list()) | set(quality["window_start"]))
        self.closed_until = windows[-1] + WINDOW_MS
        return ProcessingResult(metrics=metrics, windows=windows, events=ready.height, sketches=sketches)

    def _quality_only(self, before: int | None) -> ProcessingResult:
        """Windows that received events but accepted none: only their data-quality KPIs."""
        if before is None and self.closed_until is None and self.watermark is None:
            return ProcessingResult(metrics=_empty_metrics(), windows=[], events=0)
        quality = self.quality.take(before)
        if quality.is_empty():
            return ProcessingResult(metrics=_empty_metrics(), windows=[], events=0)
        metrics = _with_quality(pl.DataFrame(schema={"window_start": pl.Int64, "dimset": pl.String}), quality)
        windows = sorted(quality["window_start"].to_list())
        self.closed_until = max(windows[-1] + WINDOW_MS, self.closed_until or 0)
        return ProcessingResult(metrics=_conform(metrics), windows=windows, events=0)

    def _aggregate(self, events: pl.DataFrame) -> tuple[list[pl.DataFrame], dict[str, pl.DataFrame]]:
        """Metric frames of the closing windows (every dimension set) and, with ``keep_sketches``, sketch states."""
        prepared = prepare(events) if self.engine == "reference" or self.keep_sketches else None
        if self.engine == "reference" and prepared is not None:
            raw = aggregate_reference(prepared, self.dimension_sets)
        else:
            # imported here: Numba (~1 s to import and initialise) loads at the first close, not with the package
            from tunewatch.process.compiled import aggregate_compiled

            raw = aggregate_compiled(events, self.dimension_sets)
        sketches = sketch_states(prepared, self.dimension_sets) if self.keep_sketches and prepared is not None else {}
        return [_finish(f) for f in raw], sketches


def _hash_probe() -> int:
    """The user-id hash (as :meth:`MusicDataProcessor._derive` computes it) of a fixed string."""
    return int(pl.select(pl.lit("tunewatch/hash-probe").hash()).item())


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    """The metric frame's columns in order (absent ones null)."""
    names = ["window_start", "dimset", *DIMENSION_FIELDS, *dict.fromkeys([*_SUMS, "attempts", *METRICS.keys()])]
    missing = [n for n in names if n not in frame.columns]
    return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(n) for n in missing).select(_metric_columns())


def _with_quality(metrics: pl.DataFrame, quality: pl.DataFrame) -> pl.DataFrame:
    """The data-quality KPIs (one row per window, ``quality``) on the ``global`` rows of ``metrics``, whose rows
    keep their order, then a global row for each window without one, in window order (sums 0).

    Equal to a full join on ``window_start`` and ``dimset``, without copying the metric columns: the KPI columns
    are gathered for the global rows (null elsewhere) and put beside them.
    """
    if quality.is_empty():
        return metrics
    q_windows = quality.get_column("window_start").to_numpy()  # distinct, ascending (QualityLedger.take)
    is_global = (metrics.get_column("dimset") == "global").fill_null(False).to_numpy()
    rows = np.flatnonzero(is_global)
    windows = metrics.get_column("window_start").to_numpy()[rows]
    pos = np.minimum(np.searchsorted(q_windows, windows), max(q_windows.size - 1, 0))
    found = q_windows[pos] == windows if q_windows.size else np.zeros(rows.size, dtype=bool)
    index = np.zeros(metrics.height, dtype=np.int64)
    index[rows[found]] = pos[found]
    missing = np.ones(metrics.height, dtype=bool)
    missing[rows[found]] = False
    gather = pl.Series(index, dtype=pl.Int64).set(pl.Series(missing), None)  # a null index gathers a null
    kpis = quality.drop("window_start")
    out = metrics.hstack(kpis.select(pl.all().gather(gather)).get_columns())
    matched = np.zeros(q_windows.size, dtype=bool)
    matched[pos[found]] = True
    if not matched.all():
        sums = [pl.lit(0.0, dtype=pl.Float64).alias(c) for c in _SUMS if c in metrics.columns]
        extra = quality.filter(pl.Series(~matched)).with_columns(pl.lit("global").alias("dimset"), *sums)
        out = pl.concat([out, extra], how="diagonal_relaxed")
    return out.with_columns(pl.col(c).fill_null(0.0) for c in _SUMS if c in out.columns)


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(None)


def _finish(frame: pl.DataFrame) -> pl.DataFrame:
    """Derived metrics of an aggregated frame."""
    c = pl.col
    return frame.with_columns(
        (c("plays") + c("errors")).alias("attempts"),
        _ratio(c("skips"), c("plays")).alias("skip_rate"),
        _ratio(c("completions"), c("plays")).alias("completion_rate"),
        _ratio(c("errors"), c("plays") + c("errors")).alias("failure_rate"),
        _ratio(c("rebuffer_ms"), c("ms_played")).alias("rebuffer_ratio"),
        _ratio(c("low_quality_n"), c("bitrate_n")).alias("low_quality_share"),
        _ratio(c("rec_accepted"), c("rec_plays")).alias("rec_acceptance"),
        (c("stream_revenue_micros") + c("ad_revenue_micros")).alias("est_revenue_micros"),
        c("unique_listeners").fill_null(0.0),
        _ratio(c("streams"), c("unique_listeners")).alias("streams_per_listener"),
    )


def _metric_columns() -> list[pl.Expr]:
    names = list(dict.fromkeys([*_SUMS, "attempts", *METRICS.keys()]))
    return [
        pl.col("window_start").cast(pl.Int64),
        pl.col("dimset").cast(pl.String),
        *[pl.col(f).cast(pl.String) for f in DIMENSION_FIELDS],
        *[pl.col(n).cast(pl.Float64) for n in names],
    ]


def _empty_metrics() -> pl.DataFrame:
    names = list(dict.fromkeys([*_SUMS, "attempts", *METRICS.keys()]))
    schema: dict[str, Any] = {"window_start": pl.Int64, "dimset": pl.String}
    schema.update({f: pl.String for f in DIMENSION_FIELDS})
    schema.update({n: pl.Float64 for n in names})
    return pl.DataFrame(schema=schema)
