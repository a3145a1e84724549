"""Where cached vectors live: a SQLite file, Redis, or any object with ``mget`` and ``mset``.

:class:`SQLiteStore` is the default for a path: an embedded database in WAL mode, safe for many
threads and processes on one machine, bounded by ``max_bytes`` with the least recently used
entries evicted. :class:`RedisStore` shares one cache between machines (Ray workers); its bound
is the server's own (``maxmemory`` with ``maxmemory-policy allkeys-lru``). Anything else with
``mget(keys) -> list[bytes | None]`` and ``mset(pairs)`` is used as it is (LangChain's
``ByteStore``, e.g. ``LocalFileStore``); its bound is its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..base._errors import ConfigError

__all__ = ["ByteStore", "RedisStore", "SQLiteStore"]

# A hit's last use is written again only when a minute older: LRU to the minute, and a cached
# rerun reads without writing.
_TOUCH_NS = 60 * 10**9
# Keys per SQL statement: well under SQLite's 32,766 bound variables.
_PER_QUERY = 500


@runtime_checkable
class ByteStore(Protocol):
    """What a cache store provides: LangChain's ``ByteStore`` has exactly this."""

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """The value of each key, or ``None``."""

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        """Store each value under its key."""


class SQLiteStore:
    """A SQLite file of ``key -> vector`` with the time each was last used; at most ``max_bytes`` in use.

    One connection per process (a forked child opens its own), shared by its threads under a
    lock. A lock held by another process is waited for ``busy_timeout`` seconds, then raised
    (the cache's caller falls back to the endpoint).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int,
        busy_timeout: float = 5.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = os.fspath(path)
        self._clock = clock  # nanoseconds, for the last-use times (wall clock: shared by processes)
        self.max_bytes = max_bytes
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._pid = -1
        self._db: sqlite3.Connection | None = None
        try:
            with self._lock:
                db = self._connection()
                # A write at construction: a read-only file or folder fails here, not mid-run.
                db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('opened', ?)", (str(time.time()),))
        except (sqlite3.Error, OSError) as err:
            raise ConfigError([f"[cache] cannot use {self.path!r} as a cache file: {err}"]) from None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            # The parent's connection is not the child's: never used (nor closed) here.
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, value BLOB NOT NULL, used INTEGER NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used)")
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            self._db, self._pid = db, os.getpid()
        return self._db

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        now = self._clock()
        with self._lock:
            db = self._connection()
            for start in range(0, len(keys), _PER_QUERY):
                part = list(keys[start : start + _PER_QUERY])
                marks = ",".join("?" * len(part))
                rows = db.execute(f"SELECT key, value FROM vectors WHERE key IN ({marks})", part).fetchall()  # noqa: S608
                found.update((key, bytes(value)) for key, value in rows)
                hit = [key for key in part if key in found]
                if hit:  # least recently used: a hit is used now (to the minute: a rerun writes nothing)
                    marks = ",".join("?" * len(hit))
                    db.execute(
                        f"UPDATE vectors SET used = ? WHERE key IN ({marks}) AND used < ?",  # noqa: S608
                        [now, *hit, now - _TOUCH_NS],
                    )
        return [found.get(key) for key in keys]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        now = self._clock()
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, value, used) VALUES (?, ?, ?)",
                    [(key, value, now) for key, value in key_value_pairs],
                )
                self._evict(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _evict(self, db: sqlite3.Connection) -> None:
        """Delete the least recently used entries until the pages in use fit ``max_bytes``."""
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        while True:
            pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
            used = pages * page_size
            if used <= self.max_bytes:
                return
            count = db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            if count == 0:
                return
            # The share of entries over the bound, and a tenth more: a few rounds at most.
            excess = max(1, int(count * (used - self.max_bytes) / used * 1.1) + 1)
            db.execute("DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used LIMIT ?)", (excess,))

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None


class RedisStore:
    """Cached vectors in Redis under ``hf-infer:vec:<key>``; one cache for every machine that reaches it.

    Connections are made on first use (construction touches no network), and each attempt is
    bounded by ``timeout`` seconds: a Redis that is down costs a call that long once, then the
    caller falls back to the endpoint.
    """

    PREFIX = "hf-infer:vec:"

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        self._client: Any = None
        self._pid = -1

    def _redis(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            self._pid = os.getpid()
        return self._client

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values: list[bytes | None] = self._redis().mget([self.PREFIX + key for key in keys])
        return values

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        if key_value_pairs:
            self._redis().mset({self.PREFIX + key: value for key, value in key_value_pairs})

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None

    def __repr__(self) -> str:
        return "<RedisStore>"  # the URL may hold a password
