"""The blocking rerank client: its one method is a flow of :class:`~._flows.RerankJobs`, run by the threaded driver."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Unpack

from ..config import InferenceEndpoint
from ..config._options import RerankOptionArgs, RerankOptions
from ..drivers._progress import TqdmProgress
from ..drivers._sync import SyncDriver
from ..limits._ratelimit import RateLimiter
from ..protocol._retry import Jitter
from ..protocol._task import TaskArgs
from ._flows import RerankJobs, RerankResult, open_jobs

if TYPE_CHECKING:
    from ..drivers._httpx import HttpClient, HttpTransport

__all__ = ["RerankClient"]


class RerankClient(SyncDriver[RerankJobs]):
    """Rerank passages against a query through a Hugging Face / TEI ``/rerank`` endpoint; blocking.

    The same machinery as :class:`~hf_infer_core.EmbeddingClient`: rate limit (local or Redis),
    retries, deadlines, bounded bodies, adaptive concurrency, discovery and typed errors. More
    passages than one request takes are sent in batches of ``batch_size`` (capped by ``/info``'s
    ``max_client_batch_size``), up to ``max_concurrency`` at once, and merged.

    Args:
        endpoint: A ``rerank`` endpoint (``InferenceEndpoint.from_request("rerank", ...)``).
        options: A :class:`RerankOptions`; keyword arguments of the same names override it.
        http_client: An ``httpx.Client`` to use (not closed by :meth:`close`).
        transport: An httpx transport for the client this class creates (tests, proxies).
        rate_limiter: A limiter to use instead of the process-wide one for this URL.
        sleep: How to wait (injectable so tests never sleep).
        clock: Monotonic clock for retry deadlines.
        rng: Random source for backoff jitter.
        **overrides: Options by name (typed: a misspelt option is a type error).
    """

    options: RerankOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        *,
        options: RerankOptions | None = None,
        http_client: HttpClient | None = None,
        transport: HttpTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
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

    def rerank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_n: int | None = None,
        return_documents: bool | None = None,
    ) -> list[RerankResult]:
        """Score every text against ``query``; return the ``top_n`` best, highest score first.

        ``top_n``: the call's, else the endpoint's ``task_settings.top_n``, else every text.
        ``return_documents``: each result carries its text (default: the task settings', else no).
        An empty list returns ``[]`` with no request; an empty query or a text that is not a
        string is an :class:`~hf_infer_core.InvalidInputError` before anything is sent.
        """
        return self._run(self._jobs.rerank(query, texts, top_n, return_documents))
