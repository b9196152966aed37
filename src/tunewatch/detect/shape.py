"""An optional second evidence channel for the kernel: is the recent *shape* of the residuals one seen before?

ARTime (74.9 on NAB) judges the novelty of a short, downsampled window of a series against the categories of
windows it has seen (adaptive resonance). This is a streaming, self-calibrating channel in that spirit, on the
kernel's standardised residuals ``z`` (the forecast's deviations in its own error scale: no whole-file min/max,
only the past, and level and seasonality already removed):

* the last ``blocks`` × ``block`` residuals (clipped at ±4) are reduced to ``blocks`` block means and ``blocks``
  block mean absolute successive differences (how rough the block is);
* the vector's distance to its nearest **prototype** (mean absolute difference over the features) among at most
  ``protos`` kept per series decides: within the **vigilance** radius, the prototype learns the vector (gain
  1 / its decayed count, at least 0.05); beyond it, a **new category** is made in place of the least used one;
* a new category's evidence is −log10 of how often this series has made new categories lately (a decayed count
  over ``shape_decay``'s memory, smoothed with a prior of 1 in 100 points worth 20 points): a series whose
  residual shapes keep changing says little by changing again, one that settled into a repertoire says a lot;
* the evidence is reported once per episode like the point channel's (damped by the kernel's ``damp`` unless it
  beats its own decaying peak), and the kernel shows the larger of the two channels (``shape_weight`` × this one).

Off by default (``shape_blocks`` 0): measured on NAB's 58 files and the synthetic suite's development seed it
detects one more NAB window (``art_increase_spike_density``, a change of spike density no point is extreme in)
and is otherwise on the same frontier as the point channel (docs/benchmarks.md, issue 12); it costs 582 state
values per series with the settings measured and about half of the kernel's speed.

The block lives at the end of the kernel's state row, from ``base``:
``[seen, used, count inflation, created, points, peak] + scratch features + ring + counts + prototypes``.
"""

from __future__ import annotations

import math
from typing import Final

import numba
import numpy as np

SH_SEEN, SH_USED, SH_INFL, SH_CREATED, SH_POINTS, SH_PEAK = range(6)
SH_HEADER: Final = 6
#: residuals are clipped here before they form a shape (one wild point must not define a category)
Z_CLIP: Final = 4.0
#: prior of the new-category rate: one in a hundred points, worth twenty points
PRIOR_RATE: Final = 0.01
PRIOR_POINTS: Final = 20.0
#: per-point decay of the prototypes' use counts, and the least a prototype learns from a member
COUNT_DECAY: Final = 0.999
MIN_GAIN: Final = 0.05


def shape_width(blocks: int, block: int, protos: int) -> int:
    """State values of the shape channel (0 when it is off)."""
    if blocks <= 0:
        return 0
    features = 2 * blocks
    return SH_HEADER + features + blocks * block + protos + protos * features


@numba.njit(cache=True, inline="always", error_model="numpy")
def shape_evidence(
    s: np.ndarray,
    base: int,
    z: float,
    blocks: int,
    block: int,
    protos: int,
    vigilance: float,
    rate_decay: float,
    damp: float,
    decay: float,
) -> float:
    """Push residual ``z`` into the series' shape window and return the channel's (damped) evidence in decades."""
    features = 2 * blocks
    width = blocks * block
    feat = base + SH_HEADER
    ring = feat + features
    counts = ring + width
    proto = counts + protos
    seen = int(s[base + SH_SEEN])
    s[ring + seen % width] = min(max(z, -Z_CLIP), Z_CLIP)
    seen += 1
    s[base + SH_SEEN] = seen
    if s[base + SH_INFL] <= 0.0:
        s[base + SH_INFL] = 1.0
    evidence = 0.0
    created = False
    if seen >= width:
        # features, oldest block first: block mean, block mean absolute successive difference
        oldest = seen % width  # the ring's oldest value (one modulo per point, not one per value)
        for j in range(blocks):
            acc = 0.0
            rough = 0.0
            prev = 0.0
            for b in range(block):
                pos = oldest + j * block + b
                v = s[ring + (pos - width if pos >= width else pos)]
                acc += v
                if b > 0:
                    rough += abs(v - prev)
                prev = v
            s[feat + j] = acc / block
            s[feat + blocks + j] = min(rough / max(block - 1, 1), 2.0 * Z_CLIP)
        used = int(s[base + SH_USED])
        best = -1
        best_d = 1e300
        for q in range(used):
            d = 0.0
            row = proto + q * features
            for f in range(features):
                d += abs(s[feat + f] - s[row + f])
                if d >= best_d:  # already no nearer: the rest cannot make it so (the same choice, sooner)
                    break
            if d < best_d:
                best_d = d
                best = q
        infl = s[base + SH_INFL] / COUNT_DECAY  # every use count decays: the newer ones weigh more instead
        if best < 0 or best_d / features > vigilance:
            created = True
            slot = used
            if used < protos:
                s[base + SH_USED] = used + 1
            else:  # the least used category makes room
                slot = 0
                for q in range(1, protos):
                    if s[counts + q] < s[counts + slot]:
                        slot = q
            row = proto + slot * features
            for f in range(features):
                s[row + f] = s[feat + f]
            s[counts + slot] = infl
        else:
            s[counts + best] += infl
            g = max(infl / s[counts + best], MIN_GAIN)
            row = proto + best * features
            for f in range(features):
                s[row + f] += g * (s[feat + f] - s[row + f])
        if infl > 1e100:
            for q in range(protos):
                s[counts + q] /= infl
            infl = 1.0
        s[base + SH_INFL] = infl
    # how often this series made new categories lately: a new one's surprise
    if created:
        rate = (s[base + SH_CREATED] + PRIOR_RATE * PRIOR_POINTS) / (s[base + SH_POINTS] + PRIOR_POINTS)
        evidence = -math.log10(rate)
    s[base + SH_CREATED] = s[base + SH_CREATED] * rate_decay + (1.0 if created else 0.0)
    s[base + SH_POINTS] = s[base + SH_POINTS] * rate_decay + 1.0
    peak = s[base + SH_PEAK]
    shown = evidence if evidence > peak else evidence * damp
    s[base + SH_PEAK] = max(peak * decay, evidence)
    return shown
