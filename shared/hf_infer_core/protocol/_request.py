"""What every task's requests share, and no I/O: the retry loop, deadlines, discovery, errors.

:class:`RequestCore` holds the endpoint, the options and what discovery learnt; its
:meth:`~RequestCore.attempts` is the one retry loop every request of every task goes through (a
generator of :class:`~._steps.Send` and :class:`~._steps.Sleep` steps), and
:meth:`~RequestCore.info_flow` reads TEI's ``GET /info`` the same way. A task's own core (the
embeddings' batches, parsing and token fitting) builds on it; the drivers perform the steps.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..base import _errors
from ..base._errors import BATCH_LIMIT, EndpointError, HFInferError, status_error
from ..base._secret import redact, shown_url
from ..config import InferenceEndpoint
from ..config._options import RequestOptions
from ._body import ACCEPT_ENCODING, default_response_limit
from ._probes import Probes
from ._retry import OVERLOAD_BACKOFF, Jitter, RetryPolicy, decide
from ._steps import Flow, HttpResult, Parallel, Send, Sleep, ask
from ._wire import plain_loads

__all__ = ["RequestCore", "answer"]

logger = logging.getLogger("hf_infer_core")
R = TypeVar("R")


def answer(result: HttpResult) -> HttpResult:
    """The ``read`` of a request whose caller takes the answer as it is."""
    return result


class RequestCore:
    """The endpoint, the options, the retry policy and what ``/info`` said: what every task's core builds on."""

    # The route a task's URL ends with, beside which TEI's /info is found.
    route: ClassVar[str] = "/embed"

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: RequestOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
    ) -> None:
        if not isinstance(endpoint, InferenceEndpoint):
            raise TypeError(f"endpoint must be an InferenceEndpoint, got {type(endpoint).__name__}")
        self.endpoint = endpoint
        self.options = options
        # Discovery may lower it to the server's max_client_batch_size.
        self.batch_size = options.batch_size
        self.policy = RetryPolicy(
            max_retries=options.max_retries,
            max_retry_wait=options.max_retry_wait,
            deadline=options.retry_deadline,
            refused_deadline=options.connect_retry_deadline,
            # A slot frees within one latency; the adaptive limit waits for it (see RetryPolicy).
            overload_backoff=OVERLOAD_BACKOFF if options.max_concurrency == "auto" else None,
        )
        self.clock = clock
        self.rng = rng or random.Random()
        self.server_info: dict[str, Any] | None = None
        self.probes = Probes(shown_url(endpoint.url), clock)
        # No Authorization here: the key lives only in the clients' httpx.Auth, which adds the
        # header at send time, so no dict, frame or repr of the core ever holds it.
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            # Only what BoundedBody reads, so every byte is counted as it is inflated.
            "Accept-Encoding": ACCEPT_ENCODING,
        }

    def response_limit(self, inputs: int) -> int:
        """The largest body, decompressed, accepted for a request of ``inputs`` texts."""
        return self.options.max_response_bytes or default_response_limit(inputs)

    def attempt_budget(self, started: float) -> float:
        """Seconds the next attempt of a batch begun at ``started`` may take: ``timeout``, within the deadline."""
        return min(self.options.timeout, self.policy.deadline - (self.clock() - started))

    @property
    def info_url(self) -> str:
        """TEI's ``/info`` next to the task's URL (``.../embed``, ``.../rerank`` or the server root)."""
        parts = urlsplit(self.endpoint.url)
        path = parts.path.rstrip("/")
        if path.endswith(self.route):
            path = path[: -len(self.route)]
        return urlunsplit((parts.scheme, parts.netloc, path + "/info", "", ""))

    def apply_info(self, body: bytes) -> None:
        """Record TEI's ``/info`` answer and cap ``batch_size`` at its ``max_client_batch_size``."""
        try:
            info = plain_loads(body)
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(info, dict):
            self._use_info(self.info_fields(info))

    def info_fields(self, info: dict[str, Any]) -> dict[str, Any]:
        """What a task keeps of ``/info``: the model, its input limit, the batch limit."""
        kept = (
            "model_id",
            "model_sha",
            "max_input_length",
            "max_client_batch_size",
            "max_concurrent_requests",
            "auto_truncate",
            "version",
        )
        return {k: info.get(k) for k in kept if k in info}

    def _use_info(self, info: dict[str, Any]) -> None:
        self.server_info = info
        if (cap := self._stated_count("max_client_batch_size")) is not None:
            self.batch_size = min(self.batch_size, cap)

    @property
    def announced_concurrency(self) -> int | None:
        """``/info``'s ``max_concurrent_requests`` (TEI answers 429 beyond it), when it is a positive integer."""
        return self._stated_count("max_concurrent_requests")

    @property
    def discovered_input_length(self) -> int | None:
        """``/info``'s ``max_input_length`` (the model's token limit), when it is a positive integer."""
        return self._stated_count("max_input_length")

    def _stated_count(self, field: str) -> int | None:
        """``/info``'s ``field`` when it is a positive integer (not a bool, a float or a string), else ``None``."""
        stated = (self.server_info or {}).get(field)
        return stated if isinstance(stated, int) and not isinstance(stated, bool) and stated > 0 else None

    def adopt(self, other: Self) -> None:
        """Take what ``other`` (a core of the same endpoint) learnt: ``/info`` and the probes' state."""
        if other.server_info is not None:
            self._use_info(dict(other.server_info))
        self.probes.adopt(other.probes)

    def _redact(self, body: bytes) -> str:
        """The body as text, with the key and anything shaped like a token redacted (servers echo headers)."""
        key = self.endpoint.api_key
        return redact(body.decode("utf-8", "replace"), [key.get_secret_value() if key is not None else None])

    def error_route(self) -> str | None:
        """A route the errors name when the endpoint lacks it (the embeddings' base64 route); none by default."""
        return None

    def _status_error(self, result: HttpResult) -> EndpointError:
        return status_error(
            result.status_code,
            self._redact(result.body),
            result.retry_after,
            self.endpoint.inference_id,
            self.error_route(),
        )

    # ------------------------------------------------------------------ the one retry loop

    def attempts(
        self,
        url: str,
        *,
        method: str = "POST",
        body: bytes = b"",
        indices: Sequence[int] = (),
        max_bytes: int | None = None,
        started: float | None = None,
        read: Callable[[HttpResult], R],
        probe: bool = False,
    ) -> Flow[R]:
        """Send one request until ``read`` takes its answer: every request's retry loop.

        One deadline rule for all: each attempt may take ``timeout``, cut to what is left of
        ``retry_deadline`` since ``started`` (a batch's 413 halves share their batch's), and none
        starts once nothing is left. Failures are retried as :func:`decide` says; ``read`` turns a
        2xx answer into the result (its typed errors are decided on likewise). ``probe``: an
        optional request (``/info``, ``/tokenize``): one attempt, bounded by
        ``connect_retry_deadline`` for ``GET``, its failure raised at once for the caller to skip.
        Raises the typed error of the last failure, carrying the attempt count and ``indices``.
        """
        started = self.clock() if started is None else started
        attempt = 0
        while True:
            attempt += 1
            budget = self.attempt_budget(started)
            if probe and method == "GET":
                budget = min(budget, self.policy.refused_deadline)
            if budget <= 0:
                raise _errors.TimeoutError(
                    f"the request used its retry_deadline of {self.policy.deadline:g}s",
                    attempts=attempt - 1,
                    indices=indices,
                )
            outcome = yield from ask(
                Send(
                    body,
                    tuple(indices),
                    attempt,
                    url,
                    method,
                    timeout=budget,
                    max_bytes=max_bytes or self.response_limit(len(indices)),
                )
            )
            if isinstance(outcome, _errors.TransportError | _errors.TimeoutError) or (
                isinstance(outcome, HttpResult) and outcome.status_code == 503
            ):
                self.connection_lost()
            try:
                if isinstance(outcome, HFInferError):
                    raise outcome
                if not 200 <= outcome.status_code < 300:
                    raise self._status_error(outcome)
                return read(outcome)
            except HFInferError as err:
                decision = decide(self.policy, attempt, err, self.clock() - started, self.rng)
                if probe or not decision.retry:
                    # A transport error keeps its httpx cause; the retry loop itself is no context.
                    raise err.with_context(attempts=attempt, indices=indices) from err.__cause__
                yield from ask(Sleep(decision.wait))

    def learn_batch_limit(self, err: HFInferError, refused: int) -> bool:
        """Lower ``batch_size`` to the limit a refusal states (TEI: 413 up to 1.8, 422 from 1.9); False if none.

        ``refused``: the size of the batch refused, for the caller's fallback.
        """
        stated = BATCH_LIMIT.search(f"{err.message} {getattr(err, 'body', '')}")
        if stated is None:
            return False
        self.batch_size = max(1, min(self.batch_size, int(stated.group(1)), refused - 1))
        return True

    def connection_lost(self) -> None:
        """An attempt lost its connection, timed out or met a 503: the endpoint may be another now (a redeploy)."""

    def in_halves(
        self,
        texts: Sequence[str],
        indices: Sequence[int],
        send: Callable[[Sequence[str], Sequence[int]], Flow[list[R]]],
    ) -> Flow[list[R]]:
        """A batch the endpoint refused whole, sent as its two halves side by side (within ``max_concurrency``).

        ``send(texts, indices)`` is the task's batch flow for one half; the results come back in order.
        """
        mid = len(texts) // 2
        halves = ((texts[:mid], indices[:mid]), (texts[mid:], indices[mid:]))
        left, right = yield from ask(Parallel((send(t, i) for t, i in halves), 2, self.options.window))
        return left + right

    def info_flow(self) -> Flow[None]:
        """Ask TEI's ``/info`` once (an optional probe: one attempt) and apply its answer.

        An endpoint that is not TEI answers 404 or 405: nothing is learnt and nothing fails.
        Every other failure is raised for :class:`~._task.TaskJobs` to log and skip: the calls go on
        without what ``/info`` would have said.
        """
        try:
            reply = yield from self.attempts(self.info_url, method="GET", probe=True, read=answer)
        except EndpointError as err:
            if err.status_code not in (404, 405):
                raise
            logger.debug("no TEI /info at %s (status %d)", urlsplit(self.info_url).path, err.status_code)
            return
        self.apply_info(reply.body)
