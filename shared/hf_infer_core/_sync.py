"""The blocking client, :class:`EmbeddingClient`: the steps of the core's flows performed on threads.

Up to ``max_concurrency`` batches run on threads sharing one ``httpx.Client``; the calling thread
waits on an event (so Ctrl-C and a batch that fails for good stop the call at once), and every
attempt is bounded from connect to its last byte (see :mod:`._deadline`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from ._deadline import attempt_deadline, cut_socket, deadline_transport
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

__all__ = ["EmbeddingClient"]


class _Aborted(Exception):
    """Another batch of the same call failed; this one stops before its next request."""


class EmbeddingClient(_ClientBase):
    """Embed texts through a Hugging Face endpoint; blocking, with up to ``max_concurrency`` threads.

    Args:
        endpoint: The Elasticsearch-style endpoint configuration.
        options: A :class:`ClientOptions`; keyword arguments of the same names override it
            (``batch_size``, ``max_concurrency``, ``timeout``, ``max_retries``, ...: see the README).
        http_client: An ``httpx.Client`` to use (not closed by :meth:`close`).
        transport: An httpx transport for the client this class creates (tests, proxies).
        rate_limiter: A limiter to use instead of the process-wide one for this URL.
        sleep: How to wait (injectable so tests never sleep).
        clock: Monotonic clock for retry deadlines.
        rng: Random source for backoff jitter.
        tokenizer: A ``tokenizers.Tokenizer`` or a ``tokenizer.json`` path that counts tokens
            locally when chunks are fitted to the model's limit (default: the endpoint's
            ``/tokenize``; extra ``tokenizers``).
        **overrides: Options by name (typed: a misspelt option is a type error).
    """

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: ClientOptions | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Any = None,
        tokenizer: Any = None,
        **overrides: Unpack[ClientOptionArgs],
    ) -> None:
        super().__init__(
            endpoint, options, overrides, rate_limiter=rate_limiter, clock=clock, rng=rng, tokenizer=tokenizer
        )
        self._sleep = sleep
        self._owns_http = http_client is None
        self._transport = transport
        self._http = http_client or self._new_http()
        self._discover_lock = threading.Lock()

    def _new_http(self) -> httpx.Client:
        # Our own transport bounds every read by the attempt's deadline (see _deadline).
        transport = self._transport or deadline_transport(self._limits)
        return httpx.Client(timeout=self._timeout, limits=self._limits, transport=transport, follow_redirects=False)

    def _reset_after_fork(self) -> None:
        super()._reset_after_fork()
        self._discover_lock = threading.Lock()
        if self._owns_http:
            _INHERITED.append(self._http)
            self._http = self._new_http()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    # ------------------------------------------------------------------ public methods

    @overload
    def embed(self, texts: Sequence[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    def embed(self, texts: Sequence[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    def embed(self, texts: Sequence[str], *, as_numpy: bool = False) -> list[list[float]] | NDArray[np.float32]:
        """Return one vector per text, in order, each text sent as is (no chunking, no prefix).

        An empty list returns ``[]`` without a request; an empty string is sent as is.
        ``as_numpy=True`` returns one float32 array of shape (texts, dimensions) instead.
        """
        items = check_texts(texts)
        to_array = _array_maker(as_numpy)
        return to_array(self._embed_flat(items, _Progress(self.options.show_progress, len(items)), as_numpy))

    def embed_query(self, text: str) -> list[float]:
        """Return the vector of one query, with ``query_prefix`` prepended (queries are not chunked)."""
        (item,) = check_texts([text])
        return self._embed_flat([self.options.query_prefix + item], _Progress(False, 1), query=True)[0]

    def embed_chunks(self, texts: Sequence[str]) -> list[list[ChunkEmbedding]]:
        """Chunk every text with the endpoint's settings and return each text's chunks with vectors.

        When the model's token limit is known (``max_input_tokens``, or ``/info`` with
        ``discover=True``) a chunk over it comes back as the pieces it was split into, each
        recording in ``source`` the Elasticsearch chunk it came from.
        """
        return self._group(*self._embed_chunked(texts))

    @overload
    def embed_documents(self, texts: Sequence[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    def embed_documents(self, texts: Sequence[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    def embed_documents(
        self, texts: Sequence[str], *, as_numpy: bool = False
    ) -> list[list[float]] | NDArray[np.float32]:
        """Return one vector per text; a text of several chunks gets its chunks' vectors combined.

        With ``pooling="mean"`` (default) the chunk vectors are averaged, weighted by each
        chunk's word count, then L2-normalised; ``pooling="first"`` keeps the first chunk's.
        A text of one chunk keeps the endpoint's vector as is. ``as_numpy=True``: one float32 array.
        """
        to_array = _array_maker(as_numpy)
        return to_array(pool_all(self.options.pooling, *self._embed_chunked(texts, as_numpy)))

    def _embed_chunked(self, texts: Sequence[str], arrays: bool = False) -> tuple[list[list[Chunk]], list[list[float]]]:
        """Chunk, fit to the model and embed ``texts``: each text's chunks and the flat chunk vectors.

        ``arrays``: base64 vectors stay float32 numpy rows (for ``as_numpy=True``).
        """
        items, chunks = self._chunks(texts)
        chunks = self._fitted(items, chunks)
        flat, owners = self._flatten(chunks)
        with _texts_named(owners):
            progress = _Progress(self.options.show_progress, len(chunks), owners)
            vectors = self._embed_flat(flat, progress, arrays, splittable=True)
        return self._expanded(chunks, vectors)

    def _fitted(
        self, items: list[str], chunks: list[list[Chunk]], abort: threading.Event | None = None
    ) -> list[list[Chunk]]:
        """``chunks``, those over the model's token limit split again (the core's fit flow)."""
        self._discover_once()  # the limit may come from /info
        return self._run(self._core.fit_flow(items, chunks, self._counter is not None), abort or threading.Event())

    def _count_tokens(self, texts: list[str], abort: threading.Event) -> list[Tokens]:
        if self._counter is not None:
            return self._counter(texts)
        out: list[Tokens] = []
        for group in self._core.tokenize_groups(texts):
            out += self._run(self._core.tokenize_flow([texts[i] for i in group]), abort)
        return out

    # ------------------------------------------------------------------ streaming

    @overload
    def embed_iter(self, texts: Iterable[str], *, as_numpy: Literal[False] = False) -> Iterator[list[float]]: ...
    @overload
    def embed_iter(self, texts: Iterable[str], *, as_numpy: Literal[True]) -> Iterator[NDArray[np.float32]]: ...
    def embed_iter(
        self, texts: Iterable[str], *, as_numpy: bool = False
    ) -> Iterator[list[float]] | Iterator[NDArray[np.float32]]:
        """Stream :meth:`embed_documents`: read ``texts`` lazily, yield one vector per text in order.

        At most ``max_concurrency`` batches are in flight and one is being filled, so memory does
        not grow with the corpus. ``as_numpy=True`` yields float32 arrays of consecutive texts'
        vectors instead (about one batch each). A batch that fails for good raises its typed error
        after every earlier text's vector was yielded; the error's ``indices`` are the positions
        (in ``texts``) of the texts of that batch: resume from the first.
        """
        _array_maker(as_numpy)  # numpy missing: ImportError now, not after a request
        _check_iterable(texts)
        stream = self._stream(texts, lambda assembler: assembler.documents(), as_numpy)
        if as_numpy:
            return (_as_array(group) for group in stream)
        return (vector for group in stream for vector in group)

    def embed_chunks_iter(self, texts: Iterable[str]) -> Iterator[list[ChunkEmbedding]]:
        """Stream :meth:`embed_chunks`: for each text, in order, its chunks with offsets and vectors."""
        _check_iterable(texts)
        return (chunks for group in self._stream(texts, lambda assembler: assembler.chunk_lists()) for chunks in group)

    def _stream(
        self, texts: Iterable[str], release: Callable[[StreamAssembler], list[R]], arrays: bool = False
    ) -> Iterator[list[R]]:
        assembler = StreamAssembler(self._core)
        window = self.options.max_concurrency
        abort = threading.Event()
        pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix="hf-infer")
        in_flight: deque[tuple[StreamBatch, Future[list[list[float]]]]] = deque()

        def send(batch: StreamBatch) -> None:
            flow = self._core.batch_flow(batch.inputs, range(len(batch.inputs)), arrays, splittable=True)
            in_flight.append((batch, pool.submit(self._run, flow, abort)))

        def settle_oldest() -> None:
            batch, future = in_flight.popleft()
            try:
                vectors = future.result()
            except HFInferError as err:
                raise assembler.failure(batch, err) from err.__cause__
            assembler.complete(batch, vectors)

        try:
            self._discover_once()
            for position, text in enumerate(texts):
                items, chunks = self._chunks([text], position)
                for batch in assembler.add(self._fitted(items, chunks, abort)[0]):
                    send(batch)
                while len(in_flight) >= window:
                    settle_oldest()
                    if out := release(assembler):
                        yield out
            if (last := assembler.flush()) is not None:
                send(last)
            while in_flight:
                settle_oldest()
                if out := release(assembler):
                    yield out
        finally:
            # The consumer stopped, an error, or Ctrl-C: nothing more is sent, nothing waited for.
            abort.set()
            pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ the loops

    def _embed_flat(
        self,
        texts: list[str],
        progress: _Progress,
        arrays: bool = False,
        splittable: bool = False,
        query: bool = False,
    ) -> list[list[float]]:
        if not texts:
            return []
        self._discover_once()
        batches = self._core.plan(texts)
        abort = threading.Event()

        def run(batch: list[int]) -> list[list[float]]:
            flow = self._core.batch_flow([texts[i] for i in batch], batch, arrays, splittable, query)
            vectors = self._run(flow, abort)
            progress.done(batch)
            return vectors

        try:
            workers = min(self.options.max_concurrency, len(batches))
            if workers == 1:
                results = [run(batch) for batch in batches]
            else:
                results = self._run_threads(run, batches, workers, abort)
        finally:
            progress.close()
        return assemble(len(texts), batches, results)

    @staticmethod
    def _run_threads(
        run: Callable[[list[int]], list[list[float]]], batches: list[list[int]], workers: int, abort: threading.Event
    ) -> list[list[list[float]]]:
        """Run the batches on ``workers`` threads; end at once on the first failure or on Ctrl-C.

        The calling thread waits on an event, which a signal interrupts, and never on the worker
        threads: when a batch fails for good or the caller is interrupted, ``abort`` is set, every
        waiting worker wakes (their sleeps wait on ``abort``), none sends another request, and the
        call raises without waiting for requests already in flight (their threads end with them).
        """
        results: list[list[list[float]] | None] = [None] * len(batches)
        queue = iter(enumerate(batches))
        lock = threading.Lock()
        failures: list[BaseException] = []
        finished = threading.Event()
        running = workers

        def worker() -> None:
            nonlocal running
            try:
                while not abort.is_set():
                    with lock:
                        item = next(queue, None)
                    if item is None:
                        return
                    results[item[0]] = run(item[1])
            except _Aborted:
                return
            except BaseException as err:
                failures.append(err)
                abort.set()
                finished.set()
            finally:
                with lock:
                    running -= 1
                    if running == 0:
                        finished.set()

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hf-infer")
        try:
            for _ in range(workers):
                pool.submit(worker)
            finished.wait()
        except BaseException:
            abort.set()  # Ctrl-C (or any error) in the calling thread: the workers stop too
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if failures:
            raise failures[0]
        return [r for r in results if r is not None]

    def _wait(self, seconds: float, abort: threading.Event) -> None:
        """Sleep ``seconds`` unless the call is aborted first (then raise :class:`_Aborted`)."""
        if self._sleep is time.sleep:
            if abort.wait(seconds):
                raise _Aborted
        else:  # an injected sleep (tests): call it, then look at the abort flag
            self._sleep(seconds)
        if abort.is_set():
            raise _Aborted

    def _run(self, flow: Flow[T], abort: threading.Event) -> T:
        try:
            step = next(flow)
            while True:
                if abort.is_set():
                    flow.close()
                    raise _Aborted
                if isinstance(step, Sleep):
                    self._wait(step.seconds, abort)
                    step = flow.send(None)
                elif isinstance(step, Count):
                    try:
                        step = flow.send(self._count_tokens(step.texts, abort))
                    except HFInferError as err:  # the flow decides (no /tokenize: no fitting)
                        step = flow.throw(err)
                else:
                    step = flow.send(self._send(step, abort))
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _send(self, step: Send, abort: threading.Event) -> HttpResult | HFInferError:
        try:
            self.rate_limiter.acquire(lambda seconds: self._wait(seconds, abort))
        except RateLimitBackendError as err:
            return err  # the flow names the batch's inputs on it
        if abort.is_set():  # aborted while this thread waited for its slot: send nothing more
            raise _Aborted
        started = time.perf_counter()
        outcome: HttpResult | HFInferError
        url = httpx.URL(step.url)
        deadline = time.monotonic() + step.timeout
        try:
            with (
                attempt_deadline(deadline),
                self._http.stream(step.method, url, **self._request_options(step)) as response,
            ):
                watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), cut_socket, (response,))
                watchdog.daemon = True
                watchdog.start()
                try:
                    # Raw bytes, inflated and counted by BoundedBody: never more than max_bytes.
                    body = _reader(response, step)
                    for chunk in () if response.is_stream_consumed else response.iter_raw():
                        body.feed(chunk)
                    outcome = _result(response, body.finish())
                finally:
                    watchdog.cancel()
            if time.monotonic() > deadline:
                outcome = _transport_error(TimeoutError(), url, expired=True)
        except HFInferError as err:  # the body was too large or not valid gzip
            outcome = err
        except httpx.HTTPError as err:
            outcome = _transport_error(err, url, expired=time.monotonic() >= deadline)
        except RuntimeError as err:  # httpx's "client has been closed"
            if not self._http.is_closed:
                raise
            raise ClientClosedError("the client was closed while this call was using it") from err
        _log(step, url, outcome, started)
        return outcome

    def _discover_once(self) -> None:
        if self._discovered:
            return
        with self._discover_lock:
            if not self._discovered:
                self._run(self._core.info_flow(), threading.Event())
                self._discovered = True
                self._announce()
