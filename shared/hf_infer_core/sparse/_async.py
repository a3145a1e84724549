"""The asyncio sparse client: each public method is one flow of :class:`~._flows.SparseJobs`, run by the asyncio driver."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Unpack

from ..config import InferenceEndpoint
from ..drivers._async import AsyncDriver
from ..drivers._progress import TqdmProgress
from ..limits._ratelimit import RateLimiter
from ..protocol._retry import Jitter
from ..protocol._task import TaskArgs
from ._flows import SparseJobs, open_jobs
from ._options import SparseEmbeddingOptionArgs, SparseEmbeddingOptions
from ._wire import SparseVector

if TYPE_CHECKING:
    from ..drivers._httpx import AsyncHttpClient, AsyncHttpTransport

__all__ = ["AsyncSparseEmbeddingClient"]


class AsyncSparseEmbeddingClient(AsyncDriver[SparseJobs]):
    """Sparse vectors from TEI's ``/embed_sparse`` with asyncio; same options as :class:`SparseEmbeddingClient`."""

    options: SparseEmbeddingOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: SparseEmbeddingOptions | None = None,
        http_client: AsyncHttpClient | None = None,
        transport: AsyncHttpTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
        tokenizer: object = None,
        **overrides: Unpack[SparseEmbeddingOptionArgs],
    ) -> None:
        # Read by _open_jobs, which the driver's constructor calls.
        self._tokenizer = tokenizer
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

    def _open_jobs(self, args: TaskArgs) -> SparseJobs:
        return open_jobs(args, functools.partial(TqdmProgress, desc="Sparse embedding"), self._tokenizer)

    async def embed(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text, in order, each sent as is (see :meth:`SparseEmbeddingClient.embed`)."""
        return await self._run(self._jobs.embed(texts))

    async def embed_query(self, text: str) -> SparseVector:
        """The sparse vector of one query, ``query_prefix`` prepended."""
        return await self._run(self._jobs.query(text))

    async def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text, chunks pooled by their maximum (see :meth:`SparseEmbeddingClient.embed_documents`)."""
        return await self._run(self._jobs.documents(texts))

    def aembed_iter(self, texts: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[SparseVector]:
        """Stream :meth:`embed_documents`; ``texts`` may be async. Bad arguments fail at the call."""
        return self._stream(self._jobs.documents_stream(texts), texts)
