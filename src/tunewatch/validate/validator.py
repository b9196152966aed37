"""EnterpriseDataValidator: the §2 rules, duplicates and lateness over a batch, in columnar form.

Every event received ends in exactly one of three outcomes: accepted, rejected (with one or more
``field: reason`` codes, kept for quarantine with its raw bytes) or duplicate.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from tunewatch.clock import Clock, as_clock
from tunewatch.errors import InputError
from tunewatch.ingest.batch import RawBatch, UndecodableLine, conform
from tunewatch.schema import FIELDS, RETENTION_MS, VALID_SCHEMA, Kind
from tunewatch.validate.custom_rules import RuleSet, load_rules
from tunewatch.validate.dedup import DEFAULT_DEDUP_HORIZON_MS, DuplicateFilter, check_state
from tunewatch.validate.reasons import describe
from tunewatch.validate.rules import (
    ENUM_SUFFIX,
    NOW_COLUMN,
    TYPED_SUFFIX,
    ColumnStats,
    Rule,
    fast_columns,
    lenient_column,
    rule_context,
    schema_rules,
    stats_exprs,
    valid_columns,
)
from tunewatch.validate.watermark import DEFAULT_ALLOWED_LATENESS_MS, Watermark

#: layout version of :meth:`EnterpriseDataValidator.state_dict`
STATE_VERSION: Final = 1

REJECTED_SCHEMA = pl.Schema(
    [
        ("source", pl.String),
        ("line_no", pl.Int64),
        ("event_id", pl.String),
        ("reasons", pl.List(pl.String)),
        ("raw", pl.Binary),
    ]
)


@dataclass(slots=True)
class ValidationResult:
    """Outcome of validating one batch.

    ``valid`` holds the accepted events typed as ``VALID_SCHEMA`` (timestamps in epoch ms, ``skipped`` filled
    in); ``rejected`` one row per rejected event with its reasons and raw bytes. ``watermark`` is the
    event-time watermark after this batch.

    >>> r = EnterpriseDataValidator().validate([{"event_id": "e1", "ts": 1700000000000, "event_type": "ad"}])
    >>> r.received, r.accepted, r.rejected_count, r.success_rate
    (1, 0, 1, 0.0)
    >>> r.messages()[0].startswith("api:1: user_id is required but missing")
    True
    """

    valid: pl.DataFrame
    rejected: pl.DataFrame
    duplicates: int
    watermark: int | None
    received: int
    reason_counts: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """Number of accepted events."""
        return self.valid.height

    @property
    def rejected_count(self) -> int:
        """Number of rejected events."""
        return self.rejected.height

    @property
    def success_rate(self) -> float:
        """Accepted / received (1.0 for an empty batch)."""
        return self.accepted / self.received if self.received else 1.0

    @classmethod
    def combine(cls, results: Sequence[ValidationResult]) -> ValidationResult:
        """Consecutive results of one validator as one: what a single batch of all their events, validated in
        the same order, would have given (rows in order, counts added up, the last watermark).

        >>> v = EnterpriseDataValidator()
        >>> ev = {"ts": 1700000000000, "event_type": "ad", "user_id": "u1", "market": "SE", "platform": "web",
        ...       "tier": "free", "ad_revenue_micros": 1}
        >>> r = ValidationResult.combine([v.validate([{**ev, "event_id": "a"}]), v.validate([{**ev, "event_id": "a"},
        ...                               {"event_id": "b"}])])
        >>> (r.received, r.accepted, r.duplicates, r.rejected_count)
        (3, 1, 1, 1)
        """
        if len(results) == 1:
            return results[0]
        counts: dict[str, int] = {}
        for r in results:
            for reason, n in r.reason_counts.items():
                counts[reason] = counts.get(reason, 0) + n
        watermarks = [r.watermark for r in results if r.watermark is not None]
        return cls(
            valid=pl.concat([r.valid for r in results], rechunk=False),
            rejected=pl.concat([r.rejected for r in results], rechunk=False),
            duplicates=sum(r.duplicates for r in results),
            watermark=watermarks[-1] if watermarks else None,
            received=sum(r.received for r in results),
            reason_counts=counts,
        )

    def messages(self, limit: int = 20) -> list[str]:
        """Human-readable rejection messages for the first ``limit`` rejected events."""
        out = []
        for row in self.rejected.head(limit).iter_rows(named=True):
            where = f"{row['source']}:{row['line_no']}" if row["line_no"] is not None else row["source"]
            out.append(f"{where}: " + "; ".join(describe(r) for r in row["reasons"]))
        return out


#: What :meth:`EnterpriseDataValidator.validate` accepts; besides these, a pandas DataFrame and any object with
#: ``__arrow_c_stream__`` (typed as ``Any``: neither pandas nor pyarrow is a dependency).
Events = RawBatch | pl.DataFrame | pl.LazyFrame | Sequence[Mapping[str, object]] | bytes | Any


class EnterpriseDataValidator:
    """Validates event batches against the §2 schema and business rules, drops duplicates, flags late events.

    Stateful across batches: it remembers accepted event ids (for ``dedup_horizon_ms`` of event time) and the
    event-time watermark. ``live=True`` also rejects events older than the retention (``too_old``), as live
    ingest must; replay leaves it off so that history of any age can be replayed. ``custom_rules`` adds
    user rules (a YAML file, its text, or a compiled :class:`~tunewatch.validate.custom_rules.RuleSet`).

    The hot path is one pass of cheap casts, whole-column screens that skip every rule which cannot fail in
    this batch, one combined row mask, and exact per-rule reasons only for the rows that mask flags. A batch
    that arrives in many chunks (the NDJSON reader's) is made contiguous first: each eager Polars pass over a
    chunked frame costs more than the one copy. :meth:`reference_reasons` is the slow, rule-by-rule reference
    the fast path must agree with.

    >>> v = EnterpriseDataValidator()
    >>> r = v.validate([{"event_id": "e1", "ts": 1700000000000, "event_type": "ad", "user_id": "u1",
    ...                  "market": "SE", "platform": "web", "tier": "free", "ad_revenue_micros": 1200}])
    >>> (r.accepted, r.rejected_count, r.duplicates)
    (1, 0, 0)
    """

    def __init__(
        self,
        *,
        allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS,
        dedup_horizon_ms: int = DEFAULT_DEDUP_HORIZON_MS,
        live: bool = False,
        retention_ms: int = RETENTION_MS,
        clock: Clock | Callable[[], float] | None = None,
        custom_rules: RuleSet | str | Path | None = None,
    ) -> None:
        self.live = live
        self.retention_ms = retention_ms
        #: what "now" is for the future-timestamp check (the wall clock unless given)
        self.clock: Clock = as_clock(clock)
        self.watermark = Watermark(allowed_lateness_ms)
        self.dedup = DuplicateFilter(dedup_horizon_ms)
        self.custom_rules = load_rules(custom_rules) if custom_rules is not None else None
        self._detectors: dict[tuple[tuple[int, ...], bool], list[pl.Expr]] = {}
        self.rules: list[Rule] = schema_rules(live=live, retention_ms=retention_ms)
        if self.custom_rules is not None:
            self.rules += self.custom_rules.rules()

    def state_dict(self) -> dict[str, Any]:
        """What the validator learnt from the stream: the remembered event ids and the watermark.

        For restarts (see :mod:`tunewatch.pipeline.stream_state`); rules and settings are configuration and are
        not part of it.
        """
        return {
            "component": "EnterpriseDataValidator",
            "version": STATE_VERSION,
            "dedup": self.dedup.state_dict(),
            "watermark": self.watermark.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from a :meth:`state_dict` export; raises ``ValueError`` (naming the part) for another layout."""
        check_state(state, "EnterpriseDataValidator", STATE_VERSION)
        watermark = Watermark(self.watermark.allowed_lateness_ms, self.watermark.support)
        dedup = DuplicateFilter(self.dedup.horizon_ms)
        watermark.load_state_dict(state["watermark"])
        dedup.load_state_dict(state["dedup"])
        self.watermark, self.dedup = watermark, dedup  # both or neither

    def _detector(self, candidates: tuple[Rule, ...], text_clean: bool) -> list[pl.Expr]:
        """The row masks of ``candidates``, one column each (built once per combination: batches repeat them).

        They are combined after the select (:func:`_flagged_rows`): Polars' ``any_horizontal`` over dozens of
        inputs costs several times the masks themselves (4.6 against 1.7 ms for 81 masks over 8 rows)."""
        key = (tuple(id(r) for r in candidates), text_clean)
        exprs = self._detectors.get(key)
        if exprs is None:
            exprs = [r.detector(text_clean).alias(f"__m{i}") for i, r in enumerate(candidates)]
            self._detectors[key] = exprs
        return exprs

    def reference_reasons(self, events: Events) -> list[list[str]]:
        """The reasons of every decoded row from every rule's exact mask: the slow reference of :meth:`validate`.

        No column screens, no cheap detectors, no bit codes: each rule is evaluated on every row, and a row's
        reasons are those of the rules it breaks, in rule order. Duplicates and lateness are not considered and
        the validator's state is untouched. For tests (the fast path must give the same verdicts) and for
        explaining a verdict; its cost grows with the number of failing rows.
        """
        batch = _as_batch(events)
        now_ms = self.clock.now_ms()
        frame = batch.frame
        schema = tuple(frame.schema.items())
        work = frame.with_columns(_fast_columns(schema))
        work, stats = _screen(work, batch, now_ms, _typed_input(schema))
        work = work.with_columns(rule_context(now_ms))
        if stats.typed_input:  # masks that read the text of a field the reader delivered typed
            work = work.with_columns(pl.col(sorted(stats.typed_input)).cast(pl.String))
        flags = work.select(rule.exact(stats.typed_input).alias(f"m{i}") for i, rule in enumerate(self.rules))
        found: list[list[str]] = [[] for _ in range(work.height)]
        for i, rule in enumerate(self.rules):
            for row in flags.get_column(f"m{i}").arg_true().to_list():
                if rule.reason not in found[row]:
                    found[row].append(rule.reason)
        return found

    def validate(self, events: Events) -> ValidationResult:
        """Validate a batch: a :class:`RawBatch`, a Polars or pandas DataFrame, an Arrow table or stream (any
        object with ``__arrow_c_stream__``), a list of JSON objects or NDJSON bytes.

        Any other type raises :class:`~tunewatch.errors.InputError` saying what is accepted.
        """
        batch = _as_batch(events)
        now_ms = self.clock.now_ms()
        frame = batch.frame
        if frame.n_chunks("all") != [1] * frame.width:  # see the class docstring
            frame = frame.rechunk()
        # the work columns and the rules' context in one pass (each eager Polars call has a fixed cost that
        # dominates a small live step)
        schema = tuple(frame.schema.items())
        small = frame.height <= _SEQUENTIAL_ROWS
        columns = [*_fast_columns(schema, frame.height <= _SMALL_ROWS), *_context(now_ms)]
        work = frame.with_columns_seq(columns) if small else frame.with_columns(columns)
        work, stats = _screen(work, batch, now_ms, _typed_input(schema))
        candidates = [rule for rule in self.rules if rule.screen(stats)]

        bad_rows = np.zeros(0, dtype=np.int64)
        reasons = _NO_REASONS
        if candidates and work.height:
            # the candidates' masks and the valid columns in one pass; the valid rows are picked below
            detectors = self._detector(tuple(candidates), stats.text_clean)
            exprs = [*detectors, *_VALID_COLUMNS]
            both = (work.select_seq(exprs) if small else work.select(exprs)).get_columns()
            valid = pl.DataFrame(both[len(detectors) :])  # the Series themselves: cheaper than a select by name
            rows = _flagged_rows(both[: len(detectors)], work.height)
            if len(rows):
                reasons = _exact_reasons(work, rows, candidates, stats.typed_input)
                bad_rows = reasons.get_column("__row").to_numpy()
        else:
            valid = work.select(_VALID_COLUMNS)
        if bad_rows.size:
            good = np.ones(work.height, dtype=bool)
            good[bad_rows] = False
            good_rows = np.flatnonzero(good)
        else:
            good_rows = np.arange(work.height, dtype=np.int64)
        ids = work.get_column("event_id")
        ts = work.get_column("ts" + TYPED_SUFFIX).to_numpy()

        # duplicates, then lateness, in arrival order among the schema-valid events
        good_ids = ids.gather(good_rows) if bad_rows.size else ids
        hashes = self.dedup.hash(good_ids)
        dup = self.dedup.duplicate_mask(good_ids, hashes)
        fresh_rows = good_rows[~dup] if dup.any() else good_rows
        late = self.watermark.late_mask(ts[fresh_rows].astype(np.int64))
        if late.any():  # the accepted rows' ranks among the good rows: the fresh ones, less the late ones
            accepted_rank = np.flatnonzero(~dup)
            accepted_rank = accepted_rank[~late]
        else:
            accepted_rank = np.flatnonzero(~dup) if dup.any() else np.arange(good_rows.size, dtype=np.int64)
        accepted_rows = good_rows[accepted_rank] if accepted_rank.size < good_rows.size else good_rows
        whole = accepted_rows.size == work.height
        if whole:
            self.dedup.remember(ids, pl.Series(ts), accepted_rank)
        else:
            self.dedup.remember(ids.gather(accepted_rows), pl.Series(ts[accepted_rows]), accepted_rank)
        self.dedup.evict(self.watermark.value)

        if not whole:
            valid = _keep_rows(valid, accepted_rows)
        if valid.dtypes != _VALID_DTYPES:
            valid = valid.cast(dict(VALID_SCHEMA))  # type: ignore[arg-type]
        if late.any():
            late_rows = pl.DataFrame(
                {"__row": fresh_rows[late], "r": [["ts: late"]] * int(late.sum())},
                schema={"__row": pl.Int64, "r": pl.List(pl.String)},
            )
            reasons = pl.concat([reasons, late_rows]).sort("__row")
        rejected = _rejected_frame(batch, reasons, ids)
        return ValidationResult(
            valid=valid,
            rejected=rejected,
            duplicates=int(dup.sum()),
            watermark=self.watermark.value,
            received=batch.received,
            reason_counts=_count_reasons(rejected),
        )


_FEW_GAPS = 48  # beyond this many gaps one filter is cheaper than the slices
_VALID_COLUMNS = valid_columns()
_VALID_DTYPES = list(VALID_SCHEMA.dtypes())
_STATS_EXPRS = stats_exprs()
#: the outcome of a batch without a rejected row: its (empty) reasons and rejected rows
_NO_REASONS = pl.DataFrame(schema={"__row": pl.Int64, "r": pl.List(pl.String)})
_NO_REJECTED = pl.DataFrame(schema=REJECTED_SCHEMA)


def _context(now_ms: int) -> list[pl.Expr]:
    """:func:`rule_context` of ``now_ms``: the event-type flags are made once, the clock's literal per batch."""
    return [pl.lit(now_ms, dtype=pl.Int64).alias(NOW_COLUMN), *_TYPE_FLAGS]


_TYPE_FLAGS = rule_context(0)[1:]


#: batches of at most this many rows take the enumerations' ``Enum`` casts (see :func:`fast_columns`)
_SMALL_ROWS = 8192
#: batches of at most this many rows evaluate their expressions one after the other in the calling thread
#: (``select_seq``): for 8 rows 10-25 % less CPU per call than handing them to Polars' thread pool
_SEQUENTIAL_ROWS = 256


@functools.lru_cache(maxsize=16)
def _fast_columns(schema: tuple[tuple[str, pl.DataType], ...], small: bool = False) -> list[pl.Expr]:
    return fast_columns(pl.Schema(schema), small=small)


@functools.lru_cache(maxsize=16)
def _typed_input(schema: tuple[tuple[str, pl.DataType], ...]) -> frozenset[str]:
    """The fields a batch of this (conformed) schema holds typed, not as text."""
    types = dict(schema)
    return frozenset(f.name for f in FIELDS if types[f.name] != pl.String)


def _flagged_rows(masks: Iterable[pl.Series], height: int) -> pl.Series:
    """Row numbers where any of the boolean, null-free ``masks`` is true (a mask of one row, a literal, holds for
    every row)."""
    hit = np.zeros(height, dtype=np.bool_)
    for column in masks:
        hit |= column.to_numpy()
    return pl.Series("rows", np.flatnonzero(hit), dtype=pl.UInt32)


def _keep_rows(frame: pl.DataFrame, rows: npt.NDArray[np.int64]) -> pl.DataFrame:
    """``frame`` restricted to ``rows`` (sorted). A few dropped rows: zero-copy slices of the runs between them."""
    mask = np.zeros(frame.height, dtype=bool)
    mask[rows] = True
    if frame.height - rows.size > _FEW_GAPS:
        return frame.filter(pl.Series(mask))
    dropped = np.flatnonzero(~mask)
    bounds = np.concatenate([[-1], dropped, [frame.height]])
    parts = [frame.slice(a + 1, b - a - 1) for a, b in itertools.pairwise(bounds.tolist()) if b - a > 1]
    return pl.concat(parts, rechunk=False) if parts else frame.clear()


def _exact_reasons(work: pl.DataFrame, rows: pl.Series, rules: list[Rule], typed_input: frozenset[str]) -> pl.DataFrame:
    """``__row`` and reasons ``r`` of the flagged ``rows`` that break at least one rule.

    Each row's verdict is packed into bit codes (one bit per rule, 63 rules per code column), so the per-row work
    is integer arithmetic; the few distinct combinations are then mapped to their lists of reasons.
    """
    masks = [rule.exact(typed_input) for rule in rules]
    needed = sorted({name for mask in masks for name in mask.meta.root_names()} & set(work.columns))
    subset = work.select(pl.col(needed).gather(rows))
    text = [name for name in needed if name in typed_input]
    if text:  # masks that read the text of a field the reader delivered typed
        subset = subset.with_columns(pl.col(text).cast(pl.String))
    groups = [rules[i : i + 63] for i in range(0, len(rules), 63)]
    codes = subset.select(
        [
            pl.sum_horizontal([masks[g * 63 + bit].cast(pl.Int64) * (1 << bit) for bit in range(len(group))]).alias(
                f"c{g}"
            )
            for g, group in enumerate(groups)
        ]
    ).with_columns(rows.cast(pl.Int64).alias("__row"))
    code_cols = [f"c{g}" for g in range(len(groups))]
    codes = codes.filter(pl.any_horizontal(pl.col(c) != 0 for c in code_cols))
    combos = codes.select(code_cols).unique()
    lists = []
    for combo in combos.iter_rows():
        found: list[str] = []
        for group, code in zip(groups, combo, strict=True):
            for bit, rule in enumerate(group):
                if code >> bit & 1 and rule.reason not in found:
                    found.append(rule.reason)
        lists.append(found)
    table = combos.with_columns(pl.Series("r", lists, dtype=pl.List(pl.String)))
    return codes.join(table, on=code_cols, how="left", maintain_order="left").select("__row", "r")


def _screen(
    work: pl.DataFrame, batch: RawBatch, now_ms: int, typed_input: frozenset[str]
) -> tuple[pl.DataFrame, ColumnStats]:
    """Whole-column statistics; int/timestamp columns with non-integer text get the lenient parse first.
    ``typed_input``: the fields the reader delivered typed (:func:`_typed_input`)."""
    raw_nulls = dict(zip(work.columns, work.null_count().row(0), strict=True))
    lenient = [
        f for f in FIELDS
        if f.kind in (Kind.INT, Kind.TIMESTAMP) and raw_nulls[f.name + TYPED_SUFFIX] > raw_nulls[f.name]
    ]  # fmt: skip
    if lenient:
        work = work.with_columns([lenient_column(f) for f in lenient])
        raw_nulls.update(zip(work.columns, work.null_count().row(0), strict=True))
    stats = ColumnStats(rows=work.height, text_clean=batch.text_clean, now_ms=now_ms, typed_input=typed_input)
    for name, nulls in raw_nulls.items():
        base, suffix = name[:-3], name[-3:]
        if suffix in (TYPED_SUFFIX, ENUM_SUFFIX):
            stats.work_nulls[base] = nulls
        elif not name.startswith("__"):  # not the rules' context (the clock, the event-type flags)
            stats.raw_nulls[name] = nulls
    if work.height:
        stats_row = work.select_seq(_STATS_EXPRS) if work.height <= _SEQUENTIAL_ROWS else work.select(_STATS_EXPRS)
        for key, value in stats_row.row(0, named=True).items():
            kind, _, name = key.partition(":")
            {"min": stats.minimum, "max": stats.maximum, "lmin": stats.len_min, "lmax": stats.len_max}[kind][name] = (
                value
            )
    return work, stats


def _count_reasons(rejected: pl.DataFrame) -> dict[str, int]:
    if not rejected.height:
        return {}
    counts = rejected.select(pl.col("reasons").explode().value_counts(sort=True)).unnest("reasons")
    return dict(zip(counts.get_column("reasons").to_list(), counts.get_column("count").to_list(), strict=True))


def _rejected_frame(batch: RawBatch, reasons: pl.DataFrame, event_ids: pl.Series) -> pl.DataFrame:
    """One row per rejected event: decoded rows with their reasons, then the undecodable lines.

    ``event_ids`` is the batch's ``event_id`` column (in one chunk: gathers from it are cheaper).
    """
    if not reasons.height and not batch.undecodable:
        return _NO_REJECTED.clear()
    rows = reasons.get_column("__row").to_list()
    undecodable = batch.undecodable
    ids = event_ids.gather(rows) if rows else pl.Series([], dtype=pl.String)
    data = {
        "source": [batch.source] * (len(rows) + len(undecodable)),
        "line_no": batch.lines_of(rows) + [u.line_no for u in undecodable],
        "event_id": pl.concat([ids, pl.Series([None] * len(undecodable), dtype=pl.String)]),
        "reasons": pl.concat(
            [reasons.get_column("r"), pl.Series([[u.reason] for u in undecodable], dtype=pl.List(pl.String))]
        ),
        "raw": batch.raws_of(rows) + [u.raw for u in undecodable],
    }
    return pl.DataFrame(data, schema=REJECTED_SCHEMA)


_ACCEPTED = (
    "a Polars or pandas DataFrame, an Arrow table or stream (anything with __arrow_c_stream__), "
    "a list of event dicts, or NDJSON bytes"
)


def _as_batch(events: Events) -> RawBatch:
    from tunewatch.ingest import foreign

    if isinstance(events, RawBatch):
        return events
    if isinstance(events, pl.DataFrame):
        return RawBatch(frame=conform(events), source="dataframe")
    if isinstance(events, pl.LazyFrame):
        return RawBatch(frame=conform(events.collect()), source="dataframe")
    if foreign.is_pandas_frame(events):
        return RawBatch(frame=conform(foreign.from_pandas(events)), source="pandas")
    if foreign.has_arrow_stream(events):
        return RawBatch(frame=conform(foreign.from_arrow_stream(events)), source="arrow")
    if isinstance(events, bytes | bytearray | memoryview):
        from tunewatch.ingest.readers import parse_ndjson_bytes

        return parse_ndjson_bytes(bytes(events), source="bytes")
    if isinstance(events, str):
        raise InputError("events: got a str; give NDJSON as bytes (text.encode()) or " + _ACCEPTED)
    if isinstance(events, Mapping):
        raise InputError("events: got one event (a mapping); give a list of events, or " + _ACCEPTED)
    if not isinstance(events, Iterable):
        raise InputError(f"events: cannot validate a {type(events).__name__}; give " + _ACCEPTED)
    records: list[dict[str, object]] = []
    numbers: list[int] = []
    others: list[UndecodableLine] = []
    for no, item in enumerate(events, start=1):
        if isinstance(item, Mapping):
            records.append(dict(item))
            numbers.append(no)
        else:
            others.append(UndecodableLine(no, repr(item).encode()[:1024], "line: not_object", "not a JSON object"))
    batch = RawBatch.from_records(records, source="api")
    batch.raw_lines = [_encode(r) for r in records]
    batch.line_nos = numbers
    batch.undecodable = others
    return batch


def _encode(record: Mapping[str, object]) -> bytes:
    """JSON of an API record for quarantine (``repr`` of values JSON cannot hold, never an exception)."""
    try:
        return msgspec.json.encode(record)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return msgspec.json.encode({str(k): v if isinstance(v, str | None) else repr(v) for k, v in record.items()})
