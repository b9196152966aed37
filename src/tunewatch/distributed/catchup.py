"""Entries accounted after a partition's last checkpoint: what a worker taking the partition over must replay.

A worker checkpoints every ``checkpoint_every`` entries; the entries it acknowledged after its last checkpoint
are never delivered again (they are no longer pending), yet what they taught its pipeline — event ids, open
windows, detector steps — died with it. The replacement restores the checkpoint and then replays exactly those
entries: the ones of the stream after the checkpoint's entry id whose done marker exists (already accounted by
the group), in id order, up to the newest entry at the time of the call. Entries without a done marker are
skipped: they are pending (claimed later) or new (read later).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from tunewatch.distributed.connection import RedisClient, text_of
from tunewatch.distributed.keys import KeyLayout

# KEYS: done markers; returns 1/0 per key (one round trip, one slot: the keys share the partition's hash tag)
_EXISTS_EACH = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('EXISTS', key) end
return out
"""


class AccountedEntries:
    """Finds the accounted entries of a partition after a given entry id (see the module docstring)."""

    def __init__(self, client: RedisClient, group: str, layout: KeyLayout | None = None, *, page: int = 50) -> None:
        if page <= 0:
            raise ValueError(f"page: must be positive, got {page}")
        self.client = client
        self.group = group
        self.layout = layout or KeyLayout()
        self.page = page
        self._exists = client.register_script(_EXISTS_EACH)

    def after(self, partition: int, entry_id: str) -> Iterator[tuple[str, dict[bytes, bytes]]]:
        """Accounted entries after ``entry_id`` (exclusive), oldest first, up to the stream's newest entry now."""
        stream = self.layout.stream(partition)
        newest = self.client.xrevrange(stream, count=1)
        if not newest:
            return
        top = text_of(newest[0][0])
        start = f"({entry_id}"
        while True:
            entries = self.client.xrange(stream, min=start, max=top, count=self.page)
            if not entries:
                return
            ids = [text_of(raw_id) for raw_id, _fields in entries]
            flags = self._exists(keys=[self.layout.done(partition, self.group, i) for i in ids])
            for found, (_raw_id, fields), done in zip(ids, entries, flags, strict=True):
                if done and fields:
                    yield found, cast("dict[bytes, bytes]", fields)  # the client never decodes replies
            if ids[-1] == top:
                return
            start = f"({ids[-1]}"
