"""The threaded driver: the steps of a task's flows performed on threads (the blocking clients' base).

Each public method of a task's client runs one flow. Up to ``max_concurrency`` batches run on
worker threads sharing one transport (``_seam.py``; httpx's in ``_httpx.py``); the calling thread
waits on an event (so Ctrl-C and a batch that fails for good stop the call at once), and every
attempt is bounded from connect to its last byte.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Never, Self

from ..base._errors import HFInferError, RateLimitBackendError
from ..config import InferenceEndpoint
from ..config._options import RequestOptions
from ..limits._concurrency import Ticket
from ..limits._ratelimit import RateLimiter
from ..protocol._retry import Jitter
from ..protocol._steps import (
    END,
    Discover,
    Emit,
    Flow,
    HttpResult,
    Lookup,
    Parallel,
    Read,
    Send,
    Settle,
    Sleep,
    Start,
    Step,
    Store,
    unknown_step,
)
from ._client import J, T, _ClientBase
from ._seam import INHERITED, SyncTransport
from ._threads import IN_WORKER, Abort, Aborted, Call, Shared, as_worker

if TYPE_CHECKING:
    from ._httpx import HttpClient, HttpTransport

__all__ = ["SyncDriver"]


class SyncDriver(_ClientBase[J]):
    """The threaded driver of any task's flows: worker threads sharing one transport.

    A task's blocking client subclasses it (:class:`~hf_infer_core.EmbeddingClient`); its
    constructor arguments are the client's.
    """

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: RequestOptions | None = None,
        http_client: HttpClient | None = None,
        transport: HttpTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
        **overrides: object,
    ) -> None:
        super().__init__(endpoint, options, overrides, rate_limiter=rate_limiter, clock=clock, rng=rng)
        self._sleep = sleep
        # The HTTP library behind the seam (_seam.py): httpx, or a user's httpx client or transport.
        self._wire = self._open_transport(http_client, transport)
        self._discover_lock = threading.Lock()
        # The worker threads, started on demand and kept for the client's next calls.
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _open_transport(self, http_client: HttpClient | None, transport: HttpTransport | None) -> SyncTransport:
        """The transport attempts go through: httpx (a test double overrides this)."""
        from ._httpx import HttpxTransport

        return HttpxTransport(self.options, self.endpoint.api_key, http_client, transport)

    def _reset_after_fork(self) -> None:
        super()._reset_after_fork()
        self._discover_lock = threading.Lock()
        # The parent's worker threads do not exist here, but its executor would count them idle.
        INHERITED.append(self._pool)
        self._pool = None
        self._pool_lock = threading.Lock()
        self._wire.after_fork()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this object created it, and let the worker threads end."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._wire.close()  # connections closed when every client using them has let them go
        if self._cache is not None:
            self._cache.close()  # a cache file's connection (reopened if the client is used again)

    def adopt(self, other: Self, connections: bool = True) -> None:
        """Take over what ``other`` (same endpoint, older options) learnt, and its connections if they fit.

        Used when an adapter's setting changed: the new client neither asks ``/info`` again nor
        opens new connections. ``other`` keeps working for its calls in flight.
        """
        super().adopt(other)
        if connections:
            self._wire.adopt(other._wire)

    # ------------------------------------------------------------------ the driver

    def _run(self, flow: Flow[T], call: Call | None = None) -> T:
        driven = self._drive(flow, call or Call())
        try:
            item = next(driven)
        except StopIteration as stop:
            result: T = stop.value
            return result
        driven.close()  # an Emit outside a stream: nobody to hand its items to
        raise RuntimeError(f"a flow run to its value asked for a step only a stream performs (Emit of {item!r})")

    def _stream(self, flow: Flow[None], texts: Iterable[str]) -> Iterator[Any]:
        call = Call(iter(texts))
        try:
            yield from self._drive(flow, call)
        finally:
            # The consumer stopped, an error, or Ctrl-C: nothing more is sent, nothing waited for.
            call.stop()

    def _drive(self, flow: Flow[T], call: Call) -> Generator[Any, None, T]:
        """Perform ``flow``'s steps, yielding what it emits; return its value."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, Emit):
                    yield from step.items
                    step = flow.send(None)
                    continue
                try:
                    reply = self._perform(step, call)
                except HFInferError as err:  # the flow decides (no /tokenize: no fitting; a stream's batch)
                    step = flow.throw(err)
                    continue
                step = flow.send(reply)
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            flow.close()  # an abort or Ctrl-C: the flow's own clean-up (progress bar) runs now

    def _perform(self, step: Step, call: Call) -> Any:
        if call.abort.is_set():  # another batch of this call failed, or the caller left
            raise Aborted
        match step:
            case Send():
                return self._send(step, call.abort)
            case Sleep(seconds):
                return self._wait(seconds, call.abort)
            case Parallel():
                return self._parallel(step, call)
            case Discover():
                return self._discover_once()
            case Lookup(keys):
                return self._lookup(keys)
            case Store(pairs):
                return self._store(pairs)
            case Read():
                return next(call.texts, END)
            case Start(flow):
                return call.started.append(self._submit(self._run, flow, call))
            case Settle():
                return call.started.popleft().result()
            case Emit():  # performed by _drive, which hands the items to the consumer
                raise unknown_step(step)
            case _:
                unhandled: Never = step  # mypy: every kind of step is handled above
                raise unknown_step(unhandled)

    def _parallel(self, step: Parallel[object], parent: Call) -> list[Any]:
        """Run the flows on the client's worker threads, ``window`` at most; end at once on the first failure or Ctrl-C.

        A caller outside the pool waits on a condition, which a signal interrupts, and never on
        the worker threads: when a flow fails for good or the caller is interrupted, the abort
        flag is set, every waiting worker wakes (their sleeps wait on it), none sends another
        request, and the call raises without waiting for requests already in flight (their
        threads go back to the pool when those end). A worker thread that asks for a Parallel
        step (a 413's halves, /tokenize groups) runs flows itself as well, so the pool, bounded by
        ``max_concurrency``, never waits for a thread of its own.
        """
        call = parent.child()  # a failure here aborts these flows, not the caller's other work
        shared = Shared(step, call)
        if min(step.window, step.size) <= 1:
            shared.more_workers(1)
            self._work(shared)  # one at a time, on this thread
            return shared.wait()
        nested = getattr(IN_WORKER, "active", False)
        try:
            if nested:
                shared.more_workers(1)  # this thread
            self._add_workers(shared)
            if nested:
                self._work(shared)
            return shared.wait()
        except BaseException:
            call.abort.set()  # Ctrl-C (or any error) in the calling thread: the workers stop too
            raise

    def _work(self, shared: Shared) -> None:
        """Run flows of ``shared`` until none is left or the call is aborted."""
        while (item := shared.take()) is not None:
            k, flow = item
            try:
                result = self._run(flow, shared.call)
            except BaseException as err:  # Aborted too: the step is stopping, and says so to its caller
                shared.failed(err)
                return
            shared.finished(k, result)
            if self._adaptive is not None:
                self._add_workers(shared)  # the limit may have grown

    def _add_workers(self, shared: Shared) -> None:
        for _ in range(shared.more_workers(self.workers_for(shared.step))):
            self._submit(self._work, shared)

    def _submit(self, run: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``run(*args)`` on one of the client's worker threads (``max_concurrency`` at most, reused)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.options.window, thread_name_prefix="hf-infer")
            pool = self._pool
        return pool.submit(as_worker, lambda: run(*args))

    def _wait(self, seconds: float, abort: Abort) -> None:
        """Sleep ``seconds`` unless the call is aborted first (then raise :class:`Aborted`)."""
        if self._sleep is time.sleep:
            if abort.wait(seconds):
                raise Aborted
        else:  # an injected sleep (tests): call it, then look at the abort flag
            self._sleep(seconds)
        if abort.is_set():
            raise Aborted

    def _send(self, step: Send, abort: Abort) -> HttpResult | HFInferError:
        try:
            waited = self.rate_limiter.acquire(lambda seconds: self._wait(seconds, abort))
        except RateLimitBackendError as err:
            return err  # the flow names the batch's inputs on it
        ticket = self._slot(abort)
        outcome: HttpResult | HFInferError | None = None
        try:
            outcome = self._wire.attempt(step, self._core.headers)
        finally:
            self._release(ticket, outcome, step)
            self.activity.note(step, waited, outcome)
        return outcome

    def _slot(self, abort: Abort) -> Ticket | None:
        """A slot of the adaptive limit (none with a fixed ``max_concurrency``); waits, but not past an abort."""
        if abort.is_set():  # aborted while this thread waited for its rate-limit token: send nothing more
            raise Aborted
        if self._adaptive is None:
            return None
        if (ticket := self._adaptive.acquire()) is not None:
            return ticket  # a free slot: no Event made (a client-bound caller takes this path)
        while True:
            woken = threading.Event()
            ticket = self._adaptive.acquire(woken.set)
            if ticket is not None:
                return ticket
            # Woken by a release; else look again when a parked slot frees, and at the abort
            # flag every 0.2 s. (A parked slot already free is 0.0: no wait at all.)
            retry = self._adaptive.retry_in()
            if not woken.wait(0.2 if retry is None else min(0.2, retry)) or abort.is_set():
                self._adaptive.cancel(woken.set)  # leave the queue; if told of a slot, pass it on
            if abort.is_set():
                raise Aborted

    def _discover_once(self) -> None:
        if self._jobs.discovery_due:
            with self._discover_lock:
                self._run(self._jobs.info())
