"""Generalisation protocol for detector changes (issue 12): what a setting is worth on data it was not chosen on.

Usage: python bench/generalisation.py [--nab /work/shared/data/nab] [--detectors default,windowed_gaussian]
       [--seed 9090] [--per-family 40] [--search 0]

Reports, for each detector, in one run:
  1. NAB, all files: the score per profile with the threshold optimised on the whole corpus (NAB's protocol), the
     leave-one-category-out estimate (the threshold — and with ``--search N``, one of N random configurations —
     chosen on the other categories, the held-out category scored with it), and the score at the detector's
     label-free default threshold (what tunewatch runs for a user, chosen without any labels);
  2. the synthetic robustness suite (``tunewatch.evaluate.synthetic``, a seed never used for tuning): per family,
     the NAB standard score at the NAB-optimised threshold and at the label-free one, and false episodes per
     1,000 points on the same series without anomalies.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds scripts named like standard modules (http.py): keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from tunewatch.detect.defaults import NAB_DEFAULT  # noqa: E402
from tunewatch.detect.detectors import EnsembleDetector  # noqa: E402
from tunewatch.detect.kernel_detector import KernelParams  # noqa: E402
from tunewatch.evaluate.generalise import (  # noqa: E402
    false_episode_rate,
    fixed_threshold_score,
    leave_one_group_out,
)
from tunewatch.evaluate.nab import load_corpus, load_windows, run_detector, sweep_corpus  # noqa: E402
from tunewatch.evaluate.nab_score import PROFILES, FloatArray, SweptFile, score_corpus, sweep_file  # noqa: E402
from tunewatch.evaluate.registry import LABEL_FREE_THRESHOLDS, nab_scorer  # noqa: E402
from tunewatch.evaluate.synthetic import DEV_SEED, HELD_OUT_SEED, generate  # noqa: E402

#: Settings the random search (``--search``) draws from, around the default.
SEARCH_SPACE: dict[str, list[Any]] = {
    "alpha": [0.01, 0.03, 0.1], "clip": [1.5, 2.0, 3.0], "cusum_h": [10, 20, 40], "cusum_k": [1, 2],
    "tail_prior": [30, 100, 300], "tail_heavy": [0.01, 0.1], "tail_decay": [0.99, 0.995, 0.999],
    "damp": [0.2, 0.5], "episode_weight": [0.0, 0.5, 1.0], "spread_frac": [0.0, 0.1, 0.3],
}  # fmt: skip


def _sample(rng: np.random.Generator, default: dict[str, Any]) -> dict[str, Any]:
    """One configuration drawn from the search space around ``default``."""
    cfg = dict(default)
    for key, choices in SEARCH_SPACE.items():
        cfg[key] = choices[int(rng.integers(len(choices)))]
    return cfg


def _scorer(name: str, default: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The registered detector, or for "default" the default settings with this run's ``--set`` overrides."""
    return _scorer_of(default) if name == "default" else nab_scorer(name)


def _scorer_of(cfg: dict[str, Any]):  # type: ignore[no-untyped-def]
    def score(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
        return EnsembleDetector(**cfg).chunk(t_ms, values).score

    return score


def nab_report(nab_dir: Path, names: list[str], default: dict[str, Any], search: int, seed: int) -> dict[str, float]:
    """NAB whole-corpus, leave-one-category-out and label-free scores; returns the NAB-optimised thresholds."""
    corpus = load_corpus(nab_dir / "data")
    swept = sweep_corpus(corpus, load_windows(nab_dir / "labels" / "combined_windows.json"))
    print(f"NAB: {len(corpus)} files, {sum(s.values.size for s in corpus):,} points")
    print(f"{'detector':<20}{'profile':<20}{'whole':>7}{'thr':>7}{'LOCO':>7}{'free':>7}  LOCO choices")
    thresholds = {}
    for name in names:
        t0 = time.perf_counter()
        configs = {name: run_detector(corpus, _scorer(name, default))}
        if search and name == "default":
            rng = np.random.default_rng(seed)
            for i in range(search):
                configs[f"search{i}"] = run_detector(corpus, _scorer_of(_sample(rng, default)))
        free = LABEL_FREE_THRESHOLDS.get(name, 0.5)
        for pname, prof in PROFILES.items():
            whole = score_corpus(swept, configs[name], prof)
            if pname == "standard":
                thresholds[name] = whole.threshold
            loco = leave_one_group_out(swept, configs, prof)
            fixed = fixed_threshold_score(swept, configs[name], prof, free)
            picks = ", ".join(f"{h.group[:8]}:{h.threshold:.3f}" for h in loco.held_out)
            print(
                f"{name:<20}{pname:<20}{whole.normalized:>7.1f}{whole.threshold:>7.3f}{loco.normalized:>7.1f}"
                f"{fixed:>7.1f}  {picks}"
            )
        print(f"{'':<20}({time.perf_counter() - t0:.1f} s, {len(configs)} configuration(s))")
    return thresholds


def synthetic_report(
    names: list[str],
    default: dict[str, Any],
    thresholds: dict[str, float],
    seed: int,
    per_family: int,
    families: list[str] | None = None,
) -> None:
    """Per family: NAB standard score at the NAB-optimised and label-free thresholds, false episodes/1,000."""
    series = generate(seed, per_family, families)
    fams = sorted({s.key.split("/")[0] for s in series})
    prof = PROFILES["standard"]
    print(f"\nSynthetic suite, seed {seed}: {len(series)} series in {len(fams)} families")
    print(f"{'detector':<20}{'family':<15}{'NAB thr':>9}{'free':>7}{'best':>7}{'at':>7}{'FE/1k':>7}{'FE/1k free':>11}")
    for name in names:
        scorer = _scorer(name, default)
        free = LABEL_FREE_THRESHOLDS.get(name, 0.5)
        rows = []
        for fam in [*fams, "ALL"]:
            group = [s for s in series if fam in ("ALL", s.key.split("/")[0])]
            swept: dict[str, SweptFile] = {s.key: sweep_file(s.values.size, s.windows) for s in group}
            scores = {s.key: np.nan_to_num(scorer(s.t_ms, s.values), nan=0.0) for s in group}
            clean = {s.key: np.nan_to_num(scorer(s.t_ms, s.clean), nan=0.0) for s in group}
            at_nab = score_corpus(swept, scores, prof, threshold=thresholds[name]).normalized
            at_free = score_corpus(swept, scores, prof, threshold=free).normalized
            best_score = score_corpus(swept, scores, prof)
            best = best_score.normalized
            fe_nab = false_episode_rate(clean, thresholds[name])
            fe_free = false_episode_rate(clean, free)
            rows.append(
                f"{name:<20}{fam:<15}{at_nab:>9.1f}{at_free:>7.1f}{best:>7.1f}{best_score.threshold:>7.3f}{fe_nab:>7.2f}{fe_free:>11.2f}"
            )
        print("\n".join(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nab", type=Path, default=Path("/work/shared/data/nab"))
    ap.add_argument("--detectors", default="default,windowed_gaussian")
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED, help=f"synthetic suite seed (development: {DEV_SEED})")
    ap.add_argument("--per-family", type=int, default=40)
    ap.add_argument("--search", type=int, default=0, help="random configurations inside the LOCO choice")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a default setting")
    ap.add_argument("--families", default="", help="comma-separated suite families (default: all)")
    ap.add_argument(
        "--suite-only",
        action="store_true",
        help="skip NAB (the suite is scored at the label-free "
        "threshold and its own best; the NAB-threshold column then uses the label-free one)",
    )
    args = ap.parse_args()
    default = dict(NAB_DEFAULT)
    for item in args.set:
        key, _, value = item.partition("=")
        kind = type(getattr(KernelParams(), key))  # the setting's own type (int, float, bool)
        default[key] = kind(float(value))
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    if args.suite_only:
        thresholds = {name: LABEL_FREE_THRESHOLDS.get(name, 0.5) for name in names}
    else:
        thresholds = nab_report(args.nab, names, default, args.search, args.seed)
    families = [f.strip() for f in args.families.split(",") if f.strip()] or None
    if args.per_family > 0:
        synthetic_report(names, default, thresholds, args.seed, args.per_family, families)


if __name__ == "__main__":
    main()
