"""The asyncio client, :class:`AsyncEmbeddingClient`: the core's flows performed as tasks.

Batches run as tasks over one ``httpx.AsyncClient`` per event loop; ``asyncio.timeout`` bounds each attempt.
"""

from __future__ import annotations

import asyncio
import builtins
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
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, Unpack, overload

import httpx

from ._chunking import Chunk, ChunkEmbedding
from ._client import (
    _INHERITED,
    Flow,
    R,
    T,
    _array_maker,
    _as_array,
    _check_iterable,
    _ClientBase,
    _log,
    _Progress,
    _reader,
    _result,
    _texts_named,
    _transport_error,
)
from ._config import InferenceEndpoint
from ._core import HttpResult, Send, Sleep
from ._errors import ClientClosedError, HFInferError, RateLimitBackendError
from ._fit import Count, Tokens
from ._options import ClientOptionArgs, ClientOptions
from ._plan import assemble, check_texts
from ._pooling import pool_all
from ._ratelimit import RateLimiter
from ._stream import StreamAssembler, StreamBatch

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["AsyncEmbeddingClient"]


async def _aiterate(texts: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
    if isinstance(texts, AsyncIterable):
        async for text in texts:
            yield text
    else:
        for text in texts:
            yield text


async def _each(groups: AsyncIterator[list[R]]) -> AsyncIterator[R]:
    async for group in groups:
        for item in group:
            yield item


async def _arrays(groups: AsyncIterator[list[list[float]]]) -> AsyncIterator[NDArray[np.float32]]:
    async for group in groups:
        yield _as_array(group)


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


def _fast_async_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:  # must run in a loop
    """Httpx over aiohttp when the optional ``httpx-aiohttp`` is installed (extra ``fast``).

    httpcore's pure-Python HTTP/1.1 stack costs ~2 ms of CPU per 150 kB response; aiohttp's
    C parser a third of that, which is what lets one process keep a fast endpoint busy. The
    client is still an ``httpx.AsyncClient``: requests, errors and timeouts are httpx's.
    """
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return None
    transport = AiohttpTransport(limits=limits)
    # Build the aiohttp session (and its TLS context) now, inside the running loop, rather than
    # on the first request, whose rate-limit slot would otherwise pass during the set-up. Given
    # as the transport's client, it is also what the transport closes.
    transport.client = transport.get_client()
    return transport


class AsyncEmbeddingClient(_ClientBase):
    """Embed texts through a Hugging Face endpoint with asyncio; same options as :class:`EmbeddingClient`.

    Up to ``max_concurrency`` batches run as tasks. The client may be used from several event
    loops: each loop gets its own ``httpx.AsyncClient`` (unless one is injected), while the rate
    limit stays shared. ``sleep`` must be a coroutine function (default ``asyncio.sleep``).
    """

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: ClientOptions | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Any = None,
        tokenizer: Any = None,
        **overrides: Unpack[ClientOptionArgs],
    ) -> None:
        super().__init__(
            endpoint, options, overrides, rate_limiter=rate_limiter, clock=clock, rng=rng, tokenizer=tokenizer
        )
        self._sleep = sleep
        self._injected = http_client
        self._transport = transport
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._discover_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _reset_after_fork(self) -> None:
        super()._reset_after_fork()
        # The parent's loops do not run in the child; their clients hold the parent's sockets.
        _INHERITED.append(dict(self._by_loop))
        self._by_loop = weakref.WeakKeyDictionary()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client this object created for the running event loop."""
        entry = self._by_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # runs the closer's finally: the client is closed once

    async def _http(self) -> httpx.AsyncClient:
        if self._injected is not None:
            return self._injected
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None:
            client = httpx.AsyncClient(
                timeout=self._timeout,
                limits=self._limits,
                transport=self._transport or _fast_async_transport(self._limits),
                follow_redirects=False,
            )
            # Loops end without telling anyone, but asyncio.run (and most runners) first close
            # the loop's live async generators: this one closes the client then, so connections
            # are released inside their own loop instead of leaking past it.
            closer = _close_with_loop(client)
            await closer.asend(None)

            entry = self._by_loop[loop] = (client, closer)
            self._release_on_close(loop)
        return entry[0]

    def _release_on_close(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close this loop's client inside the loop, just before ``loop.close()`` closes the loop.

        A loop made with ``new_event_loop()`` and closed by hand runs no asyncgen shutdown, and the
        table's weak key cannot die while its client (aiohttp's cookie jar) holds the loop: without
        this, every such loop would leave its sockets open and its entry in the table.
        """
        original = loop.close
        client_ref = weakref.ref(self)

        def close() -> None:
            client = client_ref()
            entry = client._by_loop.pop(loop, None) if client is not None else None
            if entry is not None and not loop.is_closed() and not loop.is_running():
                with contextlib.suppress(Exception):  # closing must never stop the loop closing
                    loop.run_until_complete(entry[1].aclose())
            original()

        with contextlib.suppress(AttributeError):  # a loop type whose attributes are fixed (uvloop)
            loop.close = close  # type: ignore[method-assign]

    # ------------------------------------------------------------------ public methods

    @overload
    async def embed(self, texts: Sequence[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    async def embed(self, texts: Sequence[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    async def embed(self, texts: Sequence[str], *, as_numpy: bool = False) -> list[list[float]] | NDArray[np.float32]:
        """Return one vector per text, in order, each text sent as is (see :meth:`EmbeddingClient.embed`)."""
        items = check_texts(texts)
        to_array = _array_maker(as_numpy)
        return to_array(await self._embed_flat(items, _Progress(self.options.show_progress, len(items)), as_numpy))

    async def embed_query(self, text: str) -> list[float]:
        """Return the vector of one query, with ``query_prefix`` prepended."""
        (item,) = check_texts([text])
        return (await self._embed_flat([self.options.query_prefix + item], _Progress(False, 1), query=True))[0]

    async def embed_chunks(self, texts: Sequence[str]) -> list[list[ChunkEmbedding]]:
        """Chunk every text and return each text's chunks with offsets and vectors."""
        return self._group(*await self._embed_chunked(texts))

    @overload
    async def embed_documents(self, texts: Sequence[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    async def embed_documents(self, texts: Sequence[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    async def embed_documents(
        self, texts: Sequence[str], *, as_numpy: bool = False
    ) -> list[list[float]] | NDArray[np.float32]:
        """Return one vector per text, chunk vectors combined (see :meth:`EmbeddingClient.embed_documents`)."""
        to_array = _array_maker(as_numpy)
        return to_array(pool_all(self.options.pooling, *await self._embed_chunked(texts, as_numpy)))

    async def _embed_chunked(
        self, texts: Sequence[str], arrays: bool = False
    ) -> tuple[list[list[Chunk]], list[list[float]]]:
        """Chunk, fit to the model and embed ``texts`` (see :meth:`EmbeddingClient._embed_chunked`)."""
        items, chunks = self._chunks(texts)
        chunks = await self._fitted(items, chunks)
        flat, owners = self._flatten(chunks)
        with _texts_named(owners):
            progress = _Progress(self.options.show_progress, len(chunks), owners)
            vectors = await self._embed_flat(flat, progress, arrays, splittable=True)
        return self._expanded(chunks, vectors)

    async def _fitted(self, items: list[str], chunks: list[list[Chunk]]) -> list[list[Chunk]]:
        """``chunks``, those over the model's token limit split again (the core's fit flow)."""
        await self._discover_once()
        return await self._run(self._core.fit_flow(items, chunks, self._counter is not None))

    async def _count_tokens(self, texts: list[str]) -> list[Tokens]:
        if self._counter is not None:
            return self._counter(texts)
        # At most max_concurrency requests at once, as for batches (not every group at once).
        gate = asyncio.Semaphore(self.options.max_concurrency)

        async def tokenize(group: range) -> list[Tokens]:
            async with gate:
                return await self._run(self._core.tokenize_flow([texts[i] for i in group]))

        results = await asyncio.gather(*(tokenize(group) for group in self._core.tokenize_groups(texts)))
        return [tokens for group in results for tokens in group]

    # ------------------------------------------------------------------ streaming

    @overload
    def aembed_iter(
        self, texts: Iterable[str] | AsyncIterable[str], *, as_numpy: Literal[False] = False
    ) -> AsyncIterator[list[float]]: ...
    @overload
    def aembed_iter(
        self, texts: Iterable[str] | AsyncIterable[str], *, as_numpy: Literal[True]
    ) -> AsyncIterator[NDArray[np.float32]]: ...
    def aembed_iter(
        self, texts: Iterable[str] | AsyncIterable[str], *, as_numpy: bool = False
    ) -> AsyncIterator[list[float]] | AsyncIterator[NDArray[np.float32]]:
        """Stream :meth:`embed_documents` (see :meth:`EmbeddingClient.embed_iter`); ``texts`` may be async.

        Bad arguments (a single string, numpy missing) fail at the call, as ``embed_iter``'s do,
        not at the first ``__anext__``.
        """
        _array_maker(as_numpy)
        _check_iterable(texts)
        stream = self._stream(texts, lambda assembler: assembler.documents(), as_numpy)
        return _arrays(stream) if as_numpy else _each(stream)

    def aembed_chunks_iter(self, texts: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[list[ChunkEmbedding]]:
        """Stream :meth:`embed_chunks`: for each text, in order, its chunks with offsets and vectors."""
        _check_iterable(texts)
        return _each(self._stream(texts, lambda assembler: assembler.chunk_lists()))

    async def _stream(
        self,
        texts: Iterable[str] | AsyncIterable[str],
        release: Callable[[StreamAssembler], list[R]],
        arrays: bool = False,
    ) -> AsyncIterator[list[R]]:
        _check_iterable(texts)
        assembler = StreamAssembler(self._core)
        window = self.options.max_concurrency
        in_flight: deque[tuple[StreamBatch, asyncio.Task[list[list[float]]]]] = deque()

        def send(batch: StreamBatch) -> None:
            flow = self._core.batch_flow(batch.inputs, range(len(batch.inputs)), arrays, splittable=True)
            in_flight.append((batch, asyncio.ensure_future(self._run(flow))))

        async def settle_oldest() -> None:
            batch, task = in_flight.popleft()
            try:
                vectors = await task
            except HFInferError as err:
                raise assembler.failure(batch, err) from err.__cause__
            assembler.complete(batch, vectors)

        try:
            await self._discover_once()
            position = 0
            async for text in _aiterate(texts):
                items, chunks = self._chunks([text], position)
                position += 1
                for batch in assembler.add((await self._fitted(items, chunks))[0]):
                    send(batch)
                while len(in_flight) >= window:
                    await settle_oldest()
                    if out := release(assembler):
                        yield out
            if (last := assembler.flush()) is not None:
                send(last)
            while in_flight:
                await settle_oldest()
                if out := release(assembler):
                    yield out
        finally:
            for _, task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)

    # ------------------------------------------------------------------ the loops

    async def _embed_flat(
        self,
        texts: list[str],
        progress: _Progress,
        arrays: bool = False,
        splittable: bool = False,
        query: bool = False,
    ) -> list[list[float]]:
        if not texts:
            return []
        await self._discover_once()
        batches = self._core.plan(texts)
        results: list[list[list[float]]] = [[] for _ in batches]
        queue = iter(enumerate(batches))

        async def worker() -> None:
            for position, batch in queue:
                flow = self._core.batch_flow([texts[i] for i in batch], batch, arrays, splittable, query)
                results[position] = await self._run(flow)
                progress.done(batch)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(self.options.max_concurrency, len(batches)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            progress.close()
        return assemble(len(texts), batches, results)

    async def _run(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await self._sleep(step.seconds)
                    step = flow.send(None)
                elif isinstance(step, Count):
                    try:
                        step = flow.send(await self._count_tokens(step.texts))
                    except HFInferError as err:  # the flow decides (no /tokenize: no fitting)
                        step = flow.throw(err)
                else:
                    step = flow.send(await self._send(step))
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def _send(self, step: Send) -> HttpResult | HFInferError:
        # The client (and its session) must exist before the token is taken: set-up done after
        # it would delay this request past its slot, and the next ones would bunch up behind it.
        http = await self._http()
        try:
            await self.rate_limiter.aacquire(self._sleep)
        except RateLimitBackendError as err:
            return err
        started = time.perf_counter()
        outcome: HttpResult | HFInferError
        url = httpx.URL(step.url)
        deadline = time.monotonic() + step.timeout
        try:
            # asyncio.timeout cancels the whole attempt at its deadline, however the server drips.
            async with (
                asyncio.timeout(step.timeout),
                http.stream(step.method, url, **self._request_options(step)) as response,
            ):
                body = _reader(response, step)
                if not response.is_stream_consumed:
                    async for chunk in response.aiter_raw():
                        body.feed(chunk)
                outcome = _result(response, body.finish())
        except HFInferError as err:  # the body was too large or not valid gzip
            outcome = err
        except httpx.HTTPError as err:
            # As the sync driver: an error that surfaces after the deadline is the deadline's.
            outcome = _transport_error(err, url, expired=time.monotonic() >= deadline)
        except builtins.TimeoutError as err:  # asyncio.timeout's, not one of ours
            outcome = _transport_error(err, url, expired=True)
        except RuntimeError as err:  # httpx's "client has been closed"
            if not http.is_closed:
                raise
            raise ClientClosedError("the client was closed while this call was using it") from err
        _log(step, url, outcome, started)
        return outcome

    async def _discover_once(self) -> None:
        if self._discovered:
            return
        # One GET /info per loop however many tasks start at once, as the sync driver's lock does
        # (an asyncio.Lock belongs to one loop: each loop gets its own).
        loop = asyncio.get_running_loop()
        lock = self._discover_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if not self._discovered:
                await self._run(self._core.info_flow())
                self._discovered = True
                self._announce()
