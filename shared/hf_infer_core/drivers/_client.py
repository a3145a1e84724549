"""What both drivers share, for any task: options, the rate limiter, the adaptive limit, the cache, fork handling.

A task's clients (``EmbeddingClient``, ``RerankClient`` and their asyncio twins) subclass a
driver: each public method is one flow of the task's jobs, and the driver only performs its steps
(take a rate-limit token and send through its transport, sleep, run flows side by side), the
threaded driver (``_sync.py``) on worker threads, the asyncio driver (``_async.py``) as tasks.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Self, TypeVar

from ..base import _errors
from ..base._errors import HFInferError
from ..base._secret import shown_url
from ..cache._cache import CacheStats
from ..config import InferenceEndpoint
from ..config._options import RequestOptions
from ..limits import _concurrency
from ..limits._concurrency import AdaptiveLimit, Signal, Ticket, shared_adaptive_limit
from ..limits._ratelimit import (
    NoLimit,
    RateLimiter,
    RedisRateLimiter,
    after_fork_in_child,
    bucket_key,
    shared_rate_limiter,
)
from ..protocol._request import RequestCore
from ..protocol._retry import Jitter
from ..protocol._steps import HttpResult, Parallel, Send
from ..protocol._task import TaskArgs, TaskJobs

__all__: list[str] = []  # shared by _sync.py and _async.py; nothing public

logger = logging.getLogger("hf_infer_core")

# Every live client, so a forked child can give each one state of its own (see _reset_after_fork).
_CLIENTS: weakref.WeakSet[_ClientBase[Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    after_fork_in_child()
    _concurrency.after_fork_in_child()
    for client in list(_CLIENTS):
        client._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

T = TypeVar("T")


def load_signal(outcome: HttpResult | HFInferError | None, step: Send | None = None) -> Signal:
    """What an attempt's outcome says of the endpoint's load (see :mod:`._concurrency`).

    A discovery answer (``step`` with no inputs: ``/info``) says nothing of it: its few
    milliseconds are no batch's latency, and taken as the idle latency they kept the limit at its
    floor on an endpoint of eight slots.
    """
    if isinstance(outcome, HttpResult):
        if outcome.status_code < 300 and step is not None and not step.indices:
            return "none"
        if outcome.status_code == 503:
            return "unavailable"
        if outcome.status_code in _OVERLOAD:
            return "overload"
        return "ok" if outcome.status_code < 300 else "none"
    return "overload" if isinstance(outcome, _errors.TimeoutError) else "none"


# "Model is overloaded" (TEI's full queue), a failed backend. A 503 (a replica loading or
# starting) refuses one request as it does many: it parks a slot but sets no ceiling.
_OVERLOAD = frozenset({429, 424})


J = TypeVar("J", bound=TaskJobs[RequestCore])


class Activity:
    """What a client has done since it was made: inputs answered, seconds waited on the rate limit (for progress bars)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inputs = 0
        self.rate_limit_wait = 0.0

    def note(self, step: Send, waited: float, outcome: HttpResult | HFInferError | None) -> None:
        """One attempt: the seconds it waited for its rate-limit token; its inputs when answered."""
        answered = isinstance(outcome, HttpResult) and outcome.status_code < 300
        with self._lock:
            self.rate_limit_wait += waited or 0.0  # (an injected limiter may return nothing)
            if answered:
                self.inputs += len(step.indices)


class _ClientBase(Generic[J]):
    """What both drivers share, for any task: options, rate limiter, adaptive limit, auth, fork handling.

    A task's client class says which flows it runs (:meth:`_open_jobs`) and adds the methods that
    hand them to the driver; the drivers never name a task.
    """

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: RequestOptions | None,
        overrides: Mapping[str, object],
        *,
        rate_limiter: RateLimiter | None,
        clock: Callable[[], float],
        rng: Jitter | None,
    ) -> None:
        self._jobs: J = self._open_jobs(TaskArgs(endpoint, options, overrides, clock, rng))
        self.options: RequestOptions = self._jobs.core.options
        self._cache = self._jobs.open_cache()
        if self._cache is not None:
            self._jobs.cache, self._jobs.cache_counts = True, self._cache.count
        self._own_rng = rng is None
        self.rate_limiter: RateLimiter | RedisRateLimiter | NoLimit
        backend = self.options.rate_limit_backend
        if rate_limiter is not None:
            self.rate_limiter = rate_limiter
        elif endpoint.requests_per_minute is None:
            self.rate_limiter = NoLimit()
        elif backend == "local":
            self.rate_limiter = shared_rate_limiter(
                endpoint.url, endpoint.requests_per_minute, holder=self, api_key=endpoint.api_key
            )
        else:
            self.rate_limiter = RedisRateLimiter(
                backend,
                bucket_key(endpoint.url, endpoint.api_key),
                endpoint.requests_per_minute,
                deadline=self.options.retry_deadline,
                connect_deadline=self.options.connect_retry_deadline,
            )
        self._adaptive = self._adaptive_limit()
        self.activity = Activity()
        _CLIENTS.add(self)

    def _open_jobs(self, args: TaskArgs) -> J:
        """The task's flows over its core, its options built from ``args`` (the task's client says which)."""
        raise NotImplementedError

    @property
    def _core(self) -> RequestCore:
        return self._jobs.core

    def _adaptive_limit(self) -> AdaptiveLimit | None:
        """max_concurrency="auto": one limit per endpoint in the process, which every attempt holds a slot of."""
        if self.options.max_concurrency != "auto":
            return None
        endpoint = self.endpoint
        return shared_adaptive_limit(
            endpoint.url, endpoint.api_key, self.options.max_concurrency_limit, shown_url(endpoint.url)
        )

    def workers_for(self, step: Parallel[object]) -> int:
        """How many flows of ``step`` to run at once now: its window, or with "auto" the current limit.

        With "auto" the window is ``max_concurrency_limit`` (64): that many workers waiting for a
        few slots cost a client that is itself the bottleneck a tenth of its throughput. The
        drivers add workers as the limit grows.
        """
        wanted = min(step.window, step.size)
        if self._adaptive is None:
            return wanted
        if (announced := self._core.announced_concurrency) is not None:
            self._adaptive.announce(announced)  # discovery runs before a call's first Parallel step
        return min(wanted, self._adaptive.limit)

    def _lookup(self, keys: Sequence[str]) -> list[bytes | None]:
        """A Lookup step's answer: the cache's values, or none without a cache."""
        return self._cache.get(keys) if self._cache is not None else [None] * len(keys)

    def _store(self, pairs: Sequence[tuple[str, bytes]]) -> None:
        """A Store step: the values cached (nothing without a cache)."""
        if self._cache is not None:
            self._cache.put(pairs)

    @property
    def cache_stats(self) -> CacheStats:
        """The cache's hits, misses (in chunks) and failures since this client was made (all 0 without one)."""
        return self._cache.stats if self._cache is not None else CacheStats()

    @property
    def concurrency(self) -> int:
        """Requests allowed in flight now: ``max_concurrency``, or the adaptive limit's current value."""
        return self._adaptive.limit if self._adaptive is not None else self.options.window

    def _release(self, ticket: Ticket | None, outcome: HttpResult | HFInferError | None, step: Send) -> None:
        """Give an attempt's adaptive slot back, with what its answer says of the endpoint's load."""
        if ticket is not None and self._adaptive is not None:
            self._adaptive.release(ticket, load_signal(outcome, step))

    @property
    def on_info(self) -> Callable[[dict[str, Any]], None] | None:
        """Told TEI's ``/info`` fields once discovery has read them (the adapters' ``model``)."""
        return self._jobs.on_info

    @on_info.setter
    def on_info(self, callback: Callable[[dict[str, Any]], None] | None) -> None:
        self._jobs.on_info = callback

    def adopt(self, other: Self, connections: bool = True) -> None:
        """Take over what ``other`` (a client of the same endpoint) learnt: discovery, vector size, limits.

        ``connections``: its connections too, where the driver can (see each driver's ``adopt``).
        """
        self._jobs.adopt(other._jobs)

    def _reset_after_fork(self) -> None:
        """Give this client, in a forked child, connections, locks and a jitter source of its own."""
        if self._own_rng:
            self._core.rng.seed()  # children sharing the parent's jitter would retry in lockstep
        # The parent's requests in flight are not the child's, and its lock may be held: the
        # child finds its own limit (its requests share the endpoint with the parent's).
        self._adaptive = self._adaptive_limit()

    @property
    def endpoint(self) -> InferenceEndpoint:
        """The endpoint configuration."""
        return self._core.endpoint

    @property
    def batch_size(self) -> int:
        """Inputs per request (capped by TEI's ``max_client_batch_size`` after discovery)."""
        return self._core.batch_size

    @property
    def server_info(self) -> dict[str, Any] | None:
        """TEI ``/info`` fields (``model_id``, ``max_input_length``, ...) after discovery."""
        return self._core.server_info

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} url={shown_url(self.endpoint.url)!r} inference_id={self.endpoint.inference_id!r} "
            f"batch_size={self.batch_size} max_concurrency={self.options.max_concurrency!r}>"
        )
