"""Where cached vectors live: a SQLite file, Redis, or any object with ``mget`` and ``mset``.

:class:`SQLiteStore` is the default for a path: an embedded database (a rollback journal), safe for many
threads and processes on one machine, bounded by ``max_bytes`` with the least recently used
entries evicted. :class:`RedisStore` shares one cache between machines (Ray workers); its bound
is the server's own (``maxmemory`` with ``maxmemory-policy allkeys-lru``). Anything else with
``mget(keys) -> list[bytes | None]`` and ``mset(pairs)`` (and ``mdelete(keys)``, used when it has one) is used as it is (LangChain's
``ByteStore``, e.g. ``LocalFileStore``); its bound is its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["ByteStore", "RedisStore", "SQLiteStore"]

logger = logging.getLogger("hf_infer_core")

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
    """A SQLite file of ``key -> vector`` with the time each was last used; at most ``max_bytes`` on disk.

    One connection per process (a forked child opens its own), shared by its threads under a
    lock, opened on first use: construction touches no file, so a locked, corrupted or read-only
    file fails a lookup (which the cache turns into a WARNING and a miss), never the client. A
    file that is not a database, or a malformed one, is moved aside (``<path>.corrupt-<time>``)
    and a new one made. A lock held by another process is waited for ``busy_timeout`` seconds.

    A rollback journal, not WAL: WAL maps its index file into memory, and a process whose mapped
    file is truncated or made unreadable under it dies of SIGBUS; and the journal is gone after
    each write, so ``max_bytes`` bounds the file: entries are evicted, least recently used first,
    until the pages in use fit 80% of it, and freed pages are given back to the file system.
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

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r} max_bytes={self.max_bytes}>"

    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            # The parent's connection is not the child's: never used (nor closed) here.
            try:
                db = self._open()
            except sqlite3.DatabaseError as err:
                if isinstance(err, sqlite3.OperationalError) and not _malformed(err):
                    raise  # locked, read-only, disk full: the file is sound, try again later
                logger.warning("embedding cache: %s", self._move_aside(err))
                db = self._open()
            self._db, self._pid = db, os.getpid()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA synchronous=NORMAL")
            if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                # Incremental: pages freed by eviction can be returned to the file system. Takes
                # effect on a new file at once, on an older one after a VACUUM.
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                if db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                    db.execute("VACUUM")
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, value BLOB NOT NULL, used INTEGER NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used)")
            db.execute("SELECT key FROM vectors LIMIT 1").fetchall()  # a truncated file fails here, not mid-run
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, err: Exception) -> str:
        """Move the unsound file aside; return what happened, for the one WARNING."""
        aside = f"{self.path}.corrupt-{time.time_ns()}"
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path + suffix, aside + suffix)
        return f"{self.path!r} is not a sound SQLite file ({err}); moved aside to {aside!r} and made anew"

    @contextlib.contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; a file found corrupted while in use is moved aside and made anew.

        The operation that met it still fails (the cache counts it, and the endpoint answers).
        """
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.DatabaseError as err:
                if not _malformed(err) or self._db is None:
                    raise
                self._db.close()
                self._db = None
                moved = self._move_aside(err)
                self._connection()  # made anew now: the next use after the cache's rest finds it
                raise sqlite3.DatabaseError(moved) from err

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        now = self._clock()
        with self._using() as db:
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
        with self._using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, value, used) VALUES (?, ?, ?)",
                    [(key, value, now) for key, value in key_value_pairs],
                )
                evicted = self._evict(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # a full disk or an I/O error has rolled it back already
                    db.execute("ROLLBACK")
                raise
            if evicted:
                db.execute("PRAGMA incremental_vacuum")  # the freed pages back to the file system

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete the values of ``keys`` (those whose checksum failed)."""
        with self._using() as db:
            for start in range(0, len(keys), _PER_QUERY):
                part = list(keys[start : start + _PER_QUERY])
                db.execute(f"DELETE FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)  # noqa: S608

    def _evict(self, db: sqlite3.Connection) -> bool:
        """Delete the least recently used entries until the pages in use fit 80% of ``max_bytes``.

        80%: the file also holds the index, and a write's journal stands beside it until it commits.
        """
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        target = self.max_bytes * 0.8
        evicted = False
        while True:
            pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
            used = pages * page_size
            if used <= target:
                return evicted
            count = db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            if count == 0:
                return evicted
            # The share of entries over the bound, and a tenth more: a few rounds at most.
            excess = max(1, int(count * (used - target) / used * 1.1) + 1)
            db.execute("DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used LIMIT ?)", (excess,))
            evicted = True

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None


def _malformed(err: sqlite3.Error) -> bool:
    """True for the errors of a file that is not a sound database (rather than one in use or read-only)."""
    text = str(err).lower()
    return any(word in text for word in ("malformed", "not a database", "file is encrypted", "disk image"))


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

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete the values of ``keys`` (those whose checksum failed)."""
        if keys:
            self._redis().delete(*[self.PREFIX + key for key in keys])

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None

    def __repr__(self) -> str:
        return "<RedisStore>"  # the URL may hold a password
