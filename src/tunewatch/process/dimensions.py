"""Dimension sets (ARCHITECTURE.md §3): which combinations of schema fields metric series are split by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tunewatch.schema import DIMENSION_FIELDS

OTHER: Final = "_other"  # the aggregated rest of a top-K dimension (tracks and artists beyond the heaviest hitters)


@dataclass(frozen=True, slots=True)
class DimensionSet:
    """A named combination of dimension fields; ``global`` has none.

    >>> DimensionSet("market,cdn", ("market", "cdn")).refines(DimensionSet("market", ("market",)))
    True
    """

    name: str
    fields: tuple[str, ...]

    def refines(self, other: DimensionSet) -> bool:
        """True when this set splits ``other`` further (``market,cdn`` refines ``market`` and ``global``)."""
        return set(other.fields) < set(self.fields)


DIMENSION_SETS: Final[tuple[DimensionSet, ...]] = (
    DimensionSet("global", ()),
    DimensionSet("market", ("market",)),
    DimensionSet("platform", ("platform",)),
    DimensionSet("cdn", ("cdn",)),
    DimensionSet("tier", ("tier",)),
    DimensionSet("source", ("source",)),
    DimensionSet("market,cdn", ("market", "cdn")),
    DimensionSet("market,platform", ("market", "platform")),
    DimensionSet("market,tier", ("market", "tier")),  # ads live in a tier: ad impressions of one market's free tier
    DimensionSet("track_id", ("track_id",)),
    DimensionSet("artist_id", ("artist_id",)),
)

DIMSET_BY_NAME: Final = {d.name: d for d in DIMENSION_SETS}
#: Fields that are limited to their heaviest hitters (top-K), the rest aggregated as ``OTHER``.
TOP_K_FIELDS: Final = ("track_id", "artist_id")

assert all(f in DIMENSION_FIELDS for d in DIMENSION_SETS for f in d.fields)


def dimension_set(name: str) -> DimensionSet:
    """Look a dimension set up by name (``"market,cdn"``; field order does not matter)."""
    if name in DIMSET_BY_NAME:
        return DIMSET_BY_NAME[name]
    wanted = set(filter(None, (p.strip() for p in name.split(","))))
    for d in DIMENSION_SETS:
        if set(d.fields) == wanted:
            return d
    known = ", ".join(d.name for d in DIMENSION_SETS)
    raise KeyError(f"unknown dimension set {name!r} (known: {known})")
