"""Cache: memory, Redis and Redis Cluster behind :class:`MusicStreamingCacheManager`.

Owns value serialisation (msgpack + zstd), the bounded memory tier, the Redis clients, read-through with stampede
protection, and degradation to memory when Redis is down. Imports only ``errors`` and ``clock`` (and ``process``
for types); used by the pipeline, detectors (state checkpoints) and the service (metadata, query results).

Modules: ``config`` (settings), ``codec`` (bytes), ``memory`` (LRU tier), ``redis_backend`` (redis-py),
``invalidation`` (two-tier pub/sub), ``stats`` (counters), ``manager`` (the facade). Time comes from an
injected :class:`tunewatch.clock.Clock`.
"""

from tunewatch.cache.codec import CodecError
from tunewatch.cache.config import CacheConfig
from tunewatch.cache.manager import MusicStreamingCacheManager

__all__ = ["CacheConfig", "CodecError", "MusicStreamingCacheManager"]
