"""The chunk-level embedding cache: keys and values (``_keys``, no I/O), stores (``_stores``), the client's cache (``_cache``).

Each piece of text a client would send is looked up first; only the misses are sent, and their
vectors stored. See the README's "Re-ingestion" section and docs/architecture.md.
"""

from __future__ import annotations

from ._cache import CacheStats
from ._stores import ByteStore, RedisStore, SQLiteStore

# What users name: the stats a client reports, and the stores they may hand a client themselves.
__all__ = ["ByteStore", "CacheStats", "RedisStore", "SQLiteStore"]
