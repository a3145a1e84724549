"""A token-bucket rate limiter shared by sync and async code, across threads and event loops.

Elasticsearch enforces ``rate_limit.requests_per_minute`` on the client with a token bucket of
size 1 per endpoint that starts full: one request may go at once, then requests are spaced
evenly, ``60 / requests_per_minute`` seconds apart. :class:`RateLimiter` does the same by
reservation: each caller atomically books the next free slot under a ``threading.Lock`` (held
for a few instructions, never across a wait) and then sleeps until its slot, with
``time.sleep`` or ``asyncio.sleep``. That makes one limiter correct for threads, for several
event loops, and for both at once. A booked slot is used even if its caller is cancelled while
waiting, so the rate can only come out lower than the limit, never higher.

Every client in a process that targets the same URL shares one limiter
(:func:`shared_rate_limiter`); if two clients ask for different limits, the stricter wins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter", "after_fork_in_child", "shared_rate_limiter"]

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

    __slots__ = ("_clock", "_interval", "_lock", "_next_free", "_waiting", "requests_per_minute")

    def __init__(self, requests_per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
        self.requests_per_minute = requests_per_minute
        self._interval = 60.0 / requests_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        # The earliest time the next request may start; -inf means the bucket is full.
        self._next_free = float("-inf")
        self._waiting = 0

    @property
    def interval(self) -> float:
        """Seconds between two requests at the limit."""
        return self._interval

    def tighten(self, requests_per_minute: int) -> None:
        """Lower the limit to ``requests_per_minute`` if that is stricter than the current one."""
        with self._lock:
            if requests_per_minute < self.requests_per_minute:
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


_SHARED: dict[str, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_rate_limiter(url: str, requests_per_minute: int) -> RateLimiter:
    """Return the process-wide limiter for ``url``, created or tightened to ``requests_per_minute``."""
    with _SHARED_LOCK:
        limiter = _SHARED.get(url)
        if limiter is None:
            limiter = _SHARED[url] = RateLimiter(requests_per_minute)
        else:
            limiter.tighten(requests_per_minute)
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
        limiter._lock = threading.Lock()
    _fork_warning_pending = True
