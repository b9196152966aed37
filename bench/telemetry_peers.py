"""tunewatch's default against production-grade peers on the independent telemetry corpus (issue 12).

Usage: python bench/telemetry_peers.py --seeds 1,2,3,4,5 [--per-group 20] [--peers default,windowed_gaussian,...]
       [--cache DIR] [--set KEY=VALUE ...] [--threshold-from DEV_SEEDS]

The corpus is ``bench/independent_telemetry.py`` (no code shared with tunewatch). Every detector is scored with
NAB's rules (``tunewatch.evaluate.nab_score``, standard profile) and NAB's threshold protocol: one threshold per
detector for the whole corpus of the run, the one that maximises its total; the table then shows each
kind/resolution at that threshold, and at the detector's label-free threshold where it has one (what a user
runs without labels). With ``--threshold-from`` the NAB threshold is the one chosen on those (development) seeds
instead, applied unchanged to the seeds scored (for held-out seeds). The peers, each with its documented or
default settings (the bench-only ``peers`` extra: ``make peers``):

* ``default``: tunewatch's default detector (``tunewatch.evaluate.registry``), label-free threshold 0.2708;
* ``windowed_gaussian``: NAB's baseline (``tunewatch.evaluate.peers``), label-free 0.9999;
* ``river_hst``: River's ``HalfSpaceTrees`` behind a ``MinMaxScaler`` (as in ``bench/detectors.py``), streaming;
* ``adtk``: ADTK's ``SeasonalAD`` (c=3, when the series has a seasonality ADTK can find), ``LevelShiftAD``
  (c=6, window=5) and ``QuantileAD`` (1 % / 99 %) combined with OR, as ADTK's quick-start combines them; binary;
* ``stl_esd``: S-H-ESD-like: statsmodels' robust STL with the daily period (24 rows hourly, 1,440 per minute),
  residual = value − seasonal − piecewise (two-week) median, robust z (median/MAD), score |z| / (1 + |z|) (a
  tail probability saturates at 1.0 past |z| = 8.3 and ties every large outlier), label-free at |z| = 3;
* ``pyod_iforest`` / ``pyod_ecod``: PyOD's IForest / ECOD (defaults) on sliding windows of the last 8 robustly
  standardised values; score = PyOD's ``predict_proba(method="unify")``, label-free = its default
  ``contamination=0.1`` labels.

The batch peers (ADTK, STL, PyOD) are fitted on the whole series as their documentation does, so they see the
future: a flattering setting for them. Scores are cached per seed and detector in ``--cache``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds scripts named like standard modules (http.py): keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from tunewatch.detect.defaults import NAB_DEFAULT  # noqa: E402
from tunewatch.detect.detectors import EnsembleDetector  # noqa: E402
from tunewatch.detect.kernel_detector import KernelParams  # noqa: E402
from tunewatch.evaluate.generalise import false_episode_rate  # noqa: E402
from tunewatch.evaluate.nab_score import PROFILES, FloatArray, SweptFile, score_corpus, sweep_file  # noqa: E402
from tunewatch.evaluate.peers import windowed_gaussian  # noqa: E402
from tunewatch.evaluate.registry import LABEL_FREE_THRESHOLDS  # noqa: E402

Scorer = Callable[[np.ndarray, FloatArray], FloatArray]
HERE = Path(__file__).resolve().parent


def _bench_module(name: str) -> ModuleType:
    """A sibling script of bench/ loaded by path (the folder is not on the import path)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


telemetry = _bench_module("independent_telemetry")


# ----------------------------------------------------------------------------------------------------- the peers


def _regular(t_ms: np.ndarray, values: FloatArray) -> tuple[np.ndarray, FloatArray, int]:
    """The series on its regular grid (absent rows interpolated), the rows of the originals in it, and the step."""
    step = int(np.median(np.diff(t_ms)))
    pos = ((t_ms - t_ms[0]) // step).astype(np.int64)
    grid = np.arange(pos[-1] + 1)
    return pos, np.interp(grid, pos, values), step


def _river_hst(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
    return _bench_module("detectors")._river_scorer()(t_ms, values)  # type: ignore[no-any-return]


def _adtk(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
    import pandas as pd
    from adtk.data import validate_series
    from adtk.detector import LevelShiftAD, QuantileAD, SeasonalAD

    pos, x, step = _regular(t_ms, values)
    idx = pd.date_range(pd.Timestamp(int(t_ms[0]), unit="ms"), periods=x.size, freq=pd.Timedelta(milliseconds=step))
    s = validate_series(pd.Series(x, index=idx))
    flags = np.zeros(x.size)
    detectors: list[Any] = [LevelShiftAD(c=6.0, side="both", window=5), QuantileAD(high=0.99, low=0.01)]
    detectors.append(SeasonalAD(c=3.0, side="both"))
    for det in detectors:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = det.fit_detect(s)
        except Exception:  # SeasonalAD refuses a series without a seasonality it can find: that detector is off
            continue
        flags = np.maximum(flags, np.nan_to_num(np.asarray(out, dtype=np.float64), nan=0.0))
    return flags[pos]


def _stl_esd(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
    from statsmodels.tsa.seasonal import STL

    pos, x, step = _regular(t_ms, values)
    period = max(2, round(86_400_000 / step))
    if x.size >= 2 * period + 1:
        # R's stl() defaults for the smoothers' jumps (ceil(window / 10)), which Twitter's S-H-ESD runs on;
        # statsmodels' own default (every point) takes minutes on one per-minute series
        trend = int(np.ceil(1.5 * period / (1.0 - 1.5 / 7)))
        trend += 1 - trend % 2
        low = period + 1 + period % 2
        fit = STL(
            x, period=period, robust=True, seasonal_jump=1, trend=trend,
            trend_jump=int(np.ceil(trend / 10)), low_pass_jump=int(np.ceil(low / 10)),
        ).fit()  # fmt: skip
        seasonal = np.asarray(fit.seasonal)
    else:
        seasonal = np.zeros(x.size)
    piece = max(period * 14, x.size // max(1, x.size // (period * 14)))
    r = x - seasonal
    for a in range(0, x.size, piece):
        r[a : a + piece] -= np.median(r[a : a + piece])
    mad = 1.4826 * np.median(np.abs(r - np.median(r)))
    z = (r - np.median(r)) / (mad if mad > 0 else (np.std(r) or 1.0))
    az = np.abs(z)
    return np.asarray((az / (1.0 + az))[pos])  # monotone in |z| and never saturates (1 − 2·Φ(−|z|) is 1.0 past 8.3)


WINDOW = 8


def _windows(values: FloatArray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    med = np.median(x)
    mad = 1.4826 * np.median(np.abs(x - med)) or (np.std(x) or 1.0)
    z = (x - med) / mad
    padded = np.r_[np.full(WINDOW - 1, z[0]), z]
    return np.lib.stride_tricks.sliding_window_view(padded, WINDOW)


def _pyod_model(kind: str) -> Any:
    """A fresh PyOD model of ``kind`` (``iforest`` or ``ecod``) with its default settings."""
    if kind == "iforest":
        from pyod.models.iforest import IForest

        return IForest(random_state=0)
    from pyod.models.ecod import ECOD

    return ECOD()


def _pyod_fitted(kind: str, values: FloatArray) -> tuple[Any, np.ndarray]:
    """A PyOD model of ``kind`` fitted on the sliding windows of ``values``, and those windows."""
    model, X = _pyod_model(kind), _windows(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return model, X


def _pyod(kind: str) -> Scorer:
    def score(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
        model, X = _pyod_fitted(kind, values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(model.predict_proba(X, method="unify")[:, 1])

    return score


def _pyod_free(kind: str) -> Scorer:
    """PyOD's own labels at its default contamination (0.1): the label-free form, as a 0/1 score."""

    def labels(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
        model, _ = _pyod_fitted(kind, values)
        return np.asarray(model.labels_, dtype=np.float64)

    return labels


def _default(cfg: dict[str, Any]) -> Scorer:
    def score(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
        return EnsembleDetector(**cfg).chunk(t_ms, values).score

    return score


#: name → (scorer, label-free threshold or None)
def peers(default_cfg: dict[str, Any]) -> dict[str, tuple[Scorer, float | None]]:
    return {
        "default": (_default(default_cfg), LABEL_FREE_THRESHOLDS["default"]),
        "windowed_gaussian": (windowed_gaussian, LABEL_FREE_THRESHOLDS["windowed_gaussian"]),
        "river_hst": (_river_hst, None),
        "adtk": (_adtk, 0.5),
        "stl_esd": (_stl_esd, 0.75),  # |z| = 3
        "pyod_iforest": (_pyod("iforest"), None),
        "pyod_ecod": (_pyod("ecod"), None),
    }


FREE_SCORERS: dict[str, Scorer] = {"pyod_iforest": _pyod_free("iforest"), "pyod_ecod": _pyod_free("ecod")}


# ------------------------------------------------------------------------------------------------------- scoring


def run(scorer: Scorer, series: list[Any], cache: Path | None, tag: str, clean: bool = False) -> dict[str, FloatArray]:
    """Scores of every series (cached in ``cache/tag.npz``)."""
    path = cache / f"{tag}.npz" if cache else None
    if path and path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out = {}
    for s in series:
        v = s.clean if clean else s.values
        out[s.key] = np.nan_to_num(np.asarray(scorer(s.t_ms, v), dtype=np.float64), nan=0.0)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **out)
    return out


def report(
    series: list[Any],
    scores: dict[str, dict[str, FloatArray]],
    free_scores: dict[str, dict[str, FloatArray]],
    free_thr: dict[str, float | None],
    fixed_thr: dict[str, float] | None,
    clean: dict[str, dict[str, FloatArray]],
) -> dict[str, float]:
    """Print the per-group table; return each detector's NAB-optimised threshold on this corpus."""
    prof = PROFILES["standard"]
    swept: dict[str, SweptFile] = {s.key: sweep_file(s.values.size, s.windows) for s in series}
    groups = sorted({s.group for s in series})
    best = {name: score_corpus(swept, sc, prof).threshold for name, sc in scores.items()}
    use = fixed_thr or best
    print(
        f"{len(series)} series, {sum(s.values.size for s in series):,} rows, "
        f"{sum(len(s.windows) for s in series)} windows; NAB standard profile"
    )
    head = "threshold chosen on the development seeds" if fixed_thr else "NAB-optimised on this corpus"
    print(f"columns: score at the {head} (thr) | at the label-free threshold (free) | FE/1k on clean twins at thr")
    names = list(scores)
    print(f"{'group':<18}" + "".join(f"{n[:13]:>15}" for n in names))
    print(f"{'thr':<18}" + "".join(f"{use[n]:>15.4f}" for n in names))
    for g in [*groups, "ALL"]:
        keys = [s.key for s in series if g in ("ALL", s.group)]
        sw = {k: swept[k] for k in keys}
        cells = []
        for n in names:
            at = score_corpus(sw, {k: scores[n][k] for k in keys}, prof, threshold=use[n]).normalized
            cell = f"{at:.1f}"
            if n in free_scores or free_thr[n] is not None:
                src = free_scores.get(n, scores[n])
                thr = 0.5 if n in free_scores else float(free_thr[n])  # type: ignore[arg-type]
                fr = score_corpus(sw, {k: src[k] for k in keys}, prof, threshold=thr).normalized
                cell += f"|{fr:.1f}"
            cells.append(f"{cell:>15}")
        print(f"{g:<18}" + "".join(cells))
    if clean:
        fe = [false_episode_rate(clean[n], use[n]) if n in clean else float("nan") for n in names]
        print(f"{'FE/1k clean':<18}" + "".join(f"{x:>15.2f}" for x in fe))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--per-group", type=int, default=20)
    ap.add_argument("--peers", default="default,windowed_gaussian,river_hst,adtk,stl_esd,pyod_iforest,pyod_ecod")
    ap.add_argument("--cache", type=Path, default=None, help="cache scores here (per seed and detector)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a default setting")
    ap.add_argument(
        "--free", default=",".join(FREE_SCORERS), help="PyOD detectors whose own labels are also run (a second fit)"
    )
    ap.add_argument("--threshold-from", default="", help="seeds whose NAB-optimised thresholds are applied")
    ap.add_argument(
        "--clean", default="default,windowed_gaussian", help="detectors also run on the clean twins (false episodes)"
    )
    args = ap.parse_args()
    cfg = dict(NAB_DEFAULT)
    suffix = ""
    for item in args.set:
        key, _, value = item.partition("=")
        cfg[key] = type(getattr(KernelParams(), key))(float(value))
        suffix += f"_{key}={value}"
    table = peers(cfg)
    names = [n.strip() for n in args.peers.split(",") if n.strip()]

    def collect(seeds: list[int]) -> tuple[list[Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        series: list[Any] = []
        scores: dict[str, dict[str, FloatArray]] = {n: {} for n in names}
        with_free = {n.strip() for n in args.free.split(",")}
        free: dict[str, dict[str, FloatArray]] = {n: {} for n in names if n in FREE_SCORERS and n in with_free}
        clean_names = {n.strip() for n in args.clean.split(",")} & set(names)
        clean: dict[str, dict[str, FloatArray]] = {n: {} for n in names if n in clean_names}
        for seed in seeds:
            batch = telemetry.generate(seed, args.per_group)
            series += batch
            for n in names:
                tag = f"{seed}-{args.per_group}/{n}{suffix if n == 'default' else ''}"
                t0 = time.perf_counter()
                scores[n].update(run(table[n][0], batch, args.cache, tag))
                if n in free:
                    free[n].update(run(FREE_SCORERS[n], batch, args.cache, tag + "-free"))
                if n in clean:
                    clean[n].update(run(table[n][0], batch, args.cache, tag + "-clean", clean=True))
                print(f"  seed {seed} {n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        return series, scores, free, clean

    fixed = None
    if args.threshold_from:
        dev_series, dev_scores, dev_free, dev_clean = collect([int(s) for s in args.threshold_from.split(",")])
        print(f"Development seeds {args.threshold_from} (thresholds chosen here):")
        fixed = report(dev_series, dev_scores, dev_free, {n: table[n][1] for n in names}, None, dev_clean)
        print()
    series, scores, free, clean = collect([int(s) for s in args.seeds.split(",")])
    print(f"Seeds {args.seeds}:")
    report(series, scores, free, {n: table[n][1] for n in names}, None, clean)
    if fixed:
        print(f"\nSeeds {args.seeds} at the thresholds of seeds {args.threshold_from}:")
        report(series, scores, free, {n: table[n][1] for n in names}, fixed, clean)


if __name__ == "__main__":
    main()
