"""The blocking client, :class:`EmbeddingClient`: the steps of the job's flows (``_job.py``) performed on threads.

Each public method runs one flow. Up to ``max_concurrency`` batches run on threads sharing one
``httpx.Client``; the calling thread waits on an event (so Ctrl-C and a batch that fails for good
stop the call at once), and every attempt is bounded from connect to its last byte (see
:mod:`._deadline`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, Unpack, overload

import httpx

from ._chunking import ChunkEmbedding
from ._client import _INHERITED, T, _ClientBase, _log, _reader, _result, _transport_error
from ._concurrency import Ticket
from ._config import InferenceEndpoint
from ._core import HttpResult, Send, Sleep
from ._deadline import attempt_deadline, cut_socket, deadline_transport
from ._errors import ClientClosedError, HFInferError, RateLimitBackendError
from ._fit import result_of
from ._job import END, Discover, Emit, Flow, Parallel, Read, Start, Step
from ._options import ClientOptionArgs, ClientOptions
from ._ratelimit import RateLimiter

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["EmbeddingClient"]


class _Aborted(Exception):
    """Another batch of the same call failed; this one stops before its next request."""


class _Abort:
    """A call's abort flag; setting it sets its children's (the flows a :class:`Parallel` step runs).

    A child's own failure sets only the child: the flow that asked for the step decides what it
    means (a missing ``/tokenize`` is no failure of the call).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._children: weakref.WeakSet[_Abort] = weakref.WeakSet()

    def child(self) -> _Abort:
        child = _Abort()
        self._children.add(child)
        if self.is_set():
            child.set()
        return child

    def set(self) -> None:
        self._event.set()
        for child in list(self._children):
            child.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


class _Call:
    """One public call in the sync driver: its abort flag and, for a stream, its input and batches in flight."""

    def __init__(self, texts: Iterator[str] | None = None, abort: _Abort | None = None) -> None:
        self.abort = abort or _Abort()
        self.texts: Iterator[str] = texts if texts is not None else iter(())
        self.started: deque[Future[Any]] = deque()
        self._pool: ThreadPoolExecutor | None = None

    def child(self) -> _Call:
        return _Call(abort=self.abort.child())

    def start(self, run: Callable[[Flow[Any], _Call], Any], flow: Flow[Any], window: int) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix="hf-infer")
        self.started.append(self._pool.submit(run, flow, self))

    def stop(self) -> None:
        self.abort.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


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

    # ------------------------------------------------------------------ public methods: one flow each

    @overload
    def embed(self, texts: Sequence[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    def embed(self, texts: Sequence[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    def embed(self, texts: Sequence[str], *, as_numpy: bool = False) -> list[list[float]] | NDArray[np.float32]:
        """Return one vector per text, in order, each text sent as is (no chunking, no prefix).

        An empty list returns ``[]`` without a request; an empty string is sent as is.
        ``as_numpy=True`` returns one float32 array of shape (texts, dimensions) instead.
        """
        return self._run(self._jobs.embed(texts, as_numpy))

    def embed_query(self, text: str) -> list[float]:
        """Return the vector of one query, with ``query_prefix`` prepended (queries are not chunked)."""
        return self._run(self._jobs.query(text))

    def embed_chunks(self, texts: Sequence[str]) -> list[list[ChunkEmbedding]]:
        """Chunk every text with the endpoint's settings and return each text's chunks with vectors.

        When the model's token limit is known (``max_input_tokens``, or ``/info`` with
        ``discover=True``) a chunk over it comes back as the pieces it was split into, each
        recording in ``source`` the Elasticsearch chunk it came from.
        """
        return self._run(self._jobs.chunks(texts))

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
        return self._run(self._jobs.documents(texts, as_numpy))

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
        return self._stream(self._jobs.documents_stream(texts, as_numpy), texts)

    def embed_chunks_iter(self, texts: Iterable[str]) -> Iterator[list[ChunkEmbedding]]:
        """Stream :meth:`embed_chunks`: for each text, in order, its chunks with offsets and vectors."""
        return self._stream(self._jobs.chunks_stream(texts), texts)

    # ------------------------------------------------------------------ the driver

    def _run(self, flow: Flow[T], call: _Call | None = None) -> T:
        result: T = result_of(self._drive(flow, call or _Call()))
        return result

    def _stream(self, flow: Flow[None], texts: Iterable[str]) -> Iterator[Any]:
        call = _Call(iter(texts))
        try:
            yield from self._drive(flow, call)
        finally:
            # The consumer stopped, an error, or Ctrl-C: nothing more is sent, nothing waited for.
            call.stop()

    def _drive(self, flow: Flow[T], call: _Call) -> Generator[Any, None, T]:
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

    def _perform(self, step: Step, call: _Call) -> Any:
        if call.abort.is_set():  # another batch of this call failed, or the caller left
            raise _Aborted
        if isinstance(step, Send):
            return self._send(step, call.abort)
        if isinstance(step, Sleep):
            return self._wait(step.seconds, call.abort)
        if isinstance(step, Parallel):
            return self._parallel(step, call)
        if isinstance(step, Discover):
            return self._discover_once()
        if isinstance(step, Read):
            return next(call.texts, END)
        if isinstance(step, Start):
            return call.start(self._run, step.flow, self.options.window)
        return call.started.popleft().result()  # Settle

    def _parallel(self, step: Parallel, parent: _Call) -> list[Any]:
        """Run the flows on up to ``window`` threads; end at once on the first failure or on Ctrl-C.

        The calling thread waits on an event, which a signal interrupts, and never on the worker
        threads: when a flow fails for good or the caller is interrupted, the abort flag is set,
        every waiting worker wakes (their sleeps wait on it), none sends another request, and the
        call raises without waiting for requests already in flight (their threads end with them).
        """
        call = parent.child()  # a failure here aborts these flows, not the caller's other work
        if min(step.window, step.size) <= 1:
            return [self._finish(step, k, flow, call) for k, flow in enumerate(step.flows)]
        results: list[Any] = [None] * step.size
        queue = enumerate(step.flows)
        lock = threading.Lock()
        failures: list[BaseException] = []
        finished = threading.Event()
        running = workers = min(step.window, step.size)

        def worker() -> None:
            nonlocal running
            try:
                while not call.abort.is_set():
                    with lock:
                        item = next(queue, None)
                    if item is None:
                        return
                    results[item[0]] = self._finish(step, item[0], item[1], call)
            except _Aborted:
                return
            except BaseException as err:
                failures.append(err)
                call.abort.set()
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
            call.abort.set()  # Ctrl-C (or any error) in the calling thread: the workers stop too
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if failures:
            raise failures[0]
        return results

    def _finish(self, step: Parallel, k: int, flow: Flow[Any], call: _Call) -> Any:
        result = self._run(flow, call)
        if step.done is not None:
            step.done(k)
        return result

    def _wait(self, seconds: float, abort: _Abort) -> None:
        """Sleep ``seconds`` unless the call is aborted first (then raise :class:`_Aborted`)."""
        if self._sleep is time.sleep:
            if abort.wait(seconds):
                raise _Aborted
        else:  # an injected sleep (tests): call it, then look at the abort flag
            self._sleep(seconds)
        if abort.is_set():
            raise _Aborted

    def _send(self, step: Send, abort: _Abort) -> HttpResult | HFInferError:
        try:
            self.rate_limiter.acquire(lambda seconds: self._wait(seconds, abort))
        except RateLimitBackendError as err:
            return err  # the flow names the batch's inputs on it
        ticket = self._slot(abort)
        outcome: HttpResult | HFInferError | None = None
        try:
            outcome = self._attempt(step)
        finally:
            self._release(ticket, outcome)
        return outcome

    def _slot(self, abort: _Abort) -> Ticket | None:
        """A slot of the adaptive limit (none with a fixed ``max_concurrency``); waits, but not past an abort."""
        if abort.is_set():  # aborted while this thread waited for its rate-limit token: send nothing more
            raise _Aborted
        if self._adaptive is None:
            return None
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
                raise _Aborted

    def _attempt(self, step: Send) -> HttpResult | HFInferError:
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
        if not self._jobs.discovered:
            with self._discover_lock:
                self._run(self._jobs.info())
