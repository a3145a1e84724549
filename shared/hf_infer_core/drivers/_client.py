"""What both endpoint clients share: options, the rate limiter, fork handling, and the I/O helpers.

:class:`~hf_infer_core.EmbeddingClient` (threads, ``_sync.py``) and
:class:`~hf_infer_core.AsyncEmbeddingClient` (asyncio, ``_async.py``) are drivers: each public
method is one flow of :class:`~._job.Jobs`, and a driver only performs its steps (take a
rate-limit token and send, sleep, run flows side by side), the sync client on threads sharing one
``httpx.Client``, the async client as tasks sharing one ``httpx.AsyncClient`` per event loop.
"""

from __future__ import annotations

import builtins
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import SecretStr

from ..base import _errors
from ..base._errors import ClientClosedError, HFInferError, TransportError, caused_by
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
from ..protocol._body import BoundedBody
from ..protocol._request import RequestCore
from ..protocol._steps import HttpResult, Parallel, Send
from ..protocol._task import TaskArgs, TaskJobs

__all__: list[str] = []  # shared by _sync.py and _async.py; nothing public

logger = logging.getLogger("hf_infer_core")

# Every live client, so a forked child can give each one state of its own (see _reset_after_fork).
_CLIENTS: weakref.WeakSet[_ClientBase[Any]] = weakref.WeakSet()
# Connections inherited from the parent: a child must neither use them (the parent's requests and
# the child's would interleave on one socket and swap answers) nor close them (closing a TLS
# connection sends close_notify on the parent's socket). Kept referenced so GC never closes them.
_INHERITED: list[object] = []


def _after_fork_in_child() -> None:
    after_fork_in_child()
    _concurrency.after_fork_in_child()
    for client in list(_CLIENTS):
        client._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

T = TypeVar("T")

_CONNECT_TIMEOUT = 5.0


class _BearerAuth(httpx.Auth):
    """The one holder of the api key: adds ``Authorization: Bearer`` to each request as it is sent."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "<BearerAuth [REDACTED]>"


def _transport_error(err: BaseException, url: httpx.URL, *, expired: bool = False) -> HFInferError:
    where = _shown(url)
    error: HFInferError
    if expired:
        error = _errors.TimeoutError(f"no complete answer from {where} within the attempt's timeout")
    elif caused_by(err, socket.gaierror):
        error = TransportError(f"the host name of {where} does not resolve: is the URL right?")
        error.refused = error.unresolved = True
    elif caused_by(err, ConnectionRefusedError):
        error = TransportError(f"connection refused by {where}: is the endpoint running at that address?")
        error.refused = True
    elif isinstance(err, httpx.LocalProtocolError):
        # Its message holds the offending header whole (the Authorization one: the key).
        error = TransportError(
            f"the request to {where} could not be sent: a header or the URL is not valid HTTP ({type(err).__name__})"
        )
        error.local = True
    elif isinstance(err, httpx.TimeoutException):
        error = _errors.TimeoutError(f"no answer from {where} in time ({type(err).__name__})")
    else:
        error = TransportError(f"request to {where} failed: {type(err).__name__}: {err}")
    # A local protocol error's own message holds the refused header: it is not chained.
    error.__cause__ = None if isinstance(error, TransportError) and error.local else err
    return error


# What an attempt may end in, besides an answer: what both drivers catch and hand to attempt_outcome.
ATTEMPT_ERRORS = (HFInferError, httpx.HTTPError, builtins.TimeoutError, RuntimeError)


def attempt_outcome(
    ended: HttpResult | BaseException, url: httpx.URL, deadline: float, closed: bool
) -> HttpResult | HFInferError:
    """What one attempt came to, decided once for both drivers.

    ``ended``: the answer read whole, or what the attempt raised. An answer completed after the
    attempt's deadline is the deadline's (a server that drips stays within no timeout of
    httpx's); a transport error after it too. Our own errors (a body too large, bad gzip) stand.
    httpx's "client has been closed" (``closed``) is :class:`ClientClosedError`, raised.
    Anything else is not an attempt's outcome, and is raised as it is.
    """
    now = time.monotonic()
    if isinstance(ended, HttpResult):
        return _transport_error(builtins.TimeoutError(), url, expired=True) if now > deadline else ended
    if isinstance(ended, HFInferError):
        return ended
    if isinstance(ended, httpx.HTTPError):
        return _transport_error(ended, url, expired=now >= deadline)
    if isinstance(ended, builtins.TimeoutError):  # asyncio.timeout's, at the deadline
        return _transport_error(ended, url, expired=True)
    if isinstance(ended, RuntimeError) and closed:
        raise ClientClosedError("the client was closed while this call was using it") from ended
    raise ended


def load_signal(outcome: HttpResult | HFInferError | None) -> Signal:
    """What an attempt's outcome says of the endpoint's load (see :mod:`._concurrency`)."""
    if isinstance(outcome, HttpResult):
        if outcome.status_code in _OVERLOAD:
            return "overload"
        return "ok" if outcome.status_code < 300 else "none"
    return "overload" if isinstance(outcome, _errors.TimeoutError) else "none"


# "Model is overloaded" (TEI's full queue), a replica starting or unavailable, a failed backend.
_OVERLOAD = frozenset({429, 503, 424})


def _shown(url: httpx.URL) -> str:
    """``scheme://host[:port]/path``: no credentials, no query string, no colon without a port."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}{url.path}"


def _attempt_timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(_CONNECT_TIMEOUT, seconds))


def _reader(response: httpx.Response, step: Send) -> BoundedBody:
    if response.is_stream_consumed:
        # An in-memory response (httpx.MockTransport) that httpx has already read and decoded.
        body = BoundedBody(step.max_bytes)
        body.feed(response.content)
        return body
    headers = response.headers
    return BoundedBody(step.max_bytes, headers.get("content-encoding"), headers.get("content-length"))


def _result(response: httpx.Response, body: bytes) -> HttpResult:
    return HttpResult(status_code=response.status_code, body=body, retry_after=response.headers.get("retry-after"))


def _log(step: Send, url: httpx.URL, outcome: HttpResult | HFInferError, started: float) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        status = outcome.status_code if isinstance(outcome, HttpResult) else type(outcome).__name__
        logger.debug(
            "POST %s -> %s attempt %d in %.1f ms (%d inputs)",
            url.path,
            status,
            step.attempt,
            (time.perf_counter() - started) * 1000,
            len(step.indices),
        )


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
        overrides: Mapping[str, Any],
        *,
        rate_limiter: RateLimiter | None,
        clock: Callable[[], float],
        rng: Any,
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
        key = endpoint.api_key
        # A keyless endpoint (a local TEI server) sends no Authorization header at all.
        self._auth: httpx.Auth | None = _BearerAuth(key) if key is not None else None
        timeout = self.options.timeout
        self._timeout = httpx.Timeout(timeout, connect=min(_CONNECT_TIMEOUT, timeout))
        concurrency = self.options.window
        # As many kept alive as may be open: threads sharing the client each keep their connection
        # (a smaller pool closed one and opened another for most calls of 8 threads).
        connections = max(concurrency, 10)
        self._limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
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
        return wanted if self._adaptive is None else min(wanted, self._adaptive.limit)

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

    def _release(self, ticket: Ticket | None, outcome: HttpResult | HFInferError | None) -> None:
        """Give an attempt's adaptive slot back, with what its answer says of the endpoint's load."""
        if ticket is not None and self._adaptive is not None:
            self._adaptive.release(ticket, load_signal(outcome))

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

    def _request_options(self, step: Send) -> dict[str, Any]:
        """The httpx request arguments of a step, for either client: body, headers, auth, timeouts."""
        return {
            "content": step.body,
            "headers": self._core.headers,
            "auth": self._auth,
            "timeout": _attempt_timeout(step.timeout),
        }

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} url={shown_url(self.endpoint.url)!r} inference_id={self.endpoint.inference_id!r} "
            f"batch_size={self.batch_size} max_concurrency={self.options.max_concurrency!r}>"
        )
