"""The asyncio embedding client: each public method is one flow of :class:`~._flows.EmbeddingJobs`, run by the asyncio driver."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Unpack, overload

from ..config import InferenceEndpoint
from ..drivers._async import AsyncDriver
from ..drivers._progress import TqdmProgress
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

    from ..drivers._httpx import AsyncHttpClient, AsyncHttpTransport

__all__ = ["AsyncEmbeddingClient"]


class AsyncEmbeddingClient(AsyncDriver[EmbeddingJobs]):
    """Embed texts through a Hugging Face endpoint with asyncio; same options as :class:`EmbeddingClient`.

    Up to ``max_concurrency`` batches run as tasks. The client may be used from several event
    loops: each loop gets its own ``httpx.AsyncClient`` (unless one is injected), while the rate
    limit stays shared. ``sleep`` must be a coroutine function (default ``asyncio.sleep``).
    """

    options: EmbeddingOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: EmbeddingOptions | None = None,
        http_client: AsyncHttpClient | None = None,
        transport: AsyncHttpTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
    async def embed(self, texts: Sequence[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    async def embed(self, texts: Sequence[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    async def embed(self, texts: Sequence[str], *, as_numpy: bool = False) -> list[list[float]] | NDArray[np.float32]:
        """Return one vector per text, in order, each text sent as is (see :meth:`EmbeddingClient.embed`)."""
        return await self._run(self._jobs.embed(texts, as_numpy))

    async def embed_query(self, text: str) -> list[float]:
        """Return the vector of one query, with ``query_prefix`` prepended."""
        return await self._run(self._jobs.query(text))

    async def embed_chunks(self, texts: Sequence[str]) -> list[list[ChunkEmbedding]]:
        """Chunk every text and return each text's chunks with offsets and vectors."""
        return await self._run(self._jobs.chunks(texts))

    @overload
    async def embed_documents(self, texts: Sequence[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    async def embed_documents(self, texts: Sequence[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    async def embed_documents(
        self, texts: Sequence[str], *, as_numpy: bool = False
    ) -> list[list[float]] | NDArray[np.float32]:
        """Return one vector per text, chunk vectors combined (see :meth:`EmbeddingClient.embed_documents`)."""
        return await self._run(self._jobs.documents(texts, as_numpy))

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
        return self._stream(self._jobs.documents_stream(texts, as_numpy), texts)

    def aembed_chunks_iter(self, texts: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[list[ChunkEmbedding]]:
        """Stream :meth:`embed_chunks`: for each text, in order, its chunks with offsets and vectors."""
        return self._stream(self._jobs.chunks_stream(texts), texts)
