"""Two-tier coherence: every manager publishes the keys it changes on a Redis pub/sub channel, and a listener
thread evicts them from its own memory tier. While the subscription is broken the memory tier may miss
messages, so it is cleared when the listener reconnects (``on_reconnect``); staleness is also capped by
``two_tier_ttl``.

>>> decode_message(encode_message("me", ["tw:v1:a"], None))
InvalidationMessage(sender='me', keys=['tw:v1:a'], tag=None)
>>> decode_message(b"garbage") is None
True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack

from tunewatch.cache.redis_errors import REDIS_ERRORS
from tunewatch.cache.remote import open_remote

if TYPE_CHECKING:
    from tunewatch.cache.redis_backend import RedisBackend

log = logging.getLogger(__name__)


class InvalidationMessage(NamedTuple):
    """Who changed which keys (and which tag was invalidated, if any).

    >>> msg = decode_message(encode_message("worker-1", ["tw:v1:track:t1"], "tracks"))
    >>> msg.sender, msg.keys, msg.tag
    ('worker-1', ['tw:v1:track:t1'], 'tracks')
    """

    sender: str
    keys: list[str]
    tag: str | None


def encode_message(sender: str, keys: list[str], tag: str | None) -> bytes:
    """Wire form of an invalidation."""
    return bytes(msgpack.packb([sender, keys, tag]))


def decode_message(payload: bytes) -> InvalidationMessage | None:
    """The message in ``payload``, or ``None`` (logged) for anything else on the channel."""
    try:
        sender, keys, tag = msgpack.unpackb(payload)
        if isinstance(sender, str) and isinstance(keys, list) and (tag is None or isinstance(tag, str)):
            return InvalidationMessage(sender, [str(k) for k in keys], tag)
    except Exception:  # foreign publisher on our channel
        pass
    log.error("cache: ignoring an unreadable message on the invalidation channel")
    return None


class InvalidationListener:
    """Background thread subscribed to ``channel`` on its own Redis connection; reconnects after failures.

    Built by :class:`~tunewatch.cache.MusicStreamingCacheManager` when Redis is configured; nothing connects
    before :meth:`start`:

    >>> from tunewatch.cache.config import CacheConfig
    >>> from tunewatch.cache.redis_backend import RedisBackend
    >>> remote = RedisBackend(CacheConfig(redis_url="redis://127.0.0.1:6379/0"))
    >>> listener = InvalidationListener(remote, "tw:v1:invalidate", print, on_reconnect=lambda: None)
    >>> listener.channel, listener.connected.is_set()
    ('tw:v1:invalidate', False)
    """

    def __init__(
        self,
        remote: RedisBackend,
        channel: str,
        on_message: Callable[[bytes], None],
        *,
        on_reconnect: Callable[[], None],
        poll_s: float = 0.2,
    ) -> None:
        self.backend = open_remote(remote.config)  # a private client: the manager may reset its own
        self.channel = channel
        self.on_message = on_message
        self.on_reconnect = on_reconnect
        self.poll_s = poll_s
        self.backoff_s = remote.config.reconnect_backoff_s
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tunewatch-cache-invalidation", daemon=True)

    def start(self) -> None:
        """Start listening."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.backend.close()

    def _run(self) -> None:
        pubsub: Any = None
        subscribed_before = False
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.backend.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.channel)
                    if subscribed_before:
                        self.on_reconnect()
                    subscribed_before = True
                    self.connected.set()
                message = pubsub.get_message(timeout=self.poll_s)
                if message is not None and message.get("type") == "message":
                    self.on_message(message["data"])
            except REDIS_ERRORS as exc:
                self.connected.clear()
                log.debug("cache: invalidation subscription lost (%s); retrying", type(exc).__name__)
                pubsub = None
                self.backend.reset()
                self._stop.wait(self.backoff_s)
        if pubsub is not None:
            try:
                pubsub.close()
            except REDIS_ERRORS:
                log.debug("cache: error closing the invalidation subscription")
