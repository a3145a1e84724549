"""A token-bucket rate limiter shared by sync and async code, across threads and event loops.

Elasticsearch enforces ``rate_limit.requests_per_minute`` on the client with a token bucket of
size 1 per endpoint that starts full: one request may go at once, then requests are spaced
evenly, ``60 / requests_per_minute`` seconds apart. :class:`RateLimiter` does the same by
reservation: each caller atomically books the next free slot under a ``threading.Lock`` (held
for a few instructions, never across a wait) and then sleeps until its slot, with
``time.sleep`` or ``asyncio.sleep``. That makes one limiter correct for threads, for several
event loops, and for both at once. A booked slot is used even if its caller is cancelled while
waiting, so the rate can only come out lower than the limit, never higher.

Every client in a process that targets the same endpoint shares one limiter
(:func:`shared_rate_limiter`): the bucket's key is the normalised URL (scheme and host
lower-cased, default port dropped, trailing slash ignored) and a fingerprint of the api key, never
the key. While clients with different limits share a bucket, the smallest live limit applies; a
bucket whose clients are all gone is dropped, so an old strict client never slows later ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from ..base._errors import ConfigError, RateLimitBackendError, caused_by
from ..config import is_positive_long

__all__ = ["NoLimit", "RateLimiter", "RedisRateLimiter", "after_fork_in_child", "bucket_key", "shared_rate_limiter"]

logger = logging.getLogger("hf_infer_core")

# Set in a forked child until its first request: the WARNING that the budget is per process is
# logged then, once, so it reaches the logging configuration the child's own code sets up.
_fork_warning_pending = False


class RateLimiter:
    """Space requests ``60 / requests_per_minute`` seconds apart, with a burst of one.

    Args:
        requests_per_minute: The limit; must be positive.
        clock: Monotonic time in seconds; injectable so tests step time instead of sleeping.
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_holders",
        "_interval",
        "_lock",
        "_next_free",
        "_waiting",
        "requests_per_minute",
    )

    def __init__(self, requests_per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not is_positive_long(requests_per_minute):
            raise ValueError(f"requests_per_minute must be a positive integer, got {requests_per_minute!r}")
        self.requests_per_minute = requests_per_minute
        self._interval = 60.0 / requests_per_minute
        self._clock = clock
        # Re-entrant: a holder's finalizer (attach) takes it, and a garbage collection may run
        # that finalizer in a thread that already holds it, inside reserve or attach.
        self._lock = threading.RLock()
        # The earliest time the next request may start; -inf means the bucket is full.
        self._next_free = float("-inf")
        self._waiting = 0
        # The limits asked for by the live clients sharing this limiter (see attach).
        self._holders: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()

    @property
    def interval(self) -> float:
        """Seconds between two requests at the limit."""
        return self._interval

    def attach(self, holder: object, requests_per_minute: int) -> None:
        """Record that ``holder`` uses this limiter at ``requests_per_minute``.

        The limit in force is the smallest of the live holders' (and of the limit the limiter was
        made with, while no holder is attached); when a holder is collected, the limit is
        recomputed from those left.
        """
        with self._lock:
            self._holders[holder] = requests_per_minute
            self._set_limit(min(self._holders.values()))
        weakref.finalize(holder, self._holder_gone)

    def _holder_gone(self) -> None:
        with self._lock:
            limits = list(self._holders.values())  # len() may still count the entry being removed
            if limits:
                self._set_limit(min(limits))

    def _set_limit(self, requests_per_minute: int) -> None:
        self.requests_per_minute = requests_per_minute
        self._interval = 60.0 / requests_per_minute

    def reserve(self) -> float:
        """Book the next free slot and return how long to wait for it (0.0 when it is now)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_free)
            self._next_free = slot + self._interval
            return slot - now

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block the calling thread until it may send one request; return the time waited."""
        if _fork_warning_pending:
            _warn_forked(self)
        wait = self.reserve()
        if wait > 0:
            self._waiting += 1
            try:
                sleep(wait)
            finally:
                self._waiting -= 1
        return wait

    async def aacquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> float:
        """Wait, without blocking the event loop, until one request may be sent; return the time waited."""
        if _fork_warning_pending:
            _warn_forked(self)
        wait = self.reserve()
        if wait > 0:
            self._waiting += 1
            try:
                await sleep(wait)
            finally:
                self._waiting -= 1
        return wait

    def __repr__(self) -> str:
        backlog = max(0.0, self._next_free - self._clock())
        return (
            f"<RateLimiter {self.requests_per_minute}/min interval={self._interval:.4f}s "
            f"backlog={backlog:.3f}s waiting={self._waiting}>"
        )


# Weak values: a bucket lives as long as a client holds it.
_SHARED: weakref.WeakValueDictionary[str, RateLimiter] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def bucket_key(url: str, api_key: SecretStr | None = None) -> str:
    """The rate-limit bucket of an endpoint: its normalised URL and a fingerprint of its key.

    ``HTTP://Host:80/embed/`` and ``http://host/embed`` are one bucket; two keys on one URL are
    two (an Inference Endpoint limits per token). The fingerprint is a truncated SHA-256: the
    key itself is never part of a key, a log line or a Redis key.
    """
    parsed = urlsplit(url)
    scheme = parsed.scheme.lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    port = "" if parsed.port in (None, default_port) else f":{parsed.port}"
    # Percent-encoded as sent (an already encoded %xx kept), so two spellings of a path are one.
    path = quote(parsed.path, safe="/%:@!$&'()*+,;=~").rstrip("/")
    # A query string may carry a token: it tells buckets apart by a fingerprint, never as written.
    query = f"?{hashlib.sha256(parsed.query.encode()).hexdigest()[:16]}" if parsed.query else ""
    host = (parsed.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host  # [::1]:8080 and [::1:8080] are not one address
    normalised = f"{scheme}://{host}{port}{path}{query}"
    fingerprint = hashlib.sha256(api_key.get_secret_value().encode()).hexdigest()[:16] if api_key else "-"
    return f"{normalised}#{fingerprint}"


class NoLimit:
    """No client-side limit (``requests_per_minute=None``): every request may go at once."""

    __slots__ = ()
    requests_per_minute = None

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Return at once."""
        return 0.0

    async def aacquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> float:
        """Return at once."""
        return 0.0

    def __repr__(self) -> str:
        return "<NoLimit>"


def shared_rate_limiter(
    url: str, requests_per_minute: int, *, holder: object | None = None, api_key: SecretStr | None = None
) -> RateLimiter:
    """Return the process-wide limiter of the endpoint ``url`` (and ``api_key``), ``holder`` attached.

    ``holder`` (the client) keeps the limiter alive and its ``requests_per_minute`` counts towards
    the limit in force while it lives. Without a holder, the caller must keep the limiter.
    """
    key = bucket_key(url, api_key)
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None:
            limiter = _SHARED[key] = RateLimiter(requests_per_minute)
    if holder is not None:
        limiter.attach(holder, requests_per_minute)
    elif requests_per_minute < limiter.requests_per_minute:
        with limiter._lock:
            limiter._set_limit(requests_per_minute)
    return limiter


def _warn_forked(limiter: RateLimiter) -> None:
    global _fork_warning_pending
    with _SHARED_LOCK:
        if not _fork_warning_pending:
            return
        _fork_warning_pending = False
    logger.warning(
        "hf-infer: process %d was forked from %d and enforces requests_per_minute=%d on its own: "
        "N forked workers send up to N times the endpoint's limit. Give each worker its share, or "
        "one budget shared by every process (rate_limit_backend, see the README).",
        os.getpid(),
        os.getppid(),
        limiter.requests_per_minute,
    )


def after_fork_in_child() -> None:
    """Give every limiter new locks in a forked child (a lock held at fork would never be released)."""
    global _SHARED_LOCK, _fork_warning_pending
    _SHARED_LOCK = threading.Lock()
    for limiter in _SHARED.values():
        limiter._lock = threading.RLock()
    _fork_warning_pending = True


# --------------------------------------------------------------------------- one budget for many processes

# One round trip reserves the next free slot of an endpoint's budget, for every process and
# machine that uses the same Redis: the key holds the next allowed time (microseconds, on the
# Redis server's clock, so the workers' clocks never disagree). Returns the microseconds to wait.
# %.0f keeps all digits: Lua's tostring would print a 16-digit number in exponent form.
# KEYS[2] remembers every sharer's interval (field) with when it was last used (value): the slot
# spacing is the largest interval used in the last minute, so processes sharing one budget with
# different requests_per_minute never exceed the smallest of them (the local backend's promise).
_RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mine = ARGV[1]
redis.call('HSET', KEYS[2], mine, string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[2], 120000)
local interval = tonumber(mine)
local seen = redis.call('HGETALL', KEYS[2])
for i = 1, #seen, 2 do
  local other = tonumber(seen[i])
  if now - tonumber(seen[i + 1]) > 60000000 then
    redis.call('HDEL', KEYS[2], seen[i])
  elseif other > interval then
    interval = other
  end
end
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = now
if next_free > now then slot = next_free end
local after = slot + interval
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 60000)
return slot - now
"""

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _plain(err: BaseException) -> str:
    """An error's message with anything URL- or token-shaped removed (a Redis URL may hold a password)."""
    from ..base._secret import redact

    return re.sub(r"\b(?:rediss?|unix)://\S+", "[REDACTED]", redact(str(err)))[:300]


def is_redis_url(value: str) -> bool:
    """True for a ``rate_limit_backend`` naming a Redis server."""
    return value.startswith(_REDIS_SCHEMES)


class RedisRateLimiter:
    """Space requests ``60 / requests_per_minute`` s apart across every process sharing one Redis.

    Each request reserves its slot atomically in one round trip (a Lua script), then sleeps until
    it, so the budget holds for any number of workers on any number of machines. The Redis key is
    ``hf-infer:rate:`` and the endpoint's :func:`bucket_key` (normalised URL and key fingerprint),
    never the key. Redis out of reach: retried with backoff for ``deadline`` seconds (the
    client's ``retry_deadline``), then :class:`~hf_infer_core.RateLimitBackendError`; never a
    silent fall-back to no limit. Safe after ``fork`` (redis-py gives a child new connections).

    Args:
        url: ``redis://host:port/db``, ``rediss://...`` or ``unix:///path.sock``.
        endpoint_key: The endpoint's :func:`bucket_key`.
        requests_per_minute: This client's limit (every sharer should use the same).
        deadline: Seconds to keep trying an unreachable Redis for one request.
    """

    def __init__(
        self,
        url: str,
        endpoint_key: str,
        requests_per_minute: int,
        *,
        deadline: float = 120.0,
        connect_deadline: float = 3.0,
    ) -> None:
        if not is_redis_url(url):
            raise ValueError("rate_limit_backend must be 'local' or a redis://, rediss:// or unix:// URL")
        if not is_positive_long(requests_per_minute):
            raise ValueError(f"requests_per_minute must be a positive integer, got {requests_per_minute!r}")
        try:
            import redis
        except ImportError as err:
            raise ImportError('a Redis rate_limit_backend needs redis: pip install "hf-infer[redis]"') from err
        self.requests_per_minute = requests_per_minute
        self.key = f"hf-infer:rate:{endpoint_key}"
        self._interval_us = max(1, round(60_000_000 / requests_per_minute))
        self._deadline = deadline
        # Nothing listening there, or a host that does not resolve: reported as soon as an
        # endpoint that refuses is (connect_retry_deadline), not after the whole retry_deadline.
        self._connect_deadline = min(connect_deadline, deadline)
        # No single round trip may outlast the deadline (a Redis that never answers is reported
        # within it, not after a fixed 5 s).
        timeout = min(5.0, deadline)
        try:
            self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except (ValueError, redis.RedisError) as err:
            raise ConfigError([f"[rate_limit_backend] cannot be used: {type(err).__name__}: {_plain(err)}"]) from None
        self._script = self._redis.register_script(_RESERVE_LUA)
        self._limits_key = self.key + ":limits"
        # An outage is waited out; anything else Redis answers (a wrong password, an ACL without
        # EVALSHA, a DB index out of range, bad TLS options) is a misconfiguration, reported at once.
        self._outages: tuple[type[BaseException], ...] = (redis.TimeoutError, redis.BusyLoadingError)
        self._connection_error: type[BaseException] = redis.ConnectionError
        self._auth_errors: tuple[type[BaseException], ...] = (redis.AuthenticationError,)
        # Where the server is, for messages: host and port only (a URL may hold a password).
        kwargs = self._redis.connection_pool.connection_kwargs
        self._where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"

    @property
    def interval(self) -> float:
        """Seconds between two requests at the limit."""
        return self._interval_us / 1e6

    def reserve(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Book the next free slot in Redis; return seconds to wait for it. Retries an unreachable Redis."""
        started = time.monotonic()
        backoff = 0.05
        while True:
            try:
                return int(self._script(keys=[self.key, self._limits_key], args=[self._interval_us])) / 1e6
            except Exception as err:
                if not self._is_outage(err):
                    raise RateLimitBackendError(
                        f"the Redis rate_limit_backend at {self._where} refused the budget's script: "
                        f"{type(err).__name__}: {_plain(err)} (a configuration problem: not retried)"
                    ) from None
                waited = time.monotonic() - started
                unreachable = caused_by(err, (ConnectionRefusedError, socket.gaierror))
                if waited + backoff > (self._connect_deadline if unreachable else self._deadline):
                    reason = (
                        f"refused every connection for {waited:.1f}s (is redis-server running at that address?)"
                        if unreachable
                        else f"did not answer for {waited:.1f}s ({type(err).__name__})"
                    )
                    raise RateLimitBackendError(
                        f"the Redis rate_limit_backend at {self._where} {reason}; no request was sent without its slot"
                    ) from err
                sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _is_outage(self, err: BaseException) -> bool:
        """True for a Redis that is down, restarting or slow; False for one that says no."""
        if isinstance(err, self._auth_errors):
            return False
        if isinstance(err, self._outages):
            return True
        # redis-py reports bad TLS options and refused connections alike as ConnectionError: only
        # an OS-level failure underneath (refused, reset, unreachable) is an outage.
        return isinstance(err, self._connection_error) and not isinstance(err.__cause__, ValueError)

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block the calling thread until its slot; return the time waited."""
        wait = self.reserve(sleep)
        if wait > 0:
            sleep(wait)
        return wait

    async def aacquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> float:
        """Wait, without blocking the event loop, until this request's slot; return the time waited."""
        # The blocking client on a worker thread: one connection pool for every event loop, and
        # redis-py's fork handling, instead of an asyncio client per loop. A round trip is ~0.1 ms.
        wait = await asyncio.to_thread(self.reserve)
        if wait > 0:
            await sleep(wait)
        return wait

    def __repr__(self) -> str:
        return f"<RedisRateLimiter {self.requests_per_minute}/min at {self._where} key={self.key!r}>"
