"""The asyncio driver: the steps of a task's flows performed as tasks (the asyncio clients' base).

Batches run as tasks; their attempts go through the transport (``_seam.py``; httpx's, one
``httpx.AsyncClient`` per event loop, in ``_httpx.py``), each bounded by its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Never, Self

from ..base._errors import HFInferError, RateLimitBackendError
from ..config import InferenceEndpoint
from ..config._options import RequestOptions
from ..limits._concurrency import Ticket
from ..limits._ratelimit import RateLimiter
from ..protocol._fanout import Fanout
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
from ._seam import AsyncTransport

if TYPE_CHECKING:
    from ._httpx import AsyncHttpClient, AsyncHttpTransport

__all__ = ["AsyncDriver"]


async def _aiterate(texts: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
    if isinstance(texts, AsyncIterable):
        async for text in texts:
            yield text
    else:
        for text in texts:
            yield text


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a thread with no loop: a sync client of the same endpoint released
        return None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Call:
    """One public call in the async driver: its requests in flight, a stream's input and batches.

    ``slots`` bound the call's requests in flight by ``max_concurrency``, its Parallel steps' flows
    (a 413's halves, /tokenize groups) and a stream's batches included.
    """

    def __init__(self, window: int, texts: AsyncIterator[str] | None = None, slots: asyncio.Semaphore | None = None):
        self.texts = texts  # a stream's input (None: not a stream)
        self.started: deque[asyncio.Future[Any]] = deque()
        self.slots = slots if slots is not None else asyncio.Semaphore(window)

    def child(self) -> _Call:
        return _Call(0, slots=self.slots)

    async def stop(self) -> None:
        for task in self.started:
            task.cancel()
        if self.started:
            await asyncio.gather(*self.started, return_exceptions=True)


class AsyncDriver(_ClientBase[J]):
    """The asyncio driver of any task's flows: tasks over one transport (its connections per event loop).

    A task's asyncio client subclasses it (:class:`~hf_infer_core.AsyncEmbeddingClient`).
    """

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: RequestOptions | None = None,
        http_client: AsyncHttpClient | None = None,
        transport: AsyncHttpTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
        **overrides: object,
    ) -> None:
        super().__init__(endpoint, options, overrides, rate_limiter=rate_limiter, clock=clock, rng=rng)
        self._sleep = sleep
        # The HTTP library behind the seam (_seam.py): httpx, or a user's httpx client or transport.
        self._wire = self._open_transport(http_client, transport)
        self._discover_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _open_transport(
        self, http_client: AsyncHttpClient | None, transport: AsyncHttpTransport | None
    ) -> AsyncTransport:
        """The transport attempts go through: httpx (a test double overrides this)."""
        from ._httpx import AsyncHttpxTransport

        return AsyncHttpxTransport(self.options, self.endpoint.api_key, http_client, transport)

    def _reset_after_fork(self) -> None:
        super()._reset_after_fork()
        self._wire.after_fork()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client this object created for the running event loop."""
        await self._wire.aclose()

    def adopt(self, other: Self, connections: bool = True) -> None:
        """Take over what ``other`` (same endpoint, older options) learnt, and its per-loop connections if they fit.

        The connections move: ``connections`` must be False while ``other`` has a call in flight,
        whose reads would otherwise end when this client closes them.
        """
        super().adopt(other)
        self._wire.adopt(other._wire, connections)

    # ------------------------------------------------------------------ the driver

    async def _run(self, flow: Flow[T], call: _Call | None = None) -> T:
        out: list[T] = []
        async with contextlib.aclosing(self._drive(flow, call or _Call(self.options.window), out)) as emitted:
            async for _ in emitted:
                raise RuntimeError("a flow emitted results outside a stream")
        return out[0]

    async def _stream(self, flow: Flow[None], texts: Iterable[str] | AsyncIterable[str]) -> AsyncGenerator[Any, None]:
        call = _Call(self.options.window, _aiterate(texts))
        try:
            async with contextlib.aclosing(self._drive(flow, call, [])) as emitted:
                async for item in emitted:
                    yield item
        finally:
            await call.stop()

    async def _drive(self, flow: Flow[T], call: _Call, out: list[T]) -> AsyncGenerator[Any, None]:
        """Perform ``flow``'s steps, yielding what it emits; its value is appended to ``out``."""
        try:
            step = next(flow)
            while True:
                if isinstance(step, Emit):
                    for item in step.items:
                        yield item
                    step = flow.send(None)
                    continue
                try:
                    reply = await self._perform(step, call)
                except HFInferError as err:  # the flow decides (no /tokenize: no fitting; a stream's batch)
                    step = flow.throw(err)
                    continue
                step = flow.send(reply)
        except StopIteration as stop:
            out.append(stop.value)
        finally:
            flow.close()  # cancelled: the flow's own clean-up (progress bar) runs now

    async def _perform(self, step: Step, call: _Call) -> Any:
        match step:
            case Send():
                return await self._send(step, call)
            case Sleep(seconds):
                return await self._sleep(seconds)
            case Parallel():
                return await self._parallel(step, call)
            case Discover():
                return await self._discover_once()
            case Lookup(keys):
                return await asyncio.to_thread(self._lookup, keys)  # the store's I/O (a file, Redis) off the loop
            case Store(pairs):
                return await asyncio.to_thread(self._store, pairs)
            case Read():
                return END if call.texts is None else await anext(call.texts, END)
            case Start(flow):
                return call.started.append(asyncio.ensure_future(self._run(flow, call)))
            case Settle():
                return await call.started.popleft()
            case Emit():  # performed by _drive, which hands the items to the consumer
                raise unknown_step(step)
            case _:
                unhandled: Never = step  # mypy: every kind of step is handled above
                raise unknown_step(unhandled)

    async def _parallel(self, step: Parallel[object], parent: _Call) -> list[object]:
        """Run the flows as up to ``window`` tasks (with "auto", as many as the limit); on the first failure cancel the rest."""
        fanout = Fanout(step)
        tasks: list[asyncio.Future[None]] = []

        def add_workers() -> None:
            for _ in range(fanout.more_workers(self.workers_for(step))):
                tasks.append(asyncio.ensure_future(worker()))

        async def worker() -> None:
            while (item := fanout.take()) is not None:
                k, flow = item
                try:
                    result = await self._run(flow, parent.child())
                except BaseException as err:
                    fanout.failed(err)
                    raise
                fanout.finished(k, result)
                if self._adaptive is not None:
                    add_workers()  # the limit may have grown

        add_workers()
        try:
            while not all(task.done() for task in tasks):  # workers added while others run are awaited too
                await asyncio.gather(*tasks)
        except BaseException:
            # The first failure (or a cancellation of the caller): the others' requests are cancelled.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return fanout.outcome()

    async def _send(self, step: Send, call: _Call) -> HttpResult | HFInferError:
        # The client (and its session) must exist before the token is taken: set-up done after
        # it would delay this request past its slot, and the next ones would bunch up behind it.
        await self._wire.ready()
        async with call.slots:
            try:
                waited = await self.rate_limiter.aacquire(self._sleep)
            except RateLimitBackendError as err:
                return err
            ticket = await self._slot()
            outcome: HttpResult | HFInferError | None = None
            try:
                outcome = await self._wire.attempt(step, self._core.headers)
            finally:
                self._release(ticket, outcome, step)
                self.activity.note(step, waited, outcome)
            return outcome

    async def _slot(self) -> Ticket | None:
        """A slot of the adaptive limit (none with a fixed ``max_concurrency``); cancellable."""
        if self._adaptive is None:
            return None
        if (ticket := self._adaptive.acquire()) is not None:
            return ticket  # a free slot: no future made (a client-bound caller takes this path)
        loop = asyncio.get_running_loop()
        while True:
            woken: asyncio.Future[None] = loop.create_future()

            def wake(woken: asyncio.Future[None] = woken) -> None:  # called on whichever thread released
                if _running_loop() is loop:
                    _resolve(woken)  # released in this loop: no wake-up through the self-pipe
                    return
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there
                    loop.call_soon_threadsafe(_resolve, woken)

            ticket = self._adaptive.acquire(wake)
            if ticket is not None:
                return ticket
            try:
                # Woken by a release, or retry when a parked slot frees (nothing wakes anyone then).
                await asyncio.wait([woken], timeout=self._adaptive.retry_in())
            except BaseException:
                self._adaptive.cancel(wake)
                raise
            if not woken.done():
                self._adaptive.cancel(wake)

    async def _discover_once(self) -> None:
        # One GET /info per loop however many tasks start at once, as the sync driver's lock does
        # (an asyncio.Lock belongs to one loop: each loop gets its own).
        if self._jobs.discovery_due:
            async with self._discover_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
                await self._run(self._jobs.info())
