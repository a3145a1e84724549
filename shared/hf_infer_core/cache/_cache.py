"""A client's cache: the store it was given, what it has done, and what happens when it fails.

A store that fails (a corrupted, locked or read-only file, a full disk, Redis down), when it is
opened too, never fails a call and never gives a wrong vector: the failure is logged once as a
WARNING, counted in :attr:`CacheStats.errors`, and the call goes to the endpoint as if nothing was
cached. After a failure the cache rests for :data:`REST` seconds, so a store that is down costs
one timeout per rest, not one per call.

Every value is stored with a checksum over its key and its bytes, checked on every read: a value
whose bits changed, or that was stored under another key, is a miss, deleted, counted as an error
and warned of once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..base._errors import ConfigError
from ..base._secret import redact
from ._stores import ByteStore, RedisStore, SQLiteStore

__all__ = ["DEFAULT_CACHE_MAX_BYTES", "REST", "CacheStats", "VectorCache", "check_cache", "open_cache"]

logger = logging.getLogger("hf_infer_core")

# 1 GiB: about 600,000 vectors of 384 float32 values (base64), 320,000 of float64 ones (JSON),
# with their keys; set cache_max_bytes for more.
DEFAULT_CACHE_MAX_BYTES = 1 << 30
# Seconds a failed store is left alone before it is tried again.
REST = 60.0

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Bytes of the checksum that ends every stored value.
_SUM = 8


def _checksum(key: str, value: bytes) -> bytes:
    # Keyed BLAKE2b: a value moved under another key fails as a changed bit does.
    return hashlib.blake2b(value, digest_size=_SUM, key=key.encode()[:64]).digest()


def seal(key: str, value: bytes) -> bytes:
    """``value`` as stored under ``key``: followed by a checksum of both."""
    return value + _checksum(key, value)


def unseal(key: str, stored: object) -> bytes | None:
    """The value ``stored`` holds under ``key``, or ``None`` when its checksum does not match."""
    if not isinstance(stored, bytes | bytearray | memoryview) or len(stored) <= _SUM:
        return None
    raw = bytes(stored)
    value, checksum = raw[:-_SUM], raw[-_SUM:]
    return value if _checksum(key, value) == checksum else None


@dataclass(frozen=True)
class CacheStats:
    """What a client's cache did since the client was made.

    ``hits`` and ``misses`` count chunks (the pieces of text sent, or not); ``documents`` counts
    ``embed_documents`` texts answered whole from their pooled vector, never chunked again.
    """

    hits: int = 0
    misses: int = 0
    errors: int = 0  # lookups or stores that failed (the endpoint answered instead)
    documents: int = 0

    def __add__(self, other: CacheStats) -> CacheStats:
        return CacheStats(
            self.hits + other.hits,
            self.misses + other.misses,
            self.errors + other.errors,
            self.documents + other.documents,
        )


class VectorCache:
    """A store with counts and a fallback: lookups and stores never raise."""

    def __init__(self, store: ByteStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._hits = self._misses = self._errors = self._documents = 0
        self._resting_until = float("-inf")
        self._warned = self._warned_corrupt = False

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._errors, self._documents)

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        """The stored value of each key (``None``: not stored, failed its checksum, or the store failed)."""
        found: list[bytes | None] = [None] * len(keys)
        if keys and not self._resting():
            try:
                values = list(self.store.mget(list(keys)))
                if len(values) != len(keys):
                    raise ValueError(f"the store answered {len(values)} values for {len(keys)} keys")
            except Exception as err:  # a store's own errors are many kinds: none may fail the call
                self._failed("read", err)
                return found
            found = [unseal(key, value) if value is not None else None for key, value in zip(keys, values, strict=True)]
            bad = [key for key, value, ok in zip(keys, values, found, strict=True) if value is not None and ok is None]
            if bad:
                self._corrupt(bad)
        return found

    def _corrupt(self, keys: list[str]) -> None:
        """Values whose checksum failed: deleted (where the store can), counted, warned of once."""
        with self._lock:
            self._errors += len(keys)
            warn, self._warned_corrupt = not self._warned_corrupt, True
        log = logger.warning if warn else logger.debug
        log(
            "embedding cache: %d stored values failed their checksum (changed bits); sent again and replaced", len(keys)
        )
        delete = getattr(self.store, "mdelete", None)
        if callable(delete):
            try:
                delete(keys)
            except Exception as err:
                self._failed("delete", err)

    def count(self, hits: int, misses: int, documents: bool = False) -> None:
        """Count a call's hits and misses (values that did not decode are misses); ``documents``: whole texts."""
        with self._lock:
            if documents:
                self._documents += hits
            else:
                self._hits += hits
                self._misses += misses
        logger.debug("embedding cache: %d %s hits, %d misses", hits, "document" if documents else "chunk", misses)

    def put(self, pairs: Sequence[tuple[str, bytes]]) -> None:
        """Store each value under its key, with its checksum (a failing store is logged, never raised)."""
        if pairs and not self._resting():
            try:
                self.store.mset([(key, seal(key, value)) for key, value in pairs])
            except Exception as err:
                self._failed("write", err)

    def _resting(self) -> bool:
        return self._clock() < self._resting_until

    def _failed(self, what: str, err: Exception) -> None:
        with self._lock:
            self._errors += 1
            self._resting_until = self._clock() + REST
            warn, self._warned = not self._warned, True
        message = redact(f"{type(err).__name__}: {err}", [])
        if warn:
            logger.warning(
                "embedding cache: %s failed (%s); the endpoint answers instead, and the cache is tried again in %gs",
                what,
                message,
                REST,
            )
        else:
            logger.debug("embedding cache: %s failed again (%s)", what, message)

    def close(self) -> None:
        if isinstance(self.store, SQLiteStore | RedisStore):
            self.store.close()  # a user's own store is theirs to close


def check_cache(cache: object) -> object:
    """Validate a ``cache=`` value without opening it (no file written, no network): return it as given.

    Raises:
        ValueError: not a path, a Redis URL or an object with ``mget`` and ``mset``; or a path
            whose folder does not exist, or that is not a file.
    """
    if cache is None:
        return None
    if isinstance(cache, str) and cache.startswith(_REDIS_SCHEMES):
        return cache
    if isinstance(cache, str | os.PathLike):
        path = os.fspath(cache)
        if not isinstance(path, str) or not path:
            raise ValueError("must be a non-empty path")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(f"the folder of {path!r} does not exist")
        if os.path.exists(path) and not os.path.isfile(path):
            raise ValueError(f"{path!r} is not a file")
        # A file or folder that cannot be written is not refused here: it is a store fault like a
        # full disk, a WARNING at first use while the endpoint answers (permissions change).
        return cache
    if callable(getattr(cache, "mget", None)) and callable(getattr(cache, "mset", None)):
        return cache
    raise ValueError(
        "must be a file path, a redis://, rediss:// or unix:// URL, or an object with mget(keys) and mset(pairs) "
        f"(got {type(cache).__name__})"
    )


def open_cache(cache: object, max_bytes: int) -> VectorCache | None:
    """The cache a client uses for ``cache=`` (checked by :func:`check_cache`); ``None`` for none.

    Never raises for a store that fails: a file that cannot be opened (locked, corrupted, read-only)
    is a WARNING when it is first used, and the endpoint answers.
    """
    if cache is None:
        return None
    if isinstance(cache, str) and cache.startswith(_REDIS_SCHEMES):
        return VectorCache(RedisStore(cache))
    if isinstance(cache, str | os.PathLike):
        return VectorCache(SQLiteStore(cache, max_bytes))
    if isinstance(cache, ByteStore):
        return VectorCache(cache)
    raise ConfigError([f"[cache] {check_cache.__doc__}"])
