"""Retry policy as data plus one pure decision function.

Which failures are worth another attempt, and how long to wait first, is decided here and
nowhere else; the sync and async clients only carry the decision out. The function takes the
attempt number, the error and the time spent so far, and returns "give up" or "wait N seconds".
A random source is passed in, so tests check exact waits.

Transient (retried): 429 (``Retry-After`` honoured), 503 while the model loads
(``estimated_time`` honoured), other 5xx and TEI's 424, timeouts and connection failures, and a
2xx answer whose body is cut off or not JSON. Never retried: 401/403, 400/422 and other 4xx, and
a well-formed answer that is wrong (wrong vector count, NaN, ragged dimensions): repeating the
request cannot fix those. 413 is not retried as is: the client splits the batch instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from ..base._errors import (
    HFInferError,
    ModelLoadingError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from ..config._options import RequestOptions

__all__ = ["OVERLOAD_BACKOFF", "RetryDecision", "RetryPolicy", "decide", "is_transient"]

logger = logging.getLogger("hf_infer_core")
_OPTIONS = RequestOptions()
# An adaptive limit's first wait after TEI's "Model is overloaded" (see RetryPolicy): about the
# few latencies a slot of a busy endpoint takes to free, doubled per attempt as the others are.
OVERLOAD_BACKOFF = 0.1


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one batch.

    Attributes:
        max_retries: Retries after the first attempt (so ``max_retries + 1`` requests at most).
        initial_backoff: First backoff bound in seconds (Elasticsearch: 1 s).
        max_backoff: Largest backoff bound in seconds (Elasticsearch: 5 s).
        max_retry_wait: Largest single wait, also capping ``Retry-After`` and ``estimated_time``.
        deadline: Total seconds one batch may spend, waits included; no retry starts after it.
        refused_deadline: The same for a refused connection, which usually means nothing is
            listening there: reported soon ("is the endpoint running?") rather than retried for
            minutes; raise it to wait for an endpoint that is starting.
        overload_backoff: First backoff bound for TEI's 429 "Model is overloaded" (its queue is
            full now), when an adaptive concurrency limit paces the retry (``None``:
            ``initial_backoff``). That limit has already cut what is in flight and parks the
            refused slot, so the retry waits for room anyway; a second's backoff on top held a
            stream's window behind one refused batch (two clients of one endpoint: 0.35 and 0.48).
    """

    max_retries: int = _OPTIONS.max_retries
    initial_backoff: float = 1.0
    max_backoff: float = 5.0
    max_retry_wait: float = _OPTIONS.max_retry_wait
    deadline: float = _OPTIONS.retry_deadline
    refused_deadline: float = _OPTIONS.connect_retry_deadline
    overload_backoff: float | None = None


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """The outcome of :func:`decide`: retry after ``wait`` seconds, or give up."""

    retry: bool
    wait: float = 0.0


def is_transient(error: HFInferError) -> bool:
    """Return True when repeating the same request may succeed."""
    if isinstance(error, TransportError):
        return not (error.local or error.untrusted)
    if isinstance(error, RateLimitError | ModelLoadingError | ServerError):
        return True
    return isinstance(error, ResponseFormatError) and getattr(error, "transient", False)


class Jitter(Protocol):
    """The random source of backoff jitter (a ``random.Random``; tests inject a seeded one)."""

    def uniform(self, a: float, b: float) -> float:
        """A number from ``a`` to ``b``."""
        ...

    def seed(self) -> None:
        """Seed afresh (a forked child's own jitter)."""
        ...


def decide(policy: RetryPolicy, attempt: int, error: HFInferError, elapsed: float, rng: Jitter) -> RetryDecision:
    """Decide whether attempt number ``attempt`` (1-based), which failed with ``error``, is retried.

    The wait is the server's hint when it gives one (``Retry-After``, ``estimated_time``), else an
    exponential backoff bound (``initial_backoff * 2 ** (attempt - 1)``, at most ``max_backoff``)
    with "equal jitter" (uniform in [bound/2, bound]) so clients that failed together spread out.
    """
    if not is_transient(error):
        return RetryDecision(False)
    if attempt > policy.max_retries:
        logger.debug("giving up after attempt %d: %d retries used", attempt, policy.max_retries)
        return RetryDecision(False)
    first = policy.initial_backoff
    overloaded = isinstance(error, RateLimitError) and (error.error_type or "").lower() == "overloaded"
    if policy.overload_backoff is not None and overloaded:  # TEI's full queue, not a quota's 429
        first = policy.overload_backoff
    bound = min(policy.max_backoff, first * 2 ** (attempt - 1))
    wait = rng.uniform(bound / 2, bound)
    hint = None
    if isinstance(error, RateLimitError):
        hint = error.retry_after
    elif isinstance(error, ModelLoadingError):
        hint = error.estimated_time
    if hint is not None and hint > 0:
        wait = hint
    wait = min(wait, policy.max_retry_wait)
    if isinstance(error, TransportError) and error.refused and elapsed + wait > policy.refused_deadline:
        logger.debug("giving up after attempt %d: connections refused for %.2fs", attempt, elapsed)
        return RetryDecision(False)
    if elapsed + wait > policy.deadline:
        logger.debug(
            "giving up after attempt %d: a %.2fs wait would pass the %gs deadline", attempt, wait, policy.deadline
        )
        return RetryDecision(False)
    return RetryDecision(True, wait)
