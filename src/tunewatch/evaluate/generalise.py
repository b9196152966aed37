"""Generalisation estimates for detector settings: leave-one-category-out and fixed, label-free thresholds.

A NAB score with the threshold (and the detector settings) chosen on the very files it is reported on says how
well the settings fit those files, not how they do on unseen data. :func:`leave_one_group_out` estimates the
latter: for each group (a NAB category, a synthetic family), every choice — which candidate configuration and
which threshold — is made on the *other* groups only, then the held-out group is scored with that choice; the
held-out totals are summed and normalised like a corpus score, so the figure sits beside the whole-corpus one.

:func:`fixed_threshold_score` scores at a threshold given in advance (the label-free default a user runs),
:func:`synthetic_threshold` is how that default is chosen (on the synthetic development suite, never on real
data's labels), and :func:`false_episode_rate` counts how often a detector fires on data with no anomalies
(episodes per 1,000 points: a run of consecutive detections is one episode), the false-alarm cost a user
actually pays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from tunewatch.evaluate.nab_score import (
    PROFILES,
    FloatArray,
    Profile,
    SweptFile,
    probation_length,
    score_corpus,
    sweep_file,
)
from tunewatch.evaluate.synthetic import DEV_SEED, generate

V = TypeVar("V")

#: file key → group (NAB: the category, the part of the key before ``/``)
Grouping = Callable[[str], str]


def category_of(key: str) -> str:
    """The NAB category of a file key ``CATEGORY/FILE.csv``."""
    return key.split("/", 1)[0]


@dataclass(slots=True)
class Totals:
    """Raw, null and perfect totals of a set of files, normalised as NAB does.

    >>> t = Totals()
    >>> t.add(raw=3.0, null=-2.0, perfect=8.0)
    >>> t.add(raw=1.0, null=-1.0, perfect=2.0)
    >>> round(t.normalized, 1)
    53.8
    """

    raw: float = 0.0
    null: float = 0.0
    perfect: float = 0.0

    def add(self, raw: float, null: float, perfect: float) -> None:
        """Accumulate another set of files."""
        self.raw += raw
        self.null += null
        self.perfect += perfect

    @property
    def normalized(self) -> float:
        """100 · (raw − null) / (perfect − null); for files without windows, the false-positive cost only."""
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span > 0 else self.raw


@dataclass(slots=True)
class HeldOut:
    """The choice made without one group, and that group's score with it.

    >>> h = HeldOut("realKnownCause", "robust", threshold=0.7, train_score=61.2, raw=2.0, null=-3.0, perfect=7.0)
    >>> t = Totals(); t.add(h.raw, h.null, h.perfect); t.normalized
    50.0
    """

    group: str
    config: str
    threshold: float
    train_score: float  # normalised score of the choice on the other groups
    raw: float
    null: float
    perfect: float


@dataclass(slots=True)
class GeneralisationReport:
    """Leave-one-group-out result for one profile.

    >>> report = GeneralisationReport("standard", [HeldOut("a", "robust", 0.7, 60.0, 2.0, -3.0, 7.0),
    ...                                            HeldOut("b", "robust", 0.8, 55.0, 1.0, -1.0, 3.0)])
    >>> round(report.normalized, 1)
    50.0
    """

    profile: str
    held_out: list[HeldOut] = field(default_factory=list)

    @property
    def normalized(self) -> float:
        """The held-out totals of every group, normalised together (comparable with the whole-corpus score)."""
        t = Totals()
        for h in self.held_out:
            t.add(h.raw, h.null, h.perfect)
        return t.normalized


def _subset(d: Mapping[str, V], keys: list[str]) -> dict[str, V]:
    return {k: d[k] for k in keys}


def leave_one_group_out(
    swept: Mapping[str, SweptFile],
    scores_by_config: Mapping[str, Mapping[str, FloatArray]],
    profile: Profile,
    group_of: Grouping = category_of,
) -> GeneralisationReport:
    """For each group: pick the configuration and threshold that maximise the score of the other groups, then
    score the group with them. ``scores_by_config`` maps a configuration name to its scores per file."""
    groups = sorted({group_of(k) for k in swept})
    report = GeneralisationReport(profile.name)
    for g in groups:
        train = [k for k in swept if group_of(k) != g]
        test = [k for k in swept if group_of(k) == g]
        best: tuple[float, str, float] | None = None
        for name, scores in scores_by_config.items():
            fit = score_corpus(_subset(swept, train), _subset(scores, train), profile)
            fitted = Totals(fit.raw, fit.null, fit.perfect).normalized  # also when the others have no window
            if best is None or fitted > best[0]:
                best = (fitted, name, fit.threshold)
        assert best is not None, "no configuration to choose from"
        train_score, name, threshold = best
        held = score_corpus(
            _subset(swept, test),
            _subset(scores_by_config[name], test),
            profile,
            threshold=threshold,
        )
        report.held_out.append(HeldOut(g, name, threshold, train_score, held.raw, held.null, held.perfect))
    return report


def fixed_threshold_score(
    swept: Mapping[str, SweptFile], scores: Mapping[str, FloatArray], profile: Profile, threshold: float
) -> float:
    """Normalised score at a threshold chosen in advance (no labels consulted)."""
    r = score_corpus(dict(swept), dict(scores), profile, threshold=threshold)
    return Totals(r.raw, r.null, r.perfect).normalized


def false_episode_rate(scores: Mapping[str, FloatArray], threshold: float) -> float:
    """Detection episodes (runs of consecutive scores ≥ ``threshold``) per 1,000 scored points, after NAB's
    probation period of each series; meant for series without anomalies, where every episode is false."""
    episodes = 0
    points = 0
    for sc in scores.values():
        a = np.nan_to_num(np.asarray(sc, dtype=np.float64), nan=0.0)
        start = int(probation_length(a.size))
        hit = a[start:] >= threshold
        points += hit.size
        if hit.size:
            episodes += int(hit[0]) + int(np.count_nonzero(hit[1:] & ~hit[:-1]))
    return 1000.0 * episodes / points if points else 0.0


def synthetic_threshold(
    scorer: Callable[[np.ndarray, FloatArray], FloatArray],
    seed: int = DEV_SEED,
    per_family: int = 40,
    profile: Profile = PROFILES["standard"],
) -> float:
    """The threshold that maximises ``profile``'s NAB-rule score over the synthetic suite of ``seed``, every
    family pooled (one threshold for all, as a user runs it): how tunewatch's label-free default is chosen.

    Only the suite's own, generated labels are consulted, never a real data set's, so NAB and any other corpus
    scored at this threshold are held out from it.

    >>> def spikes(t_ms, values):  # scores 1 where a value is far from the series' median
    ...     return (np.abs(values - np.nanmedian(values)) > 5 * np.nanstd(values)).astype(float)
    >>> synthetic_threshold(spikes, per_family=2) <= 1.0
    True
    """
    series = generate(seed, per_family)
    swept = {s.key: sweep_file(s.values.size, s.windows) for s in series}
    scores = {s.key: np.nan_to_num(scorer(s.t_ms, s.values), nan=0.0) for s in series}
    return score_corpus(swept, scores, profile).threshold
