"""Absence and drop detection on small counts: exact count tails over the last few minutes.

A slice that carries a few events a minute (one market's free-tier ads, a small platform) cannot show a drop
in one minute: 0 ads where 2 were expected happens every few hours by chance. Over several minutes it can:
no ad in 5 minutes where 11 were expected happens once in 60,000. :class:`CountTail` judges, for every series
and minute, the last ``m`` minutes taken together for every ``m`` from 1 to :attr:`CountTail.span`:

* the observed sum ``S_m`` against the expected sum ``E_m`` (the expected counts of those minutes, from the
  series' baseline: the detection stage's ``expected``, whose level does not learn an anomaly), where the
  newer half of those minutes is low as well (a drop that has ended is not judged on its old minutes);
* the lower tail ``P(X <= S_m)`` under the negative binomial with mean ``E_m`` and variance
  ``E_m + phi * E_m**2`` (the Poisson when ``phi`` is 0), summed exactly term by term;
* ``phi``, the extra dispersion of the slice beyond Poisson noise (the baseline's own error, traffic that comes
  in bursts), is learnt from the slice's own history: the running mean of ``((S - E)**2 - E) / E**2`` over
  its :attr:`CountTail.learn_span`-minute sums, method of moments, in calm minutes only (no deficit with a tail
  below :attr:`CountTail.calm_p`, no surge beyond :attr:`CountTail.calm_z` deviations: an incident does not
  teach it), shrunk towards a cautious prior (:attr:`CountTail.prior_phi`) until
  :attr:`CountTail.prior_minutes` calm minutes have been seen.

The smallest tail over the lengths is the evidence, corrected for the scan: the minimum of ``span`` correlated
tails is below ``p`` more often than one tail is, by a factor that grows with the slice's rate, found by
simulating pure Poisson series (:func:`scan_factor`, see :data:`SCAN_FACTORS`); the result is a normal quantile
``z`` (negative: a deficit), comparable with the other detectors' deviations, and the length, observed and
expected sums it rests on.

Only deficits are judged (a sum at or above its expectation has no evidence): surges have their own tests.
The scan is one compiled pass over the rows (Numba), the state is per series in arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numba
import numpy as np
from scipy import special

from tunewatch.detect.base import FloatArray, IntArray

#: How much more often the smallest of the 15 tails (lengths 1..15 minutes) falls below ``p`` than ``p``, at most
#: (for ``p`` from 3e-5 to 1e-3, where rules alert): the scan correction. It is smaller for a slice of a few
#: events a minute, which has few distinct sums to scan (0, 1 or 2 events): measured on simulated Poisson series
#: (4 million minutes per rate, known mean, dispersion learnt as in use; ``tests/detect/test_count_tail.py``
#: checks it at several rates) — 0.7-1.7 at 0.5-1 event a minute, 2.1-3.0 at 2, 2.8-3.1 at 3, 2.6-3.8 at 5,
#: 3.9-4.6 at 10, 4.4-4.6 at 20 and 4.2-4.4 at 50. :func:`scan_factor` takes the largest measured below 5 events
#: a minute (interpolated in log rate) and :data:`SCAN_FACTOR` from 5 up: there the measured values are close to
#: it, and its margin is what kept a no-incident simulated day (seed 41) free of a chance PlaysDrop at 8.6 plays a
#: minute. (One factor of 5 for every rate read a small slice's tails as 1.6-3 times less rare than they are:
#: 0 ads in 4 minutes where 12.5 were expected, 4.2 deviations, was scored below 4.)
SCAN_RATES: Final = (1.0, 2.0, 3.0, 5.0)
SCAN_FACTORS: Final = (1.7, 3.0, 3.1, 5.0)
#: The scan correction at high rates (and the largest at any rate).
SCAN_FACTOR: Final = 5.0
#: Deviations at which a score is 0.5: the robust detector's scale (``score_half_z``), so that a rule's
#: ``min_score`` means the same for both kinds of evidence.
SCORE_HALF_Z: Final = 4.0
_NB_TERMS: Final = 200  # lower-tail terms summed exactly; the rest is bounded by a geometric series


@numba.njit(cache=True, error_model="numpy")
def _log_lower_tail(k: float, mean: float, phi: float) -> float:
    """log P(X <= k) for the negative binomial of this ``mean`` and variance ``mean + phi * mean**2``
    (the Poisson when ``phi * mean`` is negligible), for ``k`` below the mean: terms summed from ``k`` down."""
    if mean <= 0.0:
        return 0.0
    if phi * mean < 1e-9:  # Poisson
        log_term = -mean + k * math.log(mean) - math.lgamma(k + 1.0)
    else:
        r = 1.0 / phi
        q = mean / (r + mean)
        log_term = (math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1.0)
                    + r * math.log(r / (r + mean)) + k * math.log(q))  # fmt: skip
    total = 1.0  # in units of the term at k
    term = 1.0
    j = k
    n = 0
    while j >= 1.0 and n < _NB_TERMS:
        ratio = j / mean if phi * mean < 1e-9 else j / ((j - 1.0 + 1.0 / phi) * (mean / (1.0 / phi + mean)))
        term *= ratio
        total += term
        j -= 1.0
        n += 1
        if term < 1e-17 * total:
            break
    if j >= 1.0 and n == _NB_TERMS and ratio < 1.0:  # the rest: at most a geometric series of the last ratio
        total += term * ratio / (1.0 - ratio)
    return min(0.0, log_term + math.log(total))


@numba.njit(cache=True, error_model="numpy")
def _scan(
    windows: np.ndarray, sids: np.ndarray, values: np.ndarray, expected: np.ndarray,
    ring_x: np.ndarray, ring_e: np.ndarray, head: np.ndarray, filled: np.ndarray, last: np.ndarray,
    phi: np.ndarray, seen: np.ndarray,
    learn_span: int, prior_phi: float, prior_minutes: float, warmup: float, memory: float, calm_z: float,
    calm_log_p: float, min_excess: float, min_ratio: float,
    out_logp: np.ndarray, out_m: np.ndarray, out_obs: np.ndarray, out_exp: np.ndarray,
) -> None:  # fmt: skip
    span = ring_x.shape[0]
    minute = 60_000
    cum_x, cum_e = np.zeros(span), np.zeros(span)  # sums of the newest 1..m minutes of the current row
    for r in range(sids.size):
        s = sids[r]
        x, e = values[r], expected[r]
        out_logp[r], out_m[r], out_obs[r], out_exp[r] = 0.0, 0.0, np.nan, np.nan
        if windows[r] != last[s] + minute:
            filled[s] = 0  # not the next minute of the series (a gap): the window starts again
        last[s] = windows[r]
        if not (np.isfinite(x) and np.isfinite(e)) or e < 0.0:
            filled[s] = 0  # warm-up or a missing point: the window starts again
            continue
        h = head[s]
        ring_x[h, s] = max(math.floor(x + 0.5), 0.0)
        ring_e[h, s] = e
        head[s] = (h + 1) % span
        f = min(filled[s] + 1, span)
        filled[s] = f
        n = seen[s]
        # shrunk towards the prior while little is known (a young baseline is itself uncertain)
        disp = (max(phi[s], 0.0) * n + prior_phi * prior_minutes) / (n + prior_minutes)
        total_x, total_e = 0.0, 0.0
        best, best_m, best_x, best_e = 0.0, 0, np.nan, np.nan
        learn_x, learn_e = 0.0, 0.0
        calm = True
        for m in range(1, f + 1):
            i = (h - m + 1) % span
            total_x += ring_x[i, s]
            total_e += ring_e[i, s]
            cum_x[m - 1], cum_e[m - 1] = total_x, total_e
            if m == learn_span:
                learn_x, learn_e = total_x, total_e
            if total_x >= total_e:
                continue
            big = total_e - total_x >= min_excess and total_x * min_ratio <= total_e  # the rule's size guards
            # the newer half of the run must be low too: a drop that has ended is not judged on its old minutes
            half = (m + 1) // 2 - 1
            big = big and cum_x[half] * min_ratio <= cum_e[half] and cum_x[half] < cum_e[half]
            if calm or big:
                lp = _log_lower_tail(total_x, total_e, disp)
                if lp <= calm_log_p:
                    calm = False
                if big and lp < best and n >= warmup:
                    best, best_m, best_x, best_e = lp, m, total_x, total_e
        out_logp[r], out_m[r], out_obs[r], out_exp[r] = best, best_m, best_x, best_e
        if f >= learn_span and learn_e > 0.0 and calm:  # no drop under way: nothing to unlearn
            d2 = (learn_x - learn_e) ** 2
            if learn_x <= learn_e or d2 <= calm_z * calm_z * (learn_e + disp * learn_e * learn_e):  # no surge
                gain = max(1.0 / (n + 1.0), 1.0 / memory)
                phi[s] += gain * ((d2 - learn_e) / (learn_e * learn_e) - phi[s])
                seen[s] = n + 1


def scan_factor(rate: FloatArray) -> FloatArray:
    """The scan correction (see :data:`SCAN_FACTORS`) for slices of ``rate`` expected events a minute.

    >>> scan_factor(np.array([0.2, 2.0, 4.0, 100.0])).round(2).tolist()
    [1.7, 3.0, 4.17, 5.0]
    """
    safe = np.log(np.clip(np.nan_to_num(rate, nan=SCAN_RATES[-1]), SCAN_RATES[0], SCAN_RATES[-1]))
    return np.interp(safe, np.log(SCAN_RATES), SCAN_FACTORS)


def tail_score(z: FloatArray) -> FloatArray:
    """Score in [0, 1) of deviations ``z``: ``z**2 / (z**2 + SCORE_HALF_Z**2)`` (0.5 at 4 deviations).

    >>> tail_score(np.array([0.0, -4.0, -8.0])).tolist()
    [0.0, 0.5, 0.8]
    """
    return z * z / (z * z + SCORE_HALF_Z**2)


@dataclass(slots=True)
class TailEvidence:
    """The count-tail judgement of each row: ``z`` (normal quantile of the scan-corrected lower tail; 0: no
    deficit or no judgement), the minutes it spans, and the observed and expected sums over them (NaN: none).

    >>> ev = TailEvidence(z=np.array([0.0, -4.5]), points=np.array([0.0, 6.0]), observed=np.array([np.nan, 1.0]),
    ...                   expected=np.array([np.nan, 15.0]))
    >>> tail_score(ev.z).round(2).tolist(), int(ev.points[1])
    ([0.0, 0.56], 6)
    """

    z: FloatArray
    points: FloatArray
    observed: FloatArray
    expected: FloatArray


class CountTail:
    """Drop and absence evidence for many count series from exact tails of their last minutes' sums.

    ``scan`` takes rows in time order (window starts in epoch ms, series ids, observed counts, expected counts;
    each series at most once per minute; a series whose previous row is not the minute before starts its window
    again) and learns from them.

    >>> ct = CountTail()
    >>> sids = np.zeros(45, dtype=np.int64)  # 2 ads a minute for 40 minutes (the warm-up: 30), then none
    >>> ev = ct.scan(np.arange(45) * 60_000, sids, np.r_[np.full(40, 2.0), np.zeros(5)], np.full(45, 2.0))
    >>> [round(float(z), 1) for z in ev.z[-4:]], int(ev.points[-1])  # scan-corrected deviations
    ([-1.6, -2.4, -3.0, -3.5], 5)
    >>> float(ev.observed[-1]), float(ev.expected[-1])
    (0.0, 10.0)
    """

    version = 1

    def __init__(self, span: int = 15, learn_span: int = 5, prior_phi: float = 0.02, prior_minutes: float = 30.0,
                 warmup: float = 30.0, memory: float = 720.0,
                 calm_z: float = 4.0, calm_p: float = 1e-3) -> None:  # fmt: skip
        if span < 1 or not 1 <= learn_span <= span:
            raise ValueError(f"span, learn_span: need 1 <= learn_span <= span, got {span}, {learn_span}")
        #: longest run of minutes judged together
        self.span = span
        #: length of the sums the dispersion is learnt from
        self.learn_span = learn_span
        #: calm minutes of history before the series is judged at all (its dispersion is not known before)
        self.warmup = warmup
        #: the dispersion assumed before any history (0.02: the expected count's relative error about 14 %)
        self.prior_phi = prior_phi
        #: calm minutes after which the learnt dispersion counts half (before: shrunk towards ``prior_phi``)
        self.prior_minutes = prior_minutes
        #: the dispersion's memory in minutes (exponential forgetting after that many)
        self.memory = memory
        #: sums beyond this many deviations above their expectation (a surge) do not teach the dispersion
        self.calm_z = calm_z
        #: nor do minutes whose scan finds a deficit with a (raw) tail below this (a drop under way)
        self.calm_p = calm_p
        self._ring_x = np.zeros((span, 0))
        self._ring_e = np.zeros((span, 0))
        self._head = np.zeros(0, dtype=np.int64)
        self._filled = np.zeros(0, dtype=np.int64)
        self._last = np.zeros(0, dtype=np.int64)
        self._phi = np.zeros(0)
        self._seen = np.zeros(0)

    def _grow(self, size: int) -> None:
        extra = size - self._head.size
        if extra <= 0:
            return
        self._ring_x = np.concatenate([self._ring_x, np.zeros((self.span, extra))], axis=1)
        self._ring_e = np.concatenate([self._ring_e, np.zeros((self.span, extra))], axis=1)
        self._head = np.concatenate([self._head, np.zeros(extra, dtype=np.int64)])
        self._filled = np.concatenate([self._filled, np.zeros(extra, dtype=np.int64)])
        self._last = np.concatenate([self._last, np.full(extra, -(2**62), dtype=np.int64)])
        self._phi = np.concatenate([self._phi, np.zeros(extra)])
        self._seen = np.concatenate([self._seen, np.zeros(extra)])

    def scan(
        self, windows: IntArray, sids: IntArray, values: FloatArray, expected: FloatArray, *,
        min_excess: float = 0.0, min_ratio: float = 1.0,
    ) -> TailEvidence:  # fmt: skip
        """Judge and learn rows in time order (NaN value or expected: no judgement, the window restarts).

        Only runs of minutes whose drop is big enough to matter are judged: at least ``min_excess`` events
        missing, and at most ``1 / min_ratio`` of the expected sum observed (a rule's size guards)."""
        n = sids.size
        if n:
            self._grow(int(sids.max()) + 1)
        logp, points, obs, exp = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        _scan(windows.astype(np.int64), sids.astype(np.int64), values.astype(np.float64),
              expected.astype(np.float64), self._ring_x, self._ring_e, self._head, self._filled, self._last,
              self._phi, self._seen, self.learn_span, float(self.prior_phi), float(self.prior_minutes),
              float(self.warmup), float(self.memory), float(self.calm_z), math.log(self.calm_p),
              float(min_excess), float(min_ratio), logp, points, obs, exp)  # fmt: skip
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(points > 0, exp / np.maximum(points, 1.0), np.nan)  # expected events a minute of the run
        p = np.minimum(np.exp(logp) * scan_factor(rate), 0.5)
        z = np.where(logp < 0.0, special.ndtri(np.maximum(p, 1e-300)), 0.0)
        return TailEvidence(z=np.minimum(z, 0.0), points=points, observed=obs, expected=exp)

    @property
    def dispersion(self) -> FloatArray:
        """The extra dispersion ``phi`` learnt for each series (before shrinking towards the Poisson)."""
        return self._phi.copy()

    def state_dict(self) -> dict[str, Any]:
        """The per-series arrays (ring of the last minutes, dispersion), with ``version``."""
        return {"version": self.version, "ring_x": self._ring_x.copy(), "ring_e": self._ring_e.copy(),
                "head": self._head.copy(), "filled": self._filled.copy(), "last": self._last.copy(),
                "phi": self._phi.copy(),
                "seen": self._seen.copy()}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; ``ValueError`` naming the field when it does not fit."""
        if state.get("version") != self.version:
            raise ValueError(f"count-tail state version {state.get('version')!r} != {self.version}")
        ring_x, ring_e = np.asarray(state["ring_x"], dtype=np.float64), np.asarray(state["ring_e"], dtype=np.float64)
        if ring_x.ndim != 2 or ring_x.shape[0] != self.span or ring_e.shape != ring_x.shape:
            raise ValueError(f"count-tail state 'ring_x': expected ({self.span}, series), got {ring_x.shape}")
        size = ring_x.shape[1]
        arrays = {k: np.asarray(state[k]) for k in ("head", "filled", "last", "phi", "seen")}
        for k, a in arrays.items():
            if a.shape != (size,):
                raise ValueError(f"count-tail state {k!r}: expected ({size},), got {a.shape}")
        self._ring_x, self._ring_e = ring_x.copy(), ring_e.copy()
        self._head, self._filled = arrays["head"].astype(np.int64), arrays["filled"].astype(np.int64)
        self._last = arrays["last"].astype(np.int64)
        self._phi, self._seen = arrays["phi"].astype(np.float64), arrays["seen"].astype(np.float64)
