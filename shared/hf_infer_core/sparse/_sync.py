"""The blocking sparse client: each public method is one flow of :class:`~._flows.SparseJobs`, run by the threaded driver."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Unpack

from ..config import InferenceEndpoint
from ..drivers._progress import TqdmProgress
from ..drivers._sync import SyncDriver
from ..limits._ratelimit import RateLimiter
from ..protocol._retry import Jitter
from ..protocol._task import TaskArgs
from ._flows import SparseJobs, open_jobs
from ._options import SparseEmbeddingOptionArgs, SparseEmbeddingOptions
from ._wire import SparseVector

if TYPE_CHECKING:
    from ..drivers._httpx import HttpClient, HttpTransport

__all__ = ["SparseEmbeddingClient"]


class SparseEmbeddingClient(SyncDriver[SparseJobs]):
    """Sparse vectors (``{vocabulary id: weight}``) from TEI's ``/embed_sparse``; blocking, on threads.

    The same constructor as :class:`~hf_infer_core.EmbeddingClient` (an endpoint of task type
    ``sparse_embedding``; options, an httpx client or transport, rate limiter, sleep, clock, jitter,
    a local ``tokenizer`` for fitting chunks) and the same machinery: batches, 413/422 halving,
    retries, deadlines, rate limits, the cache, progress, fork safety.
    """

    options: SparseEmbeddingOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: SparseEmbeddingOptions | None = None,
        http_client: HttpClient | None = None,
        transport: HttpTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
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

    def embed(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text, in order, each text sent as is (no chunking, no prefix)."""
        return self._run(self._jobs.embed(texts))

    def embed_query(self, text: str) -> SparseVector:
        """The sparse vector of one query, ``query_prefix`` prepended (queries are not chunked)."""
        return self._run(self._jobs.query(text))

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text: a long text is chunked, and its chunks' vectors pooled by their maximum."""
        return self._run(self._jobs.documents(texts))

    def embed_iter(self, texts: Iterable[str]) -> Iterator[SparseVector]:
        """Stream :meth:`embed_documents`: ``texts`` read lazily, one sparse vector per text, in order."""
        return self._stream(self._jobs.documents_stream(texts), texts)
