"""The blocking embedding client: each public method is one flow of :class:`~._flows.EmbeddingJobs`, run by the threaded driver."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Unpack, overload

from ..config import InferenceEndpoint
from ..drivers._progress import TqdmProgress
from ..drivers._sync import SyncDriver
from ..limits._ratelimit import RateLimiter
from ..protocol._retry import Jitter
from ..protocol._task import TaskArgs
from ..text._chunking import ChunkEmbedding
from ._core import EmbeddingCore
from ._flows import EmbeddingJobs, open_jobs
from ._options import EmbeddingOptionArgs, EmbeddingOptions

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ..drivers._httpx import HttpClient, HttpTransport

__all__ = ["EmbeddingClient"]


class EmbeddingClient(SyncDriver[EmbeddingJobs]):
    """Embed texts through a Hugging Face endpoint; blocking, with up to ``max_concurrency`` threads.

    Args:
        endpoint: The Elasticsearch-style endpoint configuration.
        options: An :class:`EmbeddingOptions`; keyword arguments of the same names override it
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

    options: EmbeddingOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: EmbeddingOptions | None = None,
        http_client: HttpClient | None = None,
        transport: HttpTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
        tokenizer: Any = None,
        **overrides: Unpack[EmbeddingOptionArgs],
    ) -> None:
        # Read by _open_jobs, which the driver's constructor calls: only this task fits chunks.
        self._tokenizer = tokenizer
        # The driver's constructor; declared here for the embedding options' types.
        super().__init__(
            endpoint,
            options=options,
            http_client=http_client,
            transport=transport,
            rate_limiter=rate_limiter,
            sleep=sleep,
            clock=clock,
            rng=rng,
            **overrides,
        )

    def _open_jobs(self, args: TaskArgs) -> EmbeddingJobs:
        return open_jobs(args, functools.partial(TqdmProgress, desc="Embedding"), self._tokenizer)

    @property
    def _core(self) -> EmbeddingCore:
        return self._jobs.core

    @property
    def dimensions(self) -> int | None:
        """Vector size: configured, or learnt from the first response."""
        return self._core.dimensions

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
