"""The asyncio rerank client: its one method is a flow of :class:`~._flows.RerankJobs`, run by the asyncio driver."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Unpack

from ..config import InferenceEndpoint
from ..config._options import RerankOptionArgs, RerankOptions
from ..drivers._async import AsyncDriver
from ..drivers._progress import TqdmProgress
from ..limits._ratelimit import RateLimiter
from ..protocol._retry import Jitter
from ..protocol._task import TaskArgs
from ._flows import RerankJobs, RerankResult, open_jobs

if TYPE_CHECKING:
    from ..drivers._httpx import AsyncHttpClient, AsyncHttpTransport

__all__ = ["AsyncRerankClient"]


class AsyncRerankClient(AsyncDriver[RerankJobs]):
    """Rerank passages with asyncio; same options and behaviour as :class:`RerankClient`.

    Up to ``max_concurrency`` batches run as tasks. The client may be used from several event
    loops: each gets its own ``httpx.AsyncClient`` (unless one is injected), while the rate limit
    stays shared. ``sleep`` must be a coroutine function (default ``asyncio.sleep``).
    """

    options: RerankOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: RerankOptions | None = None,
        http_client: AsyncHttpClient | None = None,
        transport: AsyncHttpTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
        **overrides: Unpack[RerankOptionArgs],
    ) -> None:
        # The driver's constructor; declared here for the rerank options' types.
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

    def _open_jobs(self, args: TaskArgs) -> RerankJobs:
        return open_jobs(args, functools.partial(TqdmProgress, desc="Reranking"))

    async def rerank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_n: int | None = None,
        return_documents: bool | None = None,
    ) -> list[RerankResult]:
        """Score every text against ``query``; the ``top_n`` best, highest first (see :meth:`RerankClient.rerank`)."""
        return await self._run(self._jobs.rerank(query, texts, top_n, return_documents))
