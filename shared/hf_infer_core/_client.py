"""The endpoint clients: :class:`EmbeddingClient` (threads) and :class:`AsyncEmbeddingClient` (asyncio).

Both are thin loops around :class:`~hf_infer_core._core.ClientCore`: they perform its steps
(take a rate-limit token and POST, or sleep) and run up to ``max_concurrency`` batches at once,
the sync client on threads sharing one ``httpx.Client``, the async client as tasks sharing one
``httpx.AsyncClient`` per event loop. Results are put back by batch position, so inputs are
never reordered, dropped or duplicated; if a batch fails for good, the others stop and the
typed error is raised: no partial result is ever returned.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, Unpack, overload

import httpx
from pydantic import SecretStr

from . import _errors
from ._body import BoundedBody
from ._chunking import Chunk, ChunkEmbedding
from ._config import InferenceEndpoint
from ._core import ClientCore, HttpResult, NoTokenizeRoute, Send, Sleep
from ._deadline import attempt_deadline, deadline_transport
from ._errors import ClientClosedError, HFInferError, RateLimitBackendError, TransportError
from ._fit import FitFlow, Tokens, fit_texts_flow, load_tokenizer
from ._options import ClientOptionArgs, ClientOptions
from ._pooling import Pieces, chunk_embeddings, expand_pieces, per_text, pool_all
from ._ratelimit import (
    NoLimit,
    RateLimiter,
    RedisRateLimiter,
    after_fork_in_child,
    bucket_key,
    shared_rate_limiter,
)
from ._secret import shown_url
from ._stream import StreamAssembler, StreamBatch

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["AsyncEmbeddingClient", "EmbeddingClient"]

logger = logging.getLogger("hf_infer_core")

# Every live client, so a forked child can give each one state of its own (see _reset_after_fork).
_CLIENTS: weakref.WeakSet[_ClientBase] = weakref.WeakSet()
# Connections inherited from the parent: a child must neither use them (the parent's requests and
# the child's would interleave on one socket and swap answers) nor close them (closing a TLS
# connection sends close_notify on the parent's socket). Kept referenced so GC never closes them.
_INHERITED: list[object] = []


def _after_fork_in_child() -> None:
    after_fork_in_child()
    for client in list(_CLIENTS):
        client._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

T = TypeVar("T")
R = TypeVar("R")
Flow = Generator[Send | Sleep, "HttpResult | HFInferError | None", T]

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


class _Aborted(Exception):
    """Another batch of the same call failed; this one stops before its next request."""


class _Progress:
    """Counts texts done for an optional tqdm bar; a text is done when all its chunks are."""

    def __init__(self, enabled: bool, total: int, owners: Sequence[int] | None = None) -> None:
        self._bar: Any = None
        self._owners = owners
        self._lock = threading.Lock()
        if owners is not None:
            self._remaining = [0] * total
            for owner in owners:
                self._remaining[owner] += 1
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError as err:  # pragma: no cover - tqdm ships with the dev and all extras
                raise ImportError("show_progress=True needs tqdm: pip install 'hf-infer[progress]'") from err
            self._bar = tqdm(total=total, unit="text", desc="Embedding")

    def done(self, indices: Sequence[int]) -> None:
        if self._bar is None:
            return
        with self._lock:
            if self._owners is None:
                self._bar.update(len(indices))
                return
            finished = 0
            for i in indices:
                owner = self._owners[i]
                self._remaining[owner] -= 1
                finished += self._remaining[owner] == 0
            if finished:
                self._bar.update(finished)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _refused(err: BaseException) -> bool:
    """True when ``err`` comes from a refused connection, however deep in its causes.

    httpx-aiohttp reports a refusal as ConnectTimeout, the ConnectionRefusedError three causes down.
    """
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ConnectionRefusedError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _transport_error(err: BaseException, url: httpx.URL, *, expired: bool = False) -> HFInferError:
    where = _shown(url)
    error: HFInferError
    if expired:
        error = _errors.TimeoutError(f"no complete answer from {where} within the attempt's timeout")
    elif _refused(err):
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


def _shown(url: httpx.URL) -> str:
    """``scheme://host[:port]/path``: no credentials, no query string, no colon without a port."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}{url.path}"


def _attempt_timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(_CONNECT_TIMEOUT, seconds))


def _cut(response: httpx.Response) -> None:
    """Shut the response's socket down, so a read blocked on it returns now (the attempt's deadline).

    httpx's timeouts bound each read, not the whole answer: a server sending one byte a second
    would hold a call for ever. Shutting the socket down (not closing it: httpx still owns the
    file descriptor) wakes the reading thread with an error, and the connection is discarded.
    """
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def _texts_named(owners: Sequence[int]) -> Iterator[None]:
    """Make a failed call's ``indices`` name texts (the caller's positions), not their chunks."""
    try:
        yield
    except HFInferError as err:
        err.indices = tuple(sorted({owners[i] for i in err.indices if 0 <= i < len(owners)}))
        raise


def _check_iterable(texts: object) -> None:
    if isinstance(texts, str | bytes):
        raise TypeError(f"texts must be an iterable of str, not a single {type(texts).__name__}")
    if not isinstance(texts, Iterable | AsyncIterable):
        raise TypeError(f"texts must be an iterable of str, got {type(texts).__name__}")


async def _aiterate(texts: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[str]:
    if isinstance(texts, AsyncIterable):
        async for text in texts:
            yield text
    else:
        for text in texts:
            yield text


def _array_maker(as_numpy: bool) -> Callable[[list[list[float]]], list[list[float]] | NDArray[np.float32]]:
    """Identity, or a float32 2-D array maker; checked before any request is sent."""
    if not as_numpy:
        return lambda vectors: vectors
    try:
        import numpy  # noqa: F401 - only to fail before any request when numpy is missing
    except ImportError as err:
        raise ImportError('as_numpy=True needs numpy: pip install "hf-infer[fast]"') from err
    return _as_array


def _as_array(vectors: list[list[float]]) -> NDArray[np.float32]:
    import numpy

    return numpy.asarray(vectors, dtype=numpy.float32)


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


class _ClientBase:
    """Options and the public embedding methods' shared plumbing (no I/O)."""

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: ClientOptions | None,
        overrides: ClientOptionArgs,
        *,
        rate_limiter: RateLimiter | None,
        clock: Callable[[], float],
        rng: Any,
        tokenizer: Any = None,
    ) -> None:
        self.options = ClientOptions.build(options, overrides)
        # A local token counter (tokenizer=); without one, TEI's /tokenize counts when needed.
        self._counter = load_tokenizer(tokenizer) if tokenizer is not None else None
        self._core = ClientCore(endpoint, self.options, clock=clock, rng=rng)
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
            )
        self._discovered = not self.options.discover
        # Told TEI's /info fields once discovery has read them (the adapters' ``model``).
        self.on_info: Callable[[dict[str, Any]], None] | None = None
        key = endpoint.api_key
        # A keyless endpoint (a local TEI server) sends no Authorization header at all.
        self._auth: httpx.Auth | None = _BearerAuth(key) if key is not None else None
        timeout = self.options.timeout
        self._timeout = httpx.Timeout(timeout, connect=min(_CONNECT_TIMEOUT, timeout))
        concurrency = self.options.max_concurrency
        self._limits = httpx.Limits(max_connections=max(concurrency, 10), max_keepalive_connections=concurrency)
        _CLIENTS.add(self)

    def _announce(self) -> None:
        if self.on_info is not None and self._core.server_info is not None:
            self.on_info(self._core.server_info)

    def _reset_after_fork(self) -> None:
        """Give this client, in a forked child, connections, locks and a jitter source of its own."""
        if self._own_rng:
            self._core.rng.seed()  # children sharing the parent's jitter would retry in lockstep

    @property
    def endpoint(self) -> InferenceEndpoint:
        """The endpoint configuration."""
        return self._core.endpoint

    @property
    def batch_size(self) -> int:
        """Inputs per request (capped by TEI's ``max_client_batch_size`` after discovery)."""
        return self._core.batch_size

    @property
    def dimensions(self) -> int | None:
        """Vector size: configured, or learnt from the first response."""
        return self._core.dimensions

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

    def _chunks(self, texts: Sequence[str], first: int = 0) -> tuple[list[str], list[list[Chunk]]]:
        items = self._core.check_texts(texts, first)
        return items, self._core.chunk_all(items)

    def _fit_flow(self, items: Sequence[str], chunks: list[list[Chunk]]) -> FitFlow | None:
        """The flow that fits ``chunks`` to the model's token limit; ``None`` when no limit is known."""
        limit = self._core.token_limit
        if limit is None or (self._counter is None and not self._core.can_tokenize):
            return None  # the 413 splitting of the chunked paths fits what the endpoint refuses
        return fit_texts_flow(items, chunks, limit, self.options.document_prefix)

    def _flatten(self, chunks: list[list[Chunk]]) -> tuple[list[str], list[int]]:
        prefix = self.options.document_prefix
        flat = [prefix + c.text for cs in chunks for c in cs]
        owners = [i for i, cs in enumerate(chunks) for _ in cs]
        return flat, owners

    @staticmethod
    def _expanded(chunks: list[list[Chunk]], vectors: list[Any]) -> tuple[list[list[Chunk]], list[list[float]]]:
        """Each text's chunks and the flat vectors, inputs split by a 413 replaced by their pieces."""
        if not any(isinstance(v, Pieces) for v in vectors):
            return chunks, vectors
        pairs = [expand_pieces(text_chunks, text_vectors) for text_chunks, text_vectors in per_text(chunks, vectors)]
        return [c for c, _ in pairs], [v for _, vs in pairs for v in vs]

    @staticmethod
    def _group(chunks: list[list[Chunk]], vectors: list[list[float]]) -> list[list[ChunkEmbedding]]:
        return [chunk_embeddings(text_chunks, text_vectors) for text_chunks, text_vectors in per_text(chunks, vectors)]

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} url={shown_url(self.endpoint.url)!r} inference_id={self.endpoint.inference_id!r} "
            f"batch_size={self.batch_size} max_concurrency={self.options.max_concurrency}>"
        )


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
        items = self._core.check_texts(texts)
        to_array = _array_maker(as_numpy)
        return to_array(self._embed_flat(items, _Progress(self.options.show_progress, len(items)), as_numpy))

    def embed_query(self, text: str) -> list[float]:
        """Return the vector of one query, with ``query_prefix`` prepended (queries are not chunked)."""
        (item,) = self._core.check_texts([text])
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
        """``chunks``, those over the model's token limit split again (counting through the tokenizer)."""
        self._discover_once()  # the limit may come from /info
        flow = self._fit_flow(items, chunks)
        if flow is None:
            return chunks
        abort = abort or threading.Event()
        try:
            request = next(flow)
            while True:
                request = flow.send(self._count_tokens(request, abort))
        except StopIteration as stop:
            fitted: list[list[Chunk]] = stop.value
            return fitted
        except NoTokenizeRoute:
            return chunks

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
        return self._core.assemble(len(texts), batches, results)

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
                watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, (response,))
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
        items = self._core.check_texts(texts)
        to_array = _array_maker(as_numpy)
        return to_array(await self._embed_flat(items, _Progress(self.options.show_progress, len(items)), as_numpy))

    async def embed_query(self, text: str) -> list[float]:
        """Return the vector of one query, with ``query_prefix`` prepended."""
        (item,) = self._core.check_texts([text])
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
        """``chunks``, those over the model's token limit split again (see :meth:`EmbeddingClient.embed_chunks`)."""
        await self._discover_once()
        flow = self._fit_flow(items, chunks)
        if flow is None:
            return chunks
        try:
            request = next(flow)
            while True:
                request = flow.send(await self._count_tokens(request))
        except StopIteration as stop:
            fitted: list[list[Chunk]] = stop.value
            return fitted
        except NoTokenizeRoute:
            return chunks

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
        return self._core.assemble(len(texts), batches, results)

    async def _run(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await self._sleep(step.seconds)
                    step = flow.send(None)
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
