"""The routing tree: which receivers (and with which grouping and timing) an alert goes to.

As in Alertmanager, an alert enters at the root and descends into the first child whose matchers accept it;
with ``continue: true`` on a child, later siblings are tried too. A node none of whose children match
handles the alert itself. Children inherit ``receiver``, ``group_by`` and the three intervals.

>>> from tunewatch.notify.config import RouteConfig
>>> tree = Route.build(RouteConfig.model_validate({"receiver": "default", "routes": [
...     {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
...     {"matchers": ['market=~"BR|AR"'], "receiver": "latam"}]}))
>>> [r.opts.receiver for r in tree.match({"severity": "critical", "market": "BR"})]
['pager', 'latam']
>>> [r.opts.receiver for r in tree.match({"market": "DE"})]
['default']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tunewatch.notify.config import RouteConfig
from tunewatch.notify.matchers import Matcher, matches_all
from tunewatch.notify.timeintervals import NamedTimeInterval

_OP_ORDER = {"=": 0, "!=": 1, "=~": 2, "!~": 3}
DEFAULT_GROUP_WAIT_MS = 30_000
DEFAULT_GROUP_INTERVAL_MS = 300_000
DEFAULT_REPEAT_INTERVAL_MS = 4 * 3_600_000


@dataclass(frozen=True, slots=True)
class RouteOpts:
    """The effective settings of a route after inheritance."""

    receiver: str
    group_by: frozenset[str]
    group_by_all: bool  #: ``group_by: ['...']``: every label is a grouping label
    group_wait_ms: int
    group_interval_ms: int
    repeat_interval_ms: int


@dataclass(slots=True)
class Route:
    """A node of the routing tree with its effective options."""

    key: str  #: Alertmanager's route key, e.g. ``{}/{severity="critical"}`` (unique among siblings)
    opts: RouteOpts
    matchers: tuple[Matcher, ...]
    continue_: bool
    children: list[Route] = field(default_factory=list)
    mute_time_intervals: tuple[str, ...] = ()  #: names; not inherited, as in Alertmanager
    active_time_intervals: tuple[str, ...] = ()

    @classmethod
    def build(cls, config: RouteConfig, parent: Route | None = None, index: int = 0) -> Route:
        """Build the tree from config, resolving inheritance."""
        matchers = config.parsed_matchers()
        if parent is None:
            base = RouteOpts(
                "", frozenset(), False, DEFAULT_GROUP_WAIT_MS, DEFAULT_GROUP_INTERVAL_MS, DEFAULT_REPEAT_INTERVAL_MS
            )
            key = "{}"
        else:
            base = parent.opts
            # Alertmanager's route key; a sibling with the same matchers gets its index too (Alertmanager's
            # keys would collide there, merging the two routes' groups)
            ordered = sorted(matchers, key=lambda m: (m.name, m.value, _OP_ORDER[m.op]))  # as Alertmanager sorts
            key = f"{parent.key}/{{{','.join(str(m) for m in ordered)}}}"
            if any(key == c.key.rsplit("/", 1)[0] or key == c.key for c in parent.children):
                key += f"/{index}"
        group_by = base.group_by if config.group_by is None else frozenset(config.group_by) - {"..."}
        group_all = base.group_by_all if config.group_by is None else "..." in config.group_by
        opts = RouteOpts(
            receiver=config.receiver or base.receiver,
            group_by=group_by,
            group_by_all=group_all,
            group_wait_ms=base.group_wait_ms if config.group_wait is None else config.group_wait,
            group_interval_ms=base.group_interval_ms if config.group_interval is None else config.group_interval,
            repeat_interval_ms=base.repeat_interval_ms if config.repeat_interval is None else config.repeat_interval,
        )
        node = cls(key=key, opts=opts, matchers=matchers, continue_=config.continue_,
                   mute_time_intervals=tuple(config.mute_time_intervals),
                   active_time_intervals=tuple(config.active_time_intervals))  # fmt: skip
        for i, child in enumerate(config.routes):
            node.children.append(cls.build(child, node, i))
        return node

    def muted_at(self, ts_ms: int, intervals: Mapping[str, NamedTimeInterval]) -> bool:
        """Whether this route sends nothing at ``ts_ms``: inside a mute interval, or outside all its active ones."""
        if any(intervals[n].contains(ts_ms) for n in self.mute_time_intervals):
            return True
        return bool(self.active_time_intervals) and not any(
            intervals[n].contains(ts_ms) for n in self.active_time_intervals
        )

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes (leaves of the descent) that handle an alert with ``labels``, in tree order."""
        if not matches_all(self.matchers, labels):
            return []
        out: list[Route] = []
        for child in self.children:
            found = child.match(labels)
            out.extend(found)
            if found and not child.continue_:
                break
        return out or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The alert's labels that define its aggregation group on this route."""
        if self.opts.group_by_all:
            return dict(labels)
        return {k: v for k, v in labels.items() if k in self.opts.group_by}

    def walk(self) -> list[Route]:
        """This node and all descendants, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out
