"""The NAB harness: read a corpus in NAB's layout, run a detector, write NAB-format results, score them.

Layout: ``DATA_DIR/CATEGORY/FILE.csv`` with columns ``timestamp,value``; labels as NAB's
``labels/combined_windows.json`` (``"CATEGORY/FILE.csv" → [[start, end], ...]``). Results go to
``RESULTS_DIR/CATEGORY/DETECTOR_FILE.csv`` with ``timestamp,value,anomaly_score`` (one row per input row), as
NAB's own ``results/DETECTOR/`` folders have them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tunewatch.errors import TunewatchError
from tunewatch.evaluate.nab_score import PROFILES, CorpusScore, FloatArray, SweptFile, score_corpus, sweep_file


class NabError(TunewatchError):
    """A NAB corpus, labels file or results folder that cannot be used.

    >>> import tempfile
    >>> try:
    ...     load_corpus(Path(tempfile.mkdtemp()))
    ... except NabError as exc:
    ...     "no CATEGORY/FILE.csv files found" in str(exc)
    True
    """


@dataclass(slots=True)
class NabSeries:
    """One file of the corpus.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "realTraffic").mkdir()
    >>> csv = "timestamp,value\\n2015-09-01 00:00:00,5\\n2015-09-01 00:05:00,7\\n"
    >>> _ = (root / "realTraffic" / "speed.csv").write_text(csv)
    >>> (series,) = load_corpus(root)
    >>> series.key, series.t_ms.tolist(), series.values.tolist()
    ('realTraffic/speed.csv', [1441065600000, 1441065900000], [5.0, 7.0])
    """

    key: str  # "CATEGORY/FILE.csv", as in the labels file
    timestamps: pl.Series  # the file's timestamp strings, written back unchanged
    t_ms: np.ndarray  # epoch milliseconds (int64), naive timestamps read as UTC
    values: FloatArray


#: A detector runner: (epoch ms, values) of one whole series → anomaly score per row, in [0, 1].
SeriesScorer = Callable[[np.ndarray, FloatArray], FloatArray]


def load_corpus(data_dir: Path) -> list[NabSeries]:
    """Every ``CATEGORY/*.csv`` under ``data_dir``, sorted by key."""
    files = sorted(p for p in data_dir.glob("*/*.csv") if p.is_file())
    if not files:
        raise NabError(f"{data_dir}: no CATEGORY/FILE.csv files found (expected NAB's data/ layout)")
    out = []
    for p in files:
        key = f"{p.parent.name}/{p.name}"
        try:
            df = pl.read_csv(p, schema_overrides={"timestamp": pl.String, "value": pl.Float64})
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise NabError(f"{key}: unreadable CSV ({exc})") from exc
        missing = {"timestamp", "value"} - set(df.columns)
        if missing:
            raise NabError(f"{key}: missing column(s) {', '.join(sorted(missing))}")
        ts = df.get_column("timestamp")
        parsed = ts.str.to_datetime(time_unit="ms", strict=False)
        if parsed.null_count():
            raise NabError(f"{key}: {parsed.null_count()} unparseable timestamp(s)")
        t_ms = parsed.cast(pl.Int64).to_numpy()
        out.append(NabSeries(key, ts, t_ms, df.get_column("value").to_numpy().astype(np.float64)))
    return out


def load_windows(labels_json: Path) -> dict[str, list[tuple[int, int]]]:
    """The combined windows as epoch-millisecond (start, end) pairs per file key."""
    try:
        raw = json.loads(labels_json.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NabError(f"{labels_json}: cannot read labels ({exc})") from exc
    if not isinstance(raw, dict):
        raise NabError(f"{labels_json}: expected an object of file → windows")
    out: dict[str, list[tuple[int, int]]] = {}
    for key, wins in raw.items():
        pairs = []
        for w in wins:
            if not isinstance(w, list) or len(w) != 2:
                raise NabError(f"{labels_json}: {key}: window {w!r} is not a [start, end] pair")
            se = pl.Series([str(w[0]), str(w[1])]).str.to_datetime(time_unit="ms", strict=False)
            if se.null_count():
                raise NabError(f"{labels_json}: {key}: unparseable window timestamps {w!r}")
            start, end = (int(v) for v in se.cast(pl.Int64).to_list())
            pairs.append((start, end))
        out[key] = pairs
    return out


def sweep_corpus(corpus: list[NabSeries], windows: dict[str, list[tuple[int, int]]]) -> dict[str, SweptFile]:
    """Profile-independent scoring inputs per file (window rows located by timestamp)."""
    out = {}
    for s in corpus:
        if s.key not in windows:
            raise NabError(f"{s.key}: not in the labels file")
        rows = []
        for a, b in windows[s.key]:
            ia, ib = int(np.searchsorted(s.t_ms, a)), int(np.searchsorted(s.t_ms, b, side="right")) - 1
            if ia >= s.t_ms.size or ib < ia:
                raise NabError(f"{s.key}: window {a}..{b} matches no rows")
            rows.append((ia, ib))
        out[s.key] = sweep_file(s.t_ms.size, rows)
    return out


def run_detector(corpus: list[NabSeries], scorer: SeriesScorer) -> dict[str, FloatArray]:
    """Anomaly scores of every file (NaN → 0), rounded as they are written."""
    out: dict[str, FloatArray] = {}
    for s in corpus:
        sc = np.nan_to_num(np.asarray(scorer(s.t_ms, s.values), dtype=np.float64), nan=0.0)
        out[s.key] = np.round(np.clip(sc, 0.0, 1.0), 9).astype(np.float64)
    return out


def write_results(corpus: list[NabSeries], scores: dict[str, FloatArray], results_dir: Path, detector: str) -> int:
    """Write ``results_dir/CATEGORY/detector_FILE.csv`` per file; returns the number of files."""
    for s in corpus:
        category, name = s.key.split("/", 1)
        path = results_dir / category / f"{detector}_{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"timestamp": s.timestamps, "value": s.values, "anomaly_score": scores[s.key]}).write_csv(
            path, float_precision=9
        )
    return len(corpus)


def read_results(corpus: list[NabSeries], results_dir: Path, detector: str) -> dict[str, FloatArray]:
    """Read back a detector's results folder (NAB's own ``results/DETECTOR/`` folders can be scored too)."""
    out = {}
    for s in corpus:
        category, name = s.key.split("/", 1)
        path = results_dir / category / f"{detector}_{name}"
        if not path.is_file():
            raise NabError(f"{path}: results file missing")
        col = pl.read_csv(path).get_column("anomaly_score").to_numpy().astype(np.float64)
        if col.size != s.values.size:
            raise NabError(f"{path}: {col.size} rows, the data file has {s.values.size}")
        out[s.key] = col
    return out


def score_all(
    swept: dict[str, SweptFile], scores: dict[str, FloatArray], profiles: list[str] | None = None
) -> dict[str, CorpusScore]:
    """NAB score per profile, each with its own optimised threshold."""
    names = profiles or list(PROFILES)
    unknown = [p for p in names if p not in PROFILES]
    if unknown:
        raise NabError(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    return {p: score_corpus(swept, scores, PROFILES[p]) for p in names}
