"""The chunk-level embedding cache: keys and values (``_keys``, no I/O), stores (``_stores``), the client's cache (``_cache``).

Each piece of text a client would send is looked up first; only the misses are sent, and their
vectors stored. See the README's "Re-ingestion" section and docs/architecture.md.
"""

from __future__ import annotations

from ._cache import DEFAULT_CACHE_MAX_BYTES, CacheStats, VectorCache, check_cache, open_cache
from ._stores import ByteStore, RedisStore, SQLiteStore

__all__ = [
    "DEFAULT_CACHE_MAX_BYTES",
    "ByteStore",
    "CacheStats",
    "RedisStore",
    "SQLiteStore",
    "VectorCache",
    "check_cache",
    "open_cache",
]
