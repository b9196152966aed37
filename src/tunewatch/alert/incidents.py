"""Incidents, not alert storms: root-cause folding of the alerts that one incident raises on many slices.

When a slice turns anomalous, its parents (coarser slices containing it) and sometimes its siblings do too: a
platform's startup regression raises the p95 of the whole service, of every market and of every CDN. The
folder turns those into one notification on the slice that explains the others, as ThirdEye's and Datadog
Watchdog's root-cause analysis do:

* **re-rooting** (drill-down): when an alert fires on a slice, the finer slices of the same metric in the same
  minute are examined. A child explains the parent when it carries at least :attr:`min_share` of the excess
  of its sibling group (the children of one dimension set under the parent; the excess is the deviation from
  expected, weighted by the denominator for ratios and quantiles) and that share is at least :attr:`min_lift`
  times its share of the group's volume (a child holding 70 % of the traffic and 70 % of the excess explains
  nothing), or, where excesses count events, its siblings were spared what hit it (3 deviations of a count
  below the excess they would carry at its rate: a market's main CDN, three quarters of its plays, failing alone).
  The finest such child becomes the alert's slice (entity slices — one track, one artist — are the
  finest), and the drill-down goes on from it;
* **folding**: an alert that fires while an incident is open is folded into it, with no notification of its
  own, when its root slice is the incident's, when its slice is contained in the incident's, when it contains
  the incident's slice and that slice carries at least half of its excess or what it does not carry is within its
  own noise (under 3 deviations at its score: the whole service's streams lifted by a bot farm's artist;
  otherwise it is a larger incident, notified on its own: ads falling in every market, seen first on the largest
  one's free tier), when it is a count of traffic on a part of a slice whose traffic the incident took down that
  falls no more than the traffic did (a market's free-tier ads during its traffic drop, at any minute), or when the
  incident's slice carries at least half of its excess (a sibling such as one CDN during a
  platform regression), or when it is on the rest of the traffic (``_other``) of the incident's metric. This
  holds across metrics (PlaysDrop on each market during a global failure incident) for alerts that started
  within ``together_ms`` (5 minutes) of the incident, the excess being read in the alert's own metric: a
  finer slice that explains the incident's slice by the drill-down's test is a better root and is notified
  on its own; on another metric, a finer slice is folded only where the incident's slice moves the same way
  in that metric, and a coarser one only where the incident's slice carries at least half of its excess;
  where that metric is not watched on the incident's slice, only an alert that fired after the incident's
  (same-minute alerts that cannot be weighed against each other do not say which is the root). Excesses
  are per minute, those the detector pooled (several minutes) where it pooled, in drill-down and folding
  alike. The incident's alert lists the folded ones under ``also_affected`` (annotation and explanation)
  with the share of their excess the root slice accounts for. Alerts of one metric that fire in the same minute
  are weighed largest excess first (the CDN before the markets it serves), whatever order the engine lists
  them in; a sibling of the incident's slice (another CDN of its market) joins it while it is live when their
  common parent moves the same way; a finer slice that would be a better root is a detail, folded, when it
  started more than ``together_ms`` after the incident (a bot farm's tracks an hour into it);
* the incident resolves (one ``resolved`` notification) when every alert folded into it has resolved. Once
  the alert that opened it has resolved, and for ``aftermath_ms`` (30 minutes) after the incident resolved,
  it takes only its aftermath (after it resolved, silently): the alerts it explains on other slices, on a
  metric it took while live and on the other side (series returning from a level they had learnt during
  it): the end of an incident is not a new one; its own deviation again, a metric it never moved, or
  anything on its own slice, is;
* **recovery**: the alert that opened an incident may resolve while its slice is still away (its detector
  adopts a lasting drop after an hour, or learns part of a slow one), so the aftermath is not timed from that
  resolution. The folder watches the slice's values from then on (:meth:`IncidentFolder.watching`; the engine
  passes each batch's values) until their mean over the last 5 minutes is back past the midpoint of its normal and
  anomalous values; for ``recovery_ms`` (65 minutes: the detector adopts a return as lasting after 60) after
  that return, series that learnt part of the incident's level while it lasted read its return as the opposite
  deviation (a market back after a two-hour drop: its artists' and tracks' streams "surge"). Such an alert, on a
  slice overlapping the incident's (its own slice on another metric included), in a metric family the incident
  took, on the other side, and no larger than the return can make it (a series that had learnt all of a fall to
  a fraction ``r`` rises at most ``1 / r``-fold; a count at most by the events a minute the slice lost, give or
  take its own counting noise), is the incident's recovery: folded, unsaid. A rise beyond that (a bot farm right
  after the market came back), another metric family, or a slice apart from the incident's is a new incident; so is
  a deviation of a slice the incident never took (not within it, not containing it, not an entity) that began
  more than ``together_ms`` after the return (another market's traffic drop 17 minutes after a bot farm ended);
* **continuation**: while the watched slice of an incident whose opening alert resolved is seen still away (the
  detector adopted a two-hour bot farm or a three-hour regression as the new normal), an alert on its own
  slice, within it, or on a slice it took while live, deviating the way it took that metric family, is the same
  change going on: folded, unsaid (for at most :data:`WATCH_MS`).

* **group wait** (as Alertmanager's ``group_wait``, but for the root cause): a new incident whose slice is a
  small part of a larger movement — a coarser slice of its metric (a count, sum or ratio, whose excess adds up
  over slices; not a quantile), watched by its rule, deviates the same way beyond 3 deviations
  (:data:`PARENT_SCORE`) with over twice its excess, and the slice does not explain it by the drill-down's
  test — holds its first notification for up to ``group_wait_ms`` (2 minutes): small slices of a global
  traffic drop reach their evidence a minute before the whole service does. When the parent's alert fires
  within the wait, it opens the incident and the held ones fold into it as "also affected" (re-rooting
  upwards); their notifications are never sent. When the wait ends without it, the held incidents of that
  parent's movement become one: folded into one already notified, or, when several are held, one notification
  on the parent (the root of their joint deviation, though its own rule did not fire); alone, its own. A held
  notification carries ``notified_at`` (event time it was sent), from which the backtest times detection. An
  incident whose slice explains its parent, or whose parent does not move, is notified at once;
* an absence (no events where some were expected) is part of a live incident that took a volume metric
  (:data:`VOLUME`) down over its slice (markets going silent one by one during a traffic drop); in the aftermath
  the volume metrics count as one, and any part of the incident's slice returning on the other side is its end.

Only anomaly alerts (and absences, as above) are folded: a threshold or burn-rate condition is notified as it is.

Labels stay Alertmanager's: alertname, severity, metric and the root slice's dimension fields; the folded
slices are annotations, so existing receivers, silences and inhibitions work unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import polars as pl

from tunewatch.alert.explain import dims_text
from tunewatch.alert.model import Alert
from tunewatch.detect.count_tail import SCORE_HALF_Z
from tunewatch.process.catalogue import METRICS
from tunewatch.process.dimensions import DIMENSION_SETS, OTHER, TOP_K_FIELDS, dimension_set
from tunewatch.schema import DIMENSION_FIELDS

WINDOW_MS: Final = 60_000
#: A batch's values of one slice of one metric: (metric, dimensions) → (windows, values), ascending.
SliceValues = Callable[[str, Mapping[str, str]], tuple[Any, Any]]
#: The share an incident explains of an alert it takes without weighing it (a sibling slice): shown as unknown.
UNWEIGHED: Final = float("nan")
_FIELDS: Final = set(DIMENSION_FIELDS)
#: The detector score (``z**2 / (z**2 + 16)``) from which a coarser slice counts as deviating for the group wait:
#: 3 deviations, the detector's ``clip`` (beyond it, it stops learning: an anomaly in the making).
PARENT_SCORE: Final = 9 / 25
#: The minutes whose mean value says an incident's slice is back (past the midpoint between its normal and its
#: anomalous value; or, for counts, its last two minutes both past it by 2 deviations of a count there): the
#: detector's short pool, so that one noisy minute of a small slice does not say it.
RETURN_POINTS: Final = 5
#: How long a slice whose alert resolved while it was still away is watched for its return: the detector's
#: ``return_horizon`` (6 hours), after which it forgets the level before an adopted change too.
WATCH_MS: Final = 360 * 60_000
#: Volume metrics, which move together (a slice losing traffic loses events, plays, streams and listeners): for
#: the aftermath of an incident one of them taken on one side stands for all, and an absence of events (a
#: threshold condition, otherwise notified as it is) is part of a live incident that took one of them down.
VOLUME: Final = frozenset({"events", "plays", "streams", "unique_listeners"})
#: What a side of a metric does to others on its slice, for its recovery: failing plays are plays not streamed (a
#: CDN failing half of a market's plays takes its streams down, and their return reads as a surge to a series that
#: learnt part of the fall), whether or not the streams' fall alerted while it lasted.
IMPLIED_SIDES: Final = {"failure_rate:up": ("volume:down",)}


def slice_dims(alert: Alert) -> dict[str, str]:
    """The alert's dimension labels (schema fields), in schema order."""
    return {f: alert.labels[f] for f in DIMENSION_FIELDS if f in alert.labels}


def _contains(outer: Mapping[str, str], inner: Mapping[str, str]) -> bool:
    """True when slice ``inner`` lies within slice ``outer`` (every field of ``outer`` fixed the same way)."""
    return all(inner.get(k) == v for k, v in outer.items())


def _overlap(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """True when slices ``a`` and ``b`` share traffic: no field is fixed to different values in both
    (``platform=android`` and ``market=FR`` overlap; ``platform=android`` and ``platform=ios`` do not)."""
    return all(b.get(k, v) == v for k, v in a.items())


def _granularity(fields: tuple[str, ...]) -> int:
    """How fine a dimension set is: one entity (track, artist) is finer than any combination of coarse fields."""
    return 10 if any(f in TOP_K_FIELDS for f in fields) else len(fields)


class _Watch(NamedTuple):
    """The slice of an incident whose return is watched: its metric, dimensions, normal and anomalous values."""

    metric: str
    dims: dict[str, str]
    normal: float
    anomalous: float


@dataclass(slots=True)
class _Incident:
    alert: Alert  # the notification: root slice labels
    root: dict[str, str]
    metrics: set[str]
    members: dict[str, Alert] = field(default_factory=dict)  # fingerprint of an engine alert → that alert
    closed_at: int | None = None  # when its resolution was notified (epoch ms); None while open
    first: str = ""  # fingerprint of the alert that opened it
    ended_at: int | None = None  # when that alert resolved: from then on only its aftermath joins it
    sides: set[str] = field(default_factory=set)  # "metric:up" / "metric:down" of the alerts it took while live
    #: while its first notification is held (see ``group_wait_ms``): the event time at which it is due; else None
    held_until: int | None = None
    #: the coarser slice whose deviation it was held for (a parent it carries under half of the excess of); kept
    #: once notified, so that later parts of that larger movement join it
    held_for: dict[str, str] | None = None
    #: once the alert that opened it resolved: that alert's metric, slice, expected (normal) and observed
    #: (anomalous) value, whose return is watched (:meth:`IncidentFolder.watching`)
    watch: _Watch | None = None
    recent: list[float] = field(default_factory=list)  # the watched slice's latest values (at most RETURN_POINTS)
    seen_until: int = 0  # the newest window of the watched slice observed (epoch ms)
    #: when the watched slice was seen back on its normal side (past the midpoint of its normal and anomalous
    #: values over the last RETURN_POINTS minutes): its recovery starts (see ``recovery_ms``)
    returned_at: int | None = None


class IncidentFolder:
    """Folds the engine's alert changes into incidents (see the module docstring).

    >>> folder = IncidentFolder()
    >>> a = Alert({"alertname": "FailuresUp", "metric": "failure_rate", "market": "BR"}, {}, "firing", 0)
    >>> from tunewatch.detect.stage import DETECTION_SCHEMA
    >>> [x.status for x in folder.fold([a], pl.DataFrame(schema=DETECTION_SCHEMA))], len(folder.active())
    (['firing'], 1)
    """

    def __init__(
        self,
        min_share: float = 0.6,
        min_lift: float = 1.4,
        max_depth: int = 3,
        together_ms: int = 5 * 60_000,
        aftermath_ms: int = 30 * 60_000,
        group_wait_ms: int = 2 * 60_000,
        watched: Mapping[str, tuple[str, ...]] | None = None,
        recovery_ms: int = 65 * 60_000,
    ) -> None:
        self.min_share = min_share
        self.min_lift = min_lift
        self.max_depth = max_depth
        #: an alert on another metric whose excess the incident's slice cannot be weighed against (that metric
        #: is not watched on it) is the incident's when it started within this long of the incident
        self.together_ms = together_ms
        #: a resolved incident still takes the alerts it explains for this long, on other slices, on other
        #: metrics or on the opposite side of its own: its end (series returning from a change they had learnt)
        #: is not a new incident; its own deviation again, or anything on its own slice, is
        self.aftermath_ms = aftermath_ms
        #: the longest a new incident's first notification is held while a coarser slice of its metric deviates
        #: the same way much more than it explains (a market seen a minute before the whole service): the parent's
        #: alert, when it fires within the wait, becomes the root and the held incident folds into it unsaid
        self.group_wait_ms = group_wait_ms
        #: once an incident's slice is seen back (:meth:`observe`), the series that learnt part of its level while
        #: it lasted read their return as the opposite deviation until they relearn their normal or their detector
        #: adopts the return as lasting (60 points): for this long after the slice's return (60 minutes and the
        #: 5 of ``together_ms``), such a deviation on a slice overlapping the incident's, in a metric family it
        #: took, on the other side and no larger than the return from the incident's change can make it, is
        #: its recovery (folded, unsaid), not a new incident
        self.recovery_ms = recovery_ms
        #: alert name → the dimension sets its rule watches (coarser slices nobody watches are not waited for);
        #: None: any slice the detections carry
        self.watched = watched
        self._open: list[_Incident] = []
        self._closed: list[_Incident] = []  # resolved within ``aftermath_ms``, newest last
        self._member_of: dict[str, _Incident] = {}

    def active(self) -> list[Alert]:
        """The incidents' notifications firing now."""
        return [inc.alert for inc in self._open if inc.held_until is None]

    def watching(self) -> list[tuple[str, dict[str, str]]]:
        """Metric and slice of each incident whose opening alert resolved while its slice's return was not seen
        yet (for at most :data:`WATCH_MS`): the engine passes their values to :meth:`observe`."""
        out: list[tuple[str, dict[str, str]]] = []
        for inc in [*self._open, *self._closed]:
            if inc.watch is None or inc.returned_at is not None:
                continue
            if (metric_dims := (inc.watch.metric, inc.watch.dims)) not in out:
                out.append(metric_dims)
        return out

    def observe(
        self, metric: str, dims: Mapping[str, str], windows: Any, values: Any, until: int | None = None
    ) -> None:
        """The values (per window, ascending) of a watched slice (:meth:`watching`), those of windows before event
        time ``until`` (all when None): an incident whose slice's mean over the last :data:`RETURN_POINTS` minutes
        (or, for a count, each of its last two minutes by 2 deviations) is past the midpoint of its normal and
        anomalous values, on the normal side, has returned (its recovery starts: see ``recovery_ms``). A missing
        value (NaN) of a track or artist that had risen is a return (it left the heavy hitters); of any other slice,
        nothing."""
        for inc in [*self._open, *self._closed]:
            if inc.watch is None or inc.returned_at is not None:
                continue
            if (inc.watch.metric, inc.watch.dims) != (metric, dict(dims)):
                continue
            normal, anomalous = inc.watch.normal, inc.watch.anomalous
            mid, up = 0.5 * (normal + anomalous), normal > anomalous
            for w, v in zip(windows, values, strict=True):
                if until is not None and int(w) >= until:
                    break
                if int(w) <= inc.seen_until:
                    continue
                if v is None or not math.isfinite(float(v)):
                    if up or not any(f in TOP_K_FIELDS for f in dims):
                        continue
                    v = 0.0  # a track or artist pushed up (a bot farm) that left the heavy hitters: it fell back
                inc.seen_until = int(w)
                inc.recent = [*inc.recent, float(v)][-RETURN_POINTS:]
                mean = sum(inc.recent) / len(inc.recent)
                # two minutes each past the midpoint by a count's noise there (2 deviations), or the mean
                margin = 2.0 * math.sqrt(abs(mid)) if _counts(metric) else math.inf
                last = inc.recent[-2:]
                if (len(last) == 2 and all((x - mid) * (1 if up else -1) > margin for x in last)) or (
                    len(inc.recent) >= 3 and (mean >= mid if up else mean <= mid)
                ):
                    inc.returned_at = int(w) + WINDOW_MS
                    break

    def due(self) -> list[tuple[str, int]]:
        """Metric and window start of the window each held notification's release drills down on: the last one
        closed before it is due (the engine passes those rows with the batch's)."""
        return [
            (inc.alert.labels.get("metric", ""), int(inc.held_until) - WINDOW_MS)
            for inc in self._open if inc.held_until is not None
        ]  # fmt: skip

    def fold(
        self, changes: list[Alert], detections: pl.DataFrame, slice_values: SliceValues | None = None
    ) -> list[Alert]:
        """The notifications for the engine's alert ``changes`` (in time order) of one batch of ``detections``;
        ``slice_values`` gives the batch's values of a slice (metric, dimensions → windows, values), from which
        the return of incidents' slices is watched (:meth:`observe`) up to each change."""
        out: list[Alert] = []
        seen: dict[tuple[str, str], tuple[Any, Any]] = {}

        def observe(until: int | None) -> None:
            if slice_values is None:
                return
            for metric, dims in self.watching():
                key = (metric, repr(sorted(dims.items())))
                if key not in seen:
                    seen[key] = slice_values(metric, dims)
                self.observe(metric, dims, *seen[key], until=until)

        for a in self._largest_first(changes, detections):
            observe(_fired(a))  # the windows closed by this change's time (its own included)
            out.extend(self._release(_fired(a) - 1, detections))  # held notifications due before this change's minute
            if a.status == "firing":
                note = self._fire(a, detections)
                if note is not None:
                    out.append(note)
            else:
                out.extend(self._resolve(a))
        observe(None)
        if not detections.is_empty():
            last = int(detections.get_column("window_start").max())  # type: ignore[arg-type]
            out.extend(self._release(last + WINDOW_MS, detections))
        return out

    def _release(self, now: int, detections: pl.DataFrame) -> list[Alert]:
        """The held notifications due by event time ``now`` (epoch ms), stamped with when they were sent."""
        out: list[Alert] = []
        for inc in [i for i in self._open if i.held_until is not None and i.held_until <= now]:
            if inc in self._open:  # not merged into an earlier one in this loop
                out.extend(self._release_one(inc, int(inc.held_until or now), detections))
        return out

    def _release_one(self, inc: _Incident, at: int, detections: pl.DataFrame) -> list[Alert]:
        """End ``inc``'s hold at event time ``at``: the parent it waited for did not alert. Other live parts of the
        parent's movement (incidents held for the same slice, on the same metric and side) make one incident
        with it: into one already notified, unsaid; with others still held, one notification on the root of their
        joint deviation — the slice under the parent that explains the parent's movement (one market whose
        low-bitrate share explains the CDNs and platforms it touches), else the parent itself. Alone, its own
        notification."""
        side = _side(inc.alert)
        kin = [
            g for g in self._open
            if g is not inc and g.held_for is not None and g.held_for == inc.held_for and _side(g.alert) == side
            and g.ended_at is None
        ]  # fmt: skip
        notified = [g for g in kin if g.held_until is None]
        if notified:
            self._merge(notified[0], [inc], None)
            return []
        if kin and inc.held_for is not None:
            parent = dict(inc.held_for)
            metric = inc.alert.labels.get("metric", "")
            root_dims, _ = self._drill(_rows_at(detections, metric, at), metric, parent, _direction(inc.alert))
            if root_dims != parent:
                note = _rerooted(inc.alert, root_dims)
            else:
                note = _rerooted_up(inc.alert, parent, 1 + len(kin))
            root = _Incident(note, root_dims, set(), {}, first=inc.first, held_for=parent)
            root.alert = _with_affected(root.alert, inc.alert, dict(inc.root), None)
            self._open.insert(self._open.index(inc), root)
            self._merge(root, [inc, *kin], None)
            return [self._notify(root, at)]
        return [self._notify(inc, at)]

    def _merge(self, into: _Incident, parts: list[_Incident], share: float | None) -> None:
        """Fold incidents ``parts`` (members, also-affected slices, metrics, sides) into ``into``."""
        for part in parts:
            self._open.remove(part)
            for member_fp, member in part.members.items():
                into.members[member_fp] = member
                self._member_of[member_fp] = into
                into.alert = _with_affected(into.alert, member, slice_dims(member),
                                            share if member_fp == part.first else None)  # fmt: skip
            for entry in part.alert.extra.get("also_affected", []):
                into.alert = _with_affected_entry(into.alert, entry)
            into.metrics |= part.metrics
            into.sides |= part.sides

    def _notify(self, inc: _Incident, at: int) -> Alert:
        """End ``inc``'s hold: its notification, sent at event time ``at`` (``notified_at``)."""
        inc.held_until = None
        inc.alert = _copy(inc.alert, extra={**inc.alert.extra, "notified_at": at})
        return inc.alert

    def _largest_first(self, changes: list[Alert], detections: pl.DataFrame) -> list[Alert]:
        """``changes`` with each run of anomaly alerts of one metric that fired in the same minute ordered by their
        excess, largest first: the slice that carries most of a minute's deviation (one CDN) opens the incident
        and the slices it explains (each market it serves) are weighed against it, whatever order the engine
        listed them in; the rest of the traffic (``_other``) comes last. Everything else keeps its time order."""
        out: list[Alert] = []
        run: list[Alert] = []

        def key(a: Alert) -> tuple[str, int]:
            return a.labels.get("metric", ""), int(a.extra.get("fired_at", a.starts_at))

        def flush() -> None:
            if len(run) > 1:
                metric, fired = key(run[0])
                rows = detections.filter((pl.col("window_start") == fired - WINDOW_MS) & (pl.col("metric") == metric))
                excess = [_contribution(rows, metric, slice_dims(a), _direction(a)) for a in run]
                # the rest of the traffic (``_other``) is never a root: last, whatever its excess; an artist before a
                # track of equal excess (a track has one artist: a bot farm on an artist with one watched track moves
                # both alike, and the artist is the slice that contains the other); other ties keep their order
                rest = [OTHER in slice_dims(a).values() for a in run]
                track = ["track_id" in slice_dims(a) for a in run]
                order = sorted(range(len(run)), key=lambda i: (rest[i], -(excess[i] or 0.0), track[i]))
                run[:] = [run[i] for i in order]
            out.extend(run)
            run.clear()

        for a in changes:
            foldable = a.status == "firing" and a.extra.get("rule_kind", "anomaly") == "anomaly"
            if run and (not foldable or key(a) != key(run[0])):
                flush()
            if foldable:
                run.append(a)
            else:
                out.append(a)
        flush()
        return out

    # ------------------------------------------------------------------------------------------- firing

    def _fire(self, a: Alert, detections: pl.DataFrame) -> Alert | None:
        kind = a.extra.get("rule_kind", "anomaly")
        if kind == "absence":
            return self._absence(a)
        if kind != "anomaly":
            return a  # thresholds, burn rates: a condition met, not a deviation to explain or fold
        fp = a.fingerprint
        metric = a.labels.get("metric", "")
        window = int(a.extra.get("fired_at", a.starts_at + WINDOW_MS)) - WINDOW_MS
        rows = detections.filter((pl.col("window_start") == window) & (pl.col("metric") == metric))
        direction = _direction(a)
        dims = slice_dims(a)
        root, share = self._drill(rows, metric, dims, direction)
        own = _contribution(rows, metric, dims, direction)
        self._closed = [inc for inc in self._closed if self._kept(inc, window)]
        for inc in [*self._open, *reversed(self._closed)]:
            explained = None
            if inc.closed_at is None or window - inc.closed_at <= self.aftermath_ms:
                explained = self._explains(inc, rows, metric, root, own, direction, a)
            if explained is None:
                explained = self._recovery(inc, dims, metric, direction, a)
            if explained is None:
                explained = self._continuation(inc, dims, metric, direction, window)
            if explained is not None:
                inc.members[fp] = a
                self._member_of[fp] = inc
                if inc.ended_at is None:
                    inc.sides.add(f"{metric}:{direction}")
                if inc.closed_at is None:  # a resolved incident's notifications are final: its end goes unsaid
                    inc.metrics.add(metric)
                    share = None if math.isnan(explained) else explained
                    inc.alert = _with_affected(inc.alert, a, dims, share)  # emitted alerts are never changed
                return None
        note = a if root == dims else _with_affected(_rerooted(a, root), a, dims, share)
        inc = _Incident(note, root, {metric}, {fp: a}, first=fp, sides={f"{metric}:{direction}"})
        self._adopt_held(inc, rows, metric, direction)
        self._open.append(inc)
        self._member_of[fp] = inc
        parent = self._deviating_parent(rows, a.name, metric, root, own, direction)
        if parent is not None:  # a coarser slice moves much more than this one explains: wait for its alert
            inc.held_until, inc.held_for = window + WINDOW_MS + self.group_wait_ms, parent
            return None
        return inc.alert

    def _kept(self, inc: _Incident, window: int) -> bool:
        """Whether resolved incident ``inc`` may still take alerts at ``window``: within ``aftermath_ms`` of its
        resolution, while its slice's return is awaited (at most :data:`WATCH_MS`), or within ``recovery_ms`` of
        that return."""
        closed = inc.closed_at or 0
        if window - closed <= self.aftermath_ms:
            return True
        if inc.returned_at is not None:
            return window - inc.returned_at <= self.recovery_ms
        return inc.watch is not None and window - closed <= WATCH_MS

    def _recovery(
        self, inc: _Incident, dims: dict[str, str], metric: str, direction: str, alert: Alert
    ) -> float | None:
        """``UNWEIGHED`` when ``alert`` is the recovery of incident ``inc`` (see ``recovery_ms``), else None: it fired
        within ``recovery_ms`` of the incident's slice's return (or up to ``together_ms`` before it is seen: the mean
        of a few minutes lags), on a slice that overlaps the incident's (an artist or track, whose plays are partly
        the incident's market; the market itself on another metric, such as its streams after a plays drop), in a
        metric family the incident took on the other side, and no larger than a return from the incident's change
        can make it: a series that had learnt all of a fall to a fraction ``r`` of the normal rises at most by
        ``1 / r`` when the slice returns, and (counts) by at most the events a minute the slice had lost (a rise
        beyond that is new: a bot farm right after the market came back). Nothing recovers from a silence (no
        ratio bounds it)."""
        if inc.returned_at is None or inc.watch is None or not _overlap(inc.root, dims):
            return None
        entity = any(f in TOP_K_FIELDS for f in dims)
        if not entity and not _related(inc, dims) and abs(alert.starts_at - inc.returned_at) > self.together_ms:
            # a slice that merely shares no field with the incident's (a market, against an artist whose bot farm
            # played elsewhere) and was never part of it returns with it only as the slice does: a deviation that
            # began long after the return (another market's traffic drop 17 minutes later) is not that return. A
            # slice the incident contains, that contains it or that it took while live may have learnt its level and
            # lag; a track or artist, whose plays are in every market, too
            return None
        fired = _fired(alert)
        if not inc.returned_at - self.together_ms <= fired <= inc.returned_at + self.recovery_ms:
            return None
        back = {"up": "down", "down": "up"}[direction]
        sides = _family_sides(inc.sides)
        sides |= {implied for side in sides for implied in IMPLIED_SIDES.get(side, ())}
        family = _family(metric)
        if f"{family}:{back}" not in sides or f"{family}:{direction}" in sides:
            return None
        watched, normal, anomalous = inc.watch.metric, inc.watch.normal, inc.watch.anomalous
        value, expected = alert.extra.get("value"), alert.extra.get("expected")
        if not isinstance(value, int | float) or not isinstance(expected, int | float) or expected <= 0:
            return None
        # events come back at most as many as the incident's slice lost (its normal less its level during the
        # incident, a minute), give or take the alert's counting noise (3 deviations of its expected count)
        lost = abs(normal - anomalous) + 3.0 * math.sqrt(expected)
        if _counts(metric) and _counts(watched) and abs(value - expected) > lost:
            return None
        if min(normal, anomalous) <= 0:
            # from a silence (or to one) no ratio bounds the return: a bot farm on an artist 43 minutes after a small
            # platform's silence, or on a market 7 minutes after its late data, would fold; none recovers from it
            return None
        moved = max(value / expected, expected / value) if value > 0 else math.inf
        return UNWEIGHED if moved <= max(normal / anomalous, anomalous / normal) else None

    def _continuation(
        self, inc: _Incident, dims: dict[str, str], metric: str, direction: str, window: int
    ) -> float | None:
        """``UNWEIGHED`` when an alert is the continuation of resolved incident ``inc``, else None: the alert that
        opened it resolved because its detector adopted the change as the slice's new normal (a bot farm two hours
        long, a regression of three), its slice was seen still away since (:meth:`observe`: the mean of its
        latest minutes on the anomalous side of the midpoint of its normal and anomalous values, none of them
        before the resolution's minute), and the alert deviates the
        way the incident took its metric family on a slice the incident contains or took while live (a bot farm's
        track re-firing after the artist's alert resolved, a CDN whose p95 the platform's regression still lifts).
        It is the same change going on, already notified, not a new incident. Watched for at most
        :data:`WATCH_MS` from the opening alert's resolution."""
        if inc.closed_at is None or inc.watch is None or inc.returned_at is not None or inc.ended_at is None:
            return None
        if window - inc.ended_at > WATCH_MS or not _seen_away(inc):
            return None
        if f"{_family(metric)}:{direction}" not in _family_sides(inc.sides):
            return None
        return UNWEIGHED if _related(inc, dims) else None

    def _absence(self, a: Alert) -> Alert | None:
        """An absence (no events where some were expected) is notified as it is, unless a live incident that
        took a volume metric down covers its slice (markets going silent one by one during a global traffic
        drop): then it is a part of that incident, listed under "also affected"."""
        dims = slice_dims(a)
        for inc in self._open:
            live = inc.ended_at is None and inc.closed_at is None
            if live and _contains(inc.root, dims) and any(f"{m}:down" in inc.sides for m in VOLUME):
                inc.members[a.fingerprint] = a
                self._member_of[a.fingerprint] = inc
                inc.alert = _with_affected(inc.alert, a, dims, None)
                return None
        return a

    def _deviating_parent(
        self, rows: pl.DataFrame, name: str, metric: str, root: dict[str, str], own: float | None, direction: str
    ) -> dict[str, str] | None:
        """A coarser slice of ``root`` watched by rule ``name`` that deviates on ``direction``'s side (beyond 3
        deviations: :data:`PARENT_SCORE`) with over twice ``root``'s excess, which ``root`` does not explain by the
        drill-down's test (a platform's startup regression lifts the whole service's p95, but explains it): ``root`` is
        then part of a larger movement that may alert within ``group_wait_ms``. None when there is none (or no
        wait is configured)."""
        if self.group_wait_ms <= 0 or own is None or own <= 0 or rows.is_empty() or OTHER in root.values():
            return None
        if metric in METRICS and METRICS[metric].kind == "quantile":
            return None  # a quantile's excess does not add up over slices: a parent's says nothing of its parts
        watched = None if self.watched is None else set(self.watched.get(name, ()))
        entity = any(f in TOP_K_FIELDS for f in root)
        for d in DIMENSION_SETS:
            if watched is not None and d.name not in watched:
                continue
            if entity and d.fields and not set(d.fields) & (set(root) | set(TOP_K_FIELDS)):
                # one track or artist spans every market: a market moving the same way with over twice its excess
                # (a bot farm spread over a market's obscure tracks, each a third of it) is a larger movement it is
                # part of, which the entity cannot explain (it carries under half of it)
                for parent in _deviating_slices(rows, metric, d.name, direction, 2.0 * own):
                    return parent
                continue
            if not set(d.fields) < set(root):
                continue
            parent = {f: root[f] for f in root if f in d.fields}
            theirs = _contribution(rows, metric, parent, direction)
            score = _slice_score(rows, parent)
            if theirs is None or theirs <= 2.0 * own or score is None or score < PARENT_SCORE:
                continue
            if not self._explains_parent(rows, metric, root, parent, direction):
                return parent
        return None

    def _explains_parent(
        self, rows: pl.DataFrame, metric: str, root: dict[str, str], parent: dict[str, str], direction: str
    ) -> bool:
        """Whether slice ``root`` explains ``parent``'s deviation by the drill-down's test: among its siblings
        (its dimension set under ``parent``) it carries at least :attr:`min_share` of the excess, at least
        :attr:`min_lift` times its share of their volume."""
        group = _slice_rows(rows, dimension_set(",".join(root)).name, parent)
        if group.is_empty():
            return False
        pos = _contributions(group, metric, direction).clip(lower_bound=0.0)
        size = _sizes(group, metric)
        mine = group.select(pl.all_horizontal([pl.col(k) == v for k, v in root.items()])).to_series()
        total, volume = float(pos.sum()), float(size.sum())
        own, own_size = float(pos.filter(mine).sum()), float(size.filter(mine).sum())
        if total <= 0 or volume <= 0:
            return False
        share = own / total
        return share >= self.min_share and share >= self.min_lift * own_size / volume

    def _adopt_held(self, inc: _Incident, rows: pl.DataFrame, metric: str, direction: str) -> None:
        """Fold into new incident ``inc`` the held incidents of its metric and side whose slices lie within its
        own (re-rooting upwards: the parent they were waiting for alerts and explains them); their first
        notifications are never sent."""
        side = f"{metric}:{direction}"
        own = _contribution(rows, metric, inc.root, direction)
        for held in [h for h in self._open if h.held_until is not None]:
            within = _contains(inc.root, held.root) or held.held_for == inc.root  # an entity held for this market
            if side not in held.sides or held.root == inc.root or not within:
                continue
            theirs = _contribution(rows, metric, held.root, direction)
            share = None if theirs is None or not own or own <= 0 else max(0.0, min(1.0, theirs / own))
            self._open.append(inc)  # _merge takes the parts out of the open incidents; inc goes in just after
            self._merge(inc, [held], share)
            self._open.remove(inc)

    def _explains(
        self,
        inc: _Incident,
        rows: pl.DataFrame,
        metric: str,
        root: dict[str, str],
        own: float | None,
        direction: str,
        alert: Alert,
    ) -> float | None:
        """The share of an alert's excess incident ``inc`` explains when the alert belongs to it, else None."""
        same = metric in inc.metrics
        back = {"up": "down", "down": "up"}[direction]
        sides = _family_sides(inc.sides)
        family = _family(metric)
        finer = _granularity(tuple(root)) > _granularity(tuple(inc.root))
        part = root != inc.root and (_overlap(inc.root, root) or finer)
        if inc.ended_at is not None and inc.closed_at is None and part and f"{metric}:{direction}" in inc.sides:
            # the alert that opened it resolved (its detector adopted a lasting change) while parts of it still
            # fire: a slice that overlaps it (a finer one, an entity: a bot farm's tracks an hour in; or one cut
            # along other fields: each market's p95 lifted by one platform's startup regression) deviating the same
            # way is a part of the change already notified, not a new one; its excess cannot be weighed against
            # the incident's slice any more (that slice's detector took the change as its normal)
            return UNWEIGHED
        if inc.ended_at is not None and (
            root == inc.root or f"{family}:{direction}" in sides or f"{family}:{back}" not in sides
        ):
            # after the alert that opened it resolved, only a return is its aftermath: a metric it took, on the
            # other side; not its own slice again (its detector remembers the level it returns to: a deviation
            # there is new), nor a deviation it had (a recurrence), nor a metric it never moved
            return None
        if inc.ended_at is not None and _contains(inc.root, root):
            return UNWEIGHED  # a part of its slice returning from a change it took (weighed by nothing: it is over)
        if root == inc.root:
            return 1.0
        if not same and _contains(inc.root, root) and _shrinks_with(inc, alert, metric, direction):
            return UNWEIGHED  # a count of the slice's traffic (its ads) falling no more than its traffic fell
        if not same and inc.ended_at is None and abs(alert.starts_at - inc.alert.starts_at) > self.together_ms:
            return None  # another metric that did not start with the incident: not shown to be its doing
        if same and OTHER in root.values():
            return None if inc.ended_at is not None else 1.0  # the rest of the traffic: spill-over, never a root
        if _contains(inc.root, root):  # finer than the incident's slice: a part of it, or its real cause
            theirs = _contribution(rows, metric, inc.root, direction)
            if (
                theirs is not None and own is not None and theirs > 0 and own >= self.min_share * theirs
                and not self._proportionate(rows, metric, root, inc.root, own / theirs)
            ):  # fmt: skip
                if not self._late(inc, alert):
                    return None  # it explains the incident's slice (the drill-down's test): a better root, on its own
                return max(0.0, min(1.0, theirs / own))  # long after the incident was notified: a detail of it
            if not same and theirs is not None and theirs <= 0:
                return None  # another metric that does not move on the incident's slice: not its doing
            return 1.0
        if _contains(root, inc.root):  # coarser: the incident's slice explains (part of) it
            theirs = _contribution(rows, metric, inc.root, direction)
            if theirs is None or not own or own <= 0:
                return 1.0
            if theirs < 0.5 * own and not _within_noise(alert, metric, own - theirs, own):
                # mostly moved outside the incident's slice, and what moved there deviates on its own: a larger
                # incident (ads falling everywhere, seen first on the largest market) or, on another metric, not the
                # incident's doing
                return None
            return max(0.0, min(1.0, theirs / own))
        if set(root) == set(inc.root):
            # disjoint slices of one dimension set never explain each other; two markets are two incidents, but
            # two CDNs of one market deviating the same way while its incident is live are one (their market
            # moves with them: the market itself may miss a guard both of its parts met)
            parent = {k: v for k, v in root.items() if inc.root.get(k) == v}
            if same and parent and inc.ended_at is None and f"{metric}:{direction}" in inc.sides:
                moved = _contribution(rows, metric, parent, direction)
                if moved is not None and moved > 0:
                    return UNWEIGHED
            return None
        theirs = _contribution(rows, metric, inc.root, direction)
        if theirs is None and inc.ended_at is None:
            # a metric not watched on the incident's slice (another metric): started together, or not the incident's
            # (and only into an incident notified in an earlier minute: alerts of one minute that cannot be weighed
            # against each other do not say which is the root)
            # (and, for another metric, only on a slice that shares a dimension with the incident's: a completion
            # drop on one source does not explain a startup regression on one platform that began minutes later;
            # notified on its own it is at worst one collateral alert, folded it hides an incident)
            first = int(inc.alert.extra.get("fired_at", inc.alert.starts_at))
            together = abs(alert.starts_at - inc.alert.starts_at) <= self.together_ms
            related = same or any(inc.root.get(k) == v for k, v in root.items())
            return 1.0 if together and related and first < int(alert.extra.get("fired_at", alert.starts_at)) else None
        finer = _granularity(tuple(root)) > _granularity(tuple(inc.root))
        if finer and theirs is not None and own is not None and theirs > 0 and own >= 0.5 * theirs:
            if not self._late(inc, alert):
                return None  # an entity carrying most of a coarser incident's excess (a bot farm): its own notice
            return min(1.0, theirs / own)  # long after the incident was notified: a detail of it
        if theirs is not None and own is not None and own > 0 and theirs >= 0.5 * own:
            return min(1.0, theirs / own)
        return None

    def _late(self, inc: _Incident, alert: Alert) -> bool:
        """Whether ``alert`` started more than ``together_ms`` after live incident ``inc``: a finer slice that
        explains the incident then is a detail of an incident already notified (the bot farm's tracks an hour
        into a market's surge), not a better root that deserves its own notice."""
        return inc.ended_at is None and alert.starts_at - inc.alert.starts_at > self.together_ms

    def _proportionate(
        self, rows: pl.DataFrame, metric: str, part: dict[str, str], whole: dict[str, str], share: float
    ) -> bool:
        """Whether slice ``part`` carries ``share`` of ``whole``'s excess only as it carries its volume (below
        :attr:`min_lift` times its share of the volume): then it does not explain the whole (the drill-down's
        test), however large its share."""
        size, total = _slice_size(rows, metric, part), _slice_size(rows, metric, whole)
        return bool(size and total) and share < self.min_lift * size / total  # type: ignore[operator]

    def _drill(
        self, rows: pl.DataFrame, metric: str, dims: dict[str, str], direction: str
    ) -> tuple[dict[str, str], float | None]:
        """The finest slice under ``dims`` that explains its excess, and the share of the excess it carries."""
        current, share = dims, None
        for _ in range(self.max_depth):
            found = self._explaining_child(rows, metric, current, direction)
            if found is None:
                break
            current, s = found
            share = s if share is None else share * s
        return current, share

    def _explaining_child(
        self, rows: pl.DataFrame, metric: str, parent: dict[str, str], direction: str
    ) -> tuple[dict[str, str], float] | None:
        fields = set(parent)
        if rows.is_empty():
            return None
        best: tuple[int, float, dict[str, str]] | None = None
        present = set(rows.get_column("dimset").unique().to_list())
        for d in DIMENSION_SETS:
            entity = any(f in TOP_K_FIELDS for f in d.fields)
            across = entity and not fields < set(d.fields) and not fields & set(d.fields)
            if d.name not in present or not (fields < set(d.fields) or across):
                continue
            if len(d.fields) != len(fields) + 1 and not entity:
                continue  # one step finer at a time (an entity set may sit under any parent)
            group = rows.filter(
                (pl.col("dimset") == d.name)
                & pl.all_horizontal([pl.col(k) == v for k, v in parent.items() if not across] or [pl.lit(True)])
                & pl.col("expected").is_not_null()
            )
            if group.height < 2 and not entity:
                continue
            c = _contributions(group, metric, direction)
            size = _sizes(group, metric)
            pos = c.clip(lower_bound=0.0)
            total, volume = float(pos.sum()), float(size.sum())
            if across:
                # an entity's rows span every market: it explains the parent (a market) when its own excess
                # is most of the parent's, well beyond its share of the parent's volume (a bot farm)
                parent_excess = _contribution(rows, metric, parent, direction)
                parent_size = _slice_size(rows, metric, parent)
                if parent_excess is None or parent_excess <= 0 or not parent_size:
                    continue
                top = pos.max()
                total, volume = max(parent_excess, float(top) if isinstance(top, int | float) else 0.0), parent_size
            if total <= 0 or volume <= 0:
                continue
            i = int(pos.arg_max())  # type: ignore[arg-type]
            s = float(pos[i]) / total
            lift = s / max(float(size[i]) / volume, 1e-9)
            score = group.get_column("score")[i]
            if s < self.min_share or score is None or score < 0.2:
                continue
            row = group.row(i, named=True)
            if lift < self.min_lift and (entity or not _rest_spared(metric, float(pos[i]), float(size[i]),
                                                                    total - float(pos[i]), volume - float(size[i]),
                                                                    row.get("evidence_points"))):  # fmt: skip
                continue
            child: dict[str, str] = {f: row[f] for f in DIMENSION_FIELDS if f in d.fields}
            if any(v is None for v in child.values()) or OTHER in child.values():
                continue
            rank = _granularity(d.fields)
            if best is None or (rank, s) > (best[0], best[1]):
                best = (rank, s, child)
        return None if best is None else (best[2], best[1])

    # ------------------------------------------------------------------------------------------ resolved

    def _resolve(self, a: Alert) -> list[Alert]:
        inc = self._member_of.pop(a.fingerprint, None)
        if inc is None:
            return [a]
        inc.members.pop(a.fingerprint, None)
        if a.fingerprint == inc.first and inc.ended_at is None:
            inc.ended_at = int(a.extra.get("resolved_at", a.ends_at or 0))
            normal, anomalous = a.extra.get("expected"), a.extra.get("value")
            if isinstance(normal, int | float) and isinstance(anomalous, int | float) and normal != anomalous:
                inc.watch = _Watch(a.labels.get("metric", ""), slice_dims(a), float(normal), float(anomalous))
                inc.seen_until = int(a.extra.get("fired_at", a.starts_at))
        if inc.members or inc.closed_at is not None:  # still open, or an aftermath alert of a resolved one
            return []
        # resolved while held: its firing notification is sent now (never lost), then its resolution
        sent = [] if inc.held_until is None else [self._notify(inc, int(a.extra.get("resolved_at", a.ends_at or 0)))]
        self._open.remove(inc)
        inc.closed_at = int(a.extra.get("resolved_at", a.ends_at or 0))
        inc.ended_at = inc.closed_at if inc.ended_at is None else inc.ended_at
        self._closed.append(inc)
        note = inc.alert
        return [*sent, Alert(
            labels=dict(note.labels),
            annotations=dict(note.annotations),
            status="resolved",
            starts_at=note.starts_at,
            ends_at=a.ends_at,
            generator_url=note.generator_url,
            extra={**note.extra, "resolved_at": a.extra.get("resolved_at", a.ends_at)},
        )]  # fmt: skip

    # ----------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Open incidents and those resolved within ``aftermath_ms`` (their notification, root slice, metrics,
        member alerts and when they were resolved), as plain values."""
        return {
            "incidents": [_incident_state(inc) for inc in self._open],
            "closed": [_incident_state(inc) for inc in self._closed],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (``ValueError`` naming the field when it does not fit)."""
        try:
            self._open = [_incident_of(entry) for entry in state["incidents"]]
            self._closed = [_incident_of(entry) for entry in state.get("closed", [])]
            self._member_of = {fp: inc for inc in [*self._open, *self._closed] for fp in inc.members}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"incident state: {type(exc).__name__}: {exc}") from None


def _incident_state(inc: _Incident) -> dict[str, Any]:
    return {"alert": inc.alert.to_dict(), "root": dict(inc.root), "metrics": sorted(inc.metrics),
            "members": [m.to_dict() for m in inc.members.values()], "closed_at": inc.closed_at,
            "first": inc.first, "ended_at": inc.ended_at, "sides": sorted(inc.sides),
            "held_until": inc.held_until, "held_for": inc.held_for,
            "watch": None if inc.watch is None else list(inc.watch._replace(dims=dict(inc.watch.dims))),
            "recent": list(inc.recent), "seen_until": inc.seen_until, "returned_at": inc.returned_at}  # fmt: skip


def _incident_of(entry: Mapping[str, Any]) -> _Incident:
    members = [Alert.from_dict(m) for m in entry["members"]]
    closed, ended = entry.get("closed_at"), entry.get("ended_at")
    held, held_for = entry.get("held_until"), entry.get("held_for")
    watch, returned = entry.get("watch"), entry.get("returned_at")
    inc = _Incident(
        Alert.from_dict(entry["alert"]), {str(k): str(v) for k, v in entry["root"].items()},
        {str(m) for m in entry["metrics"]}, {m.fingerprint: m for m in members},
        None if closed is None else int(closed), str(entry.get("first", "")), None if ended is None else int(ended),
        {str(x) for x in entry.get("sides", [])}, None if held is None else int(held),
        None if held_for is None else {str(k): str(v) for k, v in held_for.items()},
    )  # fmt: skip
    if watch is not None:
        metric, dims, normal, anomalous = watch
        inc.watch = _Watch(str(metric), {str(k): str(v) for k, v in dims.items()}, float(normal), float(anomalous))
    inc.recent = [float(v) for v in entry.get("recent", [])]
    inc.seen_until = int(entry.get("seen_until", 0))
    inc.returned_at = None if returned is None else int(returned)
    return inc


def _fired(a: Alert) -> int:
    """Event time at which the engine's alert change happened (its window's end)."""
    return int(a.extra.get("resolved_at" if a.status == "resolved" else "fired_at", a.ends_at or a.starts_at))


def _related(inc: _Incident, dims: Mapping[str, str]) -> bool:
    """Whether slice ``dims`` is the incident's: it lies within its root, contains it, or the incident took an
    alert on it while live (listed under "also affected")."""
    if _contains(inc.root, dims) or _contains(dims, inc.root):
        return True
    return any(dict(e.get("dims", {})) == dict(dims) for e in inc.alert.extra.get("also_affected", []))


def _seen_away(inc: _Incident) -> bool:
    """Whether incident ``inc``'s watched slice was seen away after its opening alert resolved: values observed
    from the resolution's minute on, whose mean and latest value are on the anomalous side of the midpoint of its
    normal and anomalous values (an alert that resolved because the slice came back is never taken for an adopted
    change)."""
    if inc.watch is None or inc.ended_at is None or not inc.recent or inc.seen_until < inc.ended_at - WINDOW_MS:
        return False
    mid = 0.5 * (inc.watch.normal + inc.watch.anomalous)
    sign = 1.0 if inc.watch.anomalous > inc.watch.normal else -1.0
    mean = sum(inc.recent) / len(inc.recent)
    return (mean - mid) * sign > 0 and (inc.recent[-1] - mid) * sign > 0


def _rest_spared(
    metric: str, excess: float, size: float, rest_excess: float, rest_size: float, points: float | None
) -> bool:
    """Whether the rest of a sibling group was spared what hit one child: had the rest (volume ``rest_size``) been hit
    at the child's rate (``excess`` over ``size``), it would carry ``rest_size * excess / size`` of excess; it
    carries ``rest_excess``, more than 3 deviations of a count fewer (over the minutes the child's evidence pooled).
    A CDN carrying three quarters of a market's plays and all of its failures explains the market (the drill-down's
    lift test cannot see it: its share of the excess is at most 1 / 0.75 of its share of the volume); the same
    failures spread over every CDN do not. Excesses must count events (counts, and ratios weighted by their
    denominators), not quantiles; at a few events a minute the test cannot pass."""
    if metric not in METRICS or METRICS[metric].kind not in ("count", "ratio"):
        return False
    if excess <= 0 or size <= 0 or rest_size <= 0:
        return False
    minutes = float(points) if isinstance(points, int | float) and math.isfinite(points) and points > 1 else 1.0
    expected = rest_size * excess / size * minutes
    return (max(rest_excess, 0.0) * minutes - expected) / math.sqrt(expected) <= -3.0


def _score_z(score: float) -> float:
    """The deviations behind a detector score (the inverse of :func:`tunewatch.detect.count_tail.tail_score`)."""
    score = min(max(score, 0.0), 0.999999)
    return SCORE_HALF_Z * math.sqrt(score / (1.0 - score))


def _within_noise(alert: Alert, metric: str, rest: float, own: float) -> bool:
    """Whether the part ``rest`` of a coarser slice's excess ``own`` that an incident's slice does not carry is
    within that slice's own noise: under 3 deviations (the detector's clip; :data:`PARENT_SCORE`) at the alert's
    own score, excesses adding up over slices (counts, sums and ratios weighted by their denominators; not
    quantiles). The whole service's streams "surging" with a bot farm's artist is the artist's doing when the rest
    of the service, without the artist, would not deviate."""
    score = alert.extra.get("score")
    if own <= 0 or not isinstance(score, int | float) or not math.isfinite(float(score)):
        return False
    if metric in METRICS and METRICS[metric].kind == "quantile":
        return False
    return _score_z(float(score)) * max(rest, 0.0) / own < 3.0


def _shrinks_with(inc: _Incident, alert: Alert, metric: str, direction: str) -> bool:
    """Whether ``alert`` (a count or sum falling on a slice within ``inc``'s) is no more than the incident's own
    fall of its traffic: the incident took a volume metric down to a fraction ``r`` of its normal (its opening
    alert's value against expected), and the alert's value is at least ``r`` of its expected, give or take
    3 deviations of a count there. A market losing 70 % of its plays loses its free tier's ads with them, at
    whatever minute their evidence comes in; a fall beyond the traffic's is the alert's own."""
    if direction != "down" or metric not in METRICS or METRICS[metric].kind not in ("count", "sum"):
        return False
    if "volume:down" not in _family_sides(inc.sides) or inc.alert.labels.get("metric") not in VOLUME:
        return False
    normal, level = inc.alert.extra.get("expected"), inc.alert.extra.get("value")
    value, expected = alert.extra.get("value"), alert.extra.get("expected")
    numbers = (normal, level, value, expected)
    if not all(isinstance(x, int | float) and math.isfinite(float(x)) for x in numbers):
        return False
    if float(normal) <= 0 or float(expected) <= 0:  # type: ignore[arg-type]
        return False
    ratio = max(float(level), 0.0) / float(normal)  # type: ignore[arg-type]
    floor = ratio * float(expected)  # type: ignore[arg-type]
    if METRICS[metric].kind == "count":
        floor -= 3.0 * math.sqrt(max(floor, 1.0))
    return float(value) >= floor  # type: ignore[arg-type]


def _family(metric: str) -> str:
    """The metric, or ``volume`` for the volume metrics (:data:`VOLUME`), which move together."""
    return "volume" if metric in VOLUME else metric


def _family_sides(sides: set[str]) -> set[str]:
    """``metric:side`` entries with the volume metrics read as one (``volume:down``)."""
    out = set()
    for entry in sides:
        metric, _, side = entry.rpartition(":")
        out.add(f"{_family(metric)}:{side}")
    return out


def _side(a: Alert) -> str:
    """``metric:up`` or ``metric:down`` of an alert (or incident notification)."""
    return f"{a.labels.get('metric', '')}:{_direction(a)}"


def _direction(a: Alert) -> str:
    value, expected = a.extra.get("value"), a.extra.get("expected")
    if isinstance(value, int | float) and isinstance(expected, int | float):
        return "down" if value < expected else "up"
    return "up"


def _counts(metric: str) -> bool:
    """Whether ``metric`` counts events a minute (its values of different slices add up)."""
    return METRICS[metric].kind == "count" if metric in METRICS else False


def _weighted(metric: str) -> bool:
    return METRICS[metric].kind in ("ratio", "quantile") if metric in METRICS else False


def _contributions(group: pl.DataFrame, metric: str, direction: str) -> pl.Series:
    """Each row's excess per minute on ``direction``'s side (events; for ratios and quantiles weighted by the
    denominator): averaged over the minutes the detector pooled where it judged several together (counts and
    shares of events, whose pooled excess is in events), so that a slice of a few events a minute is weighed by
    its sustained deviation, not by one minute's chance failure in a sibling; per minute, so that rows pooled
    over different spans compare."""
    excess = group.get_column("value") - group.get_column("expected")
    if _weighted(metric):
        excess = excess * group.get_column("weight")
    if "evidence_points" in group.columns and "evidence_excess" in group.columns:
        points = group.get_column("evidence_points").fill_null(1.0)
        pooled = group.get_column("evidence_excess") / points
        excess = pl.select(pl.when(points > 1.0).then(pooled).otherwise(excess)).to_series()
    return (excess * (-1.0 if direction == "down" else 1.0)).fill_null(0.0)


def _sizes(group: pl.DataFrame, metric: str) -> pl.Series:
    col = "weight" if _weighted(metric) else "expected"
    return group.get_column(col).fill_null(0.0).clip(lower_bound=0.0)


def _contribution(rows: pl.DataFrame, metric: str, dims: Mapping[str, str], direction: str) -> float | None:
    """The excess of slice ``dims`` in ``rows`` (one window, one metric), or None when it is not watched."""
    try:
        d = dimension_set(",".join(dims) or "global")
    except KeyError:
        return None
    row = _slice_rows(rows, d.name, dims)
    if row.is_empty():
        return None
    return float(_contributions(row.head(1), metric, direction)[0])


def _slice_rows(rows: pl.DataFrame, dimset: str, dims: Mapping[str, str], *, expected: bool = True) -> pl.DataFrame:
    """The rows of dimension set ``dimset`` within slice ``dims`` (all of the set's rows for the whole service);
    with ``expected``, only where the detector has an expectation."""
    within = (pl.col("dimset") == dimset) & pl.all_horizontal(
        [pl.col(k) == v for k, v in dims.items()] or [pl.lit(True)]
    )
    return rows.filter(within & pl.col("expected").is_not_null() if expected else within)


def _slice_size(rows: pl.DataFrame, metric: str, dims: Mapping[str, str]) -> float | None:
    """The volume of slice ``dims`` in ``rows`` (expected value of a count, weight of a ratio), or None."""
    try:
        d = dimension_set(",".join(dims) or "global")
    except KeyError:
        return None
    row = _slice_rows(rows, d.name, dims, expected=False)
    return None if row.is_empty() else float(_sizes(row.head(1), metric)[0])


def _deviating_slices(
    rows: pl.DataFrame, metric: str, dimset: str, direction: str, above: float
) -> list[dict[str, str]]:
    """The slices of dimension set ``dimset`` in ``rows`` (one window, one metric) deviating on ``direction``'s side
    beyond 3 deviations (:data:`PARENT_SCORE`) with an excess over ``above``, largest excess first."""
    group = rows.filter((pl.col("dimset") == dimset) & pl.col("expected").is_not_null())
    if group.is_empty():
        return []
    excess = _contributions(group, metric, direction)
    keep = (excess > above) & (group.get_column("score").fill_null(0.0) >= PARENT_SCORE)
    fields = dimension_set(dimset).fields
    found = group.with_columns(excess.alias("__excess")).filter(keep).sort("__excess", descending=True)
    return [{f: row[f] for f in fields} for row in found.iter_rows(named=True) if OTHER not in row.values()]


def _slice_score(rows: pl.DataFrame, dims: Mapping[str, str]) -> float | None:
    """The detector's score of slice ``dims`` in ``rows`` (one window, one metric), or None."""
    try:
        d = dimension_set(",".join(dims) or "global")
    except KeyError:
        return None
    row = _slice_rows(rows, d.name, dims, expected=False)
    value = None if row.is_empty() else row.get_column("score")[0]
    return None if value is None else float(value)


def _rows_at(detections: pl.DataFrame, metric: str, at: int) -> pl.DataFrame:
    """``metric``'s detections of the last window closed by event time ``at`` (the latest before it in the batch;
    the batch's first, when it starts later: a notification held across batches is released in the next one)."""
    rows = detections.filter(pl.col("metric") == metric)
    if rows.is_empty():
        return rows
    before = rows.filter(pl.col("window_start") < at)
    if before.is_empty():
        return rows.filter(pl.col("window_start") == rows.get_column("window_start").min())
    return before.filter(pl.col("window_start") == before.get_column("window_start").max())


def _copy(note: Alert, *, extra: dict[str, Any]) -> Alert:
    """A copy of ``note`` with ``extra`` (emitted alerts are never changed in place)."""
    return Alert(labels=dict(note.labels), annotations=dict(note.annotations), status=note.status,
                 starts_at=note.starts_at, ends_at=note.ends_at, generator_url=note.generator_url,
                 extra=extra)  # fmt: skip


def _rerooted(a: Alert, root: dict[str, str]) -> Alert:
    """The alert moved to the slice that explains it: same name, severity and metric, the root's dimensions."""
    labels = {k: v for k, v in a.labels.items() if k not in _FIELDS} | root
    old, new = dims_text(slice_dims(a)), dims_text(root)
    annotations = dict(a.annotations)
    if "summary" in annotations:
        annotations["summary"] = annotations["summary"].replace(f"for {old}", f"for {new}")
        if new not in annotations["summary"]:
            annotations["summary"] += f" (root cause: {new})"
    extra = copy.deepcopy(a.extra)
    extra["root_cause_of"] = slice_dims(a)
    return Alert(labels=labels, annotations=annotations, status="firing", starts_at=a.starts_at,
                 generator_url=a.generator_url, extra=extra)  # fmt: skip


def _rerooted_up(a: Alert, parent: dict[str, str], parts: int) -> Alert:
    """The notification of ``parts`` held slices of one coarser slice's deviation, moved to that slice (the root
    of their joint deviation; its own rule did not fire): the first part's name, severity, metric and values."""
    labels = {k: v for k, v in a.labels.items() if k not in _FIELDS} | parent
    annotations = dict(a.annotations)
    if "summary" in annotations:
        annotations["summary"] += f" (one of {parts} slices of {dims_text(parent)} deviating together)"
    extra = copy.deepcopy(a.extra)
    extra["root_cause_of"] = slice_dims(a)
    extra.pop("also_affected", None)
    return Alert(labels=labels, annotations=annotations, status="firing", starts_at=a.starts_at,
                 generator_url=a.generator_url, extra=extra)  # fmt: skip


def _with_affected(note: Alert, member: Alert, dims: dict[str, str], share: float | None) -> Alert:
    """A copy of ``note`` listing ``member`` (on slice ``dims``) under the incident's "also affected" slices."""
    entry = {"alertname": member.name, "metric": member.labels.get("metric"), "dims": dims,
             "share_explained": None if share is None else round(share, 3)}  # fmt: skip
    return _with_affected_entry(note, entry)


def _with_affected_entry(note: Alert, entry: Mapping[str, Any]) -> Alert:
    """A copy of ``note`` listing ``entry`` (alertname, metric, dims, share explained) under "also affected"."""
    listed = list(note.extra.get("also_affected", []))
    if any(e["alertname"] == entry["alertname"] and e["dims"] == entry["dims"] for e in listed):
        return note
    listed.append(dict(entry))
    note = _copy(note, extra={**note.extra, "also_affected": listed})
    note.annotations["also_affected"] = "; ".join(
        f"{e['alertname']} on {dims_text(e['dims'])}"
        + (f" ({100 * e['share_explained']:.0f}% explained)" if e["share_explained"] is not None else "")
        for e in listed
    )
    return note
