"""The rerank task's I/O-free core: TEI's ``/rerank`` request, its answer checked, batch-size halving.

:class:`RerankCore` is the rerank task's :class:`~..protocol._request.RequestCore`: the same retry
loop, deadlines, status errors and discovery as the embeddings', and only what differs here.
A batch is one ``POST /rerank`` of the query and up to ``batch_size`` passages; a cross-encoder
scores each pair alone, so batches of one call are merged exactly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..base._errors import (
    BATCH_LIMIT,
    ConfigError,
    InvalidRequestError,
    PayloadTooLargeError,
    ResponseFormatError,
    body_excerpt,
)
from ..config import InferenceEndpoint
from ..config._options import RerankOptions
from ..protocol._request import RequestCore
from ..protocol._retry import Jitter
from ..protocol._steps import Flow, HttpResult
from ..protocol._wire import dumps, fast_loads

__all__ = ["RerankCore", "rerank_url"]

logger = logging.getLogger("hf_infer_core")

# Elasticsearch's rerank chunking (RerankRequestChunker): words per token, and tokens the pair's
# special tokens take.
WORDS_PER_TOKEN = 0.75
EXTRA_TOKENS = 5
# The model limit assumed when /info gave none (Elasticsearch's reranker's).
DEFAULT_TOKEN_LIMIT = 512
# TEI's character cap on an input: the model's token limit times this (core/src/tokenization.rs,
# MAX_CHAR_MULTIPLIER); with truncate it cuts a longer input to the cap, without it refuses it.
CHARS_PER_TOKEN_CAP = 250
# The shortest a passage refused for its size is cut to (characters per token of the limit): far
# more than the tokens the model reads, so the cut never changes what is scored.
CHARS_PER_TOKEN_FLOOR = 16


# TEI's embedding routes: a rerank client given one (HF_INFER_URL set for the embeddings) means
# the same server's /rerank.
_TEI_EMBEDDING_ROUTES = ("/embed", "/embed_all", "/embed_sparse", "/embeddings", "/v1/embeddings")


def rerank_url(url: str) -> str:
    """Where a rerank batch is sent: the URL as configured, or TEI's ``/rerank`` beside it.

    TEI answers ``POST /`` with ``/predict`` for a reranker, not with ``/rerank``: a URL with no
    path (``http://host:8080``) means the server, whose rerank route is ``/rerank``; so does one of
    TEI's embedding routes (``.../embed``). Another embedding route (Hugging Face's
    ``feature-extraction`` pipeline) has no rerank beside it: a :class:`ConfigError` names it.
    """
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path == "":
        return urlunsplit((parts.scheme, parts.netloc, "/rerank", parts.query, ""))
    for route in _TEI_EMBEDDING_ROUTES:
        if path.endswith(route):
            return urlunsplit((parts.scheme, parts.netloc, path[: -len(route)] + "/rerank", parts.query, ""))
    if "feature-extraction" in path or "sentence-similarity" in path:
        raise ConfigError(
            [
                f"[url] {parts.path} is an embedding route, not a reranker's: give the rerank endpoint's URL "
                "(a TEI server serving a cross-encoder, ending in /rerank)"
            ]
        )
    return url


class RerankCore(RequestCore):
    """The rerank task's core: the request body, the answer's scores, and batch-size halving; no I/O."""

    route = "/rerank"
    options: RerankOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: RerankOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
    ) -> None:
        self._warned_stand_in = False
        super().__init__(endpoint, options, clock=clock, rng=rng)
        self.url = rerank_url(endpoint.url)
        # truncate: a pair over the model's limit is cut, never refused (best_chunk's chunks are
        # sized by words, so one may still be a little long).
        self.extras: dict[str, Any] = {"truncate": True}
        if options.raw_scores:
            self.extras["raw_scores"] = True
        if options.truncation_direction is not None:
            self.extras["truncation_direction"] = options.truncation_direction

    @property
    def info_url(self) -> str:
        """TEI's ``/info`` beside the rerank route actually used (which may be derived from an ``/embed`` URL)."""
        parts = urlsplit(self.url)
        path = parts.path.rstrip("/").removesuffix(self.route)
        return urlunsplit((parts.scheme, parts.netloc, path + "/info", "", ""))

    def info_fields(self, info: dict[str, Any]) -> dict[str, Any]:
        """``/info``'s fields, the reranker's own where the server says them apart.

        hf-infer's local server answers ``/embed`` and ``/rerank`` with two models, and names the
        reranker's in a ``rerank`` object; a TEI reranker's ``/info`` is about the reranker only.
        """
        fields = super().info_fields(info)
        rerank = info.get("rerank")
        if isinstance(rerank, dict):
            fields.update({k: rerank[k] for k in ("model_id", "max_input_length") if rerank.get(k) is not None})
            scoring = rerank.get("scoring")
            if isinstance(scoring, str) and scoring != "cross-encoder" and not self._warned_stand_in:
                self._warned_stand_in = True
                logger.warning(
                    "hf-infer: the endpoint's /rerank does not score with a cross-encoder (%s): its scores are a "
                    "stand-in for development, not relevance (hf-infer serve --rerank-model DIR serves one)",
                    scoring[:200],
                )
        return fields

    def body(self, query: str, texts: Sequence[str]) -> bytes:
        """TEI's ``/rerank`` request; the texts are not asked back (``return_text``): the caller has them."""
        return dumps({"query": query, "texts": list(texts), "return_text": False, **self.extras})

    def parse(self, result: HttpResult, count: int) -> list[float]:
        """The score of each of the ``count`` texts sent, in the order sent, from TEI's ``[{index, score}]``.

        Every index must come back exactly once with a finite score: a missing, repeated or
        out-of-range index, or a NaN, is a :class:`ResponseFormatError`, never a wrong ranking.
        """
        try:
            ranks = fast_loads(result.body)
        except (ValueError, UnicodeDecodeError):
            raise ResponseFormatError(
                f"the endpoint's /rerank answered {result.status_code} with a body that is not JSON: "
                f"{body_excerpt(self._redact(result.body))!r}",
                transient=True,
            ) from None
        scores: list[float | None] = [None] * count
        problem = None if isinstance(ranks, list) else "not a list of ranks"
        for rank in ranks if problem is None else ():
            try:
                index, score = rank["index"], rank["score"]
            except (TypeError, KeyError):
                problem = f"a rank without index and score: {rank!r}"[:200]
                break
            if type(index) is not int or not 0 <= index < count:
                problem = f"an index out of 0..{count - 1}: {rank!r}"[:200]
            elif (type(score) is not float and type(score) is not int) or not math.isfinite(score):
                problem = f"a score that is not a finite number: {rank!r}"[:200]
            elif scores[index] is not None:
                problem = f"index {index} twice"
            else:
                scores[index] = float(score)
                continue
            break
        if problem is None and None in scores:
            problem = f"no score for text {scores.index(None)} of {count}"
        if problem is not None:
            raise ResponseFormatError(
                f"the endpoint's /rerank answer is not one score per text sent ({count}): {problem}"
            )
        return scores  # type: ignore[return-value]  # every entry was checked above

    def batch_flow(
        self, query: str, texts: Sequence[str], indices: Sequence[int], started: float | None = None
    ) -> Flow[list[float]]:
        """Score one batch, as a generator of steps: its scores, in the order of ``texts``.

        A refusal of the batch's size (TEI's 413, or a 422 stating the limit) halves it, the
        halves sent side by side within ``max_concurrency`` and the batch's ``retry_deadline``,
        and lowers ``batch_size`` for the calls after (to the stated limit, else the half). A
        single passage refused names its index. Other failures are the retry loop's.
        """
        started = self.clock() if started is None else started
        try:
            scores: list[float] = yield from self.attempts(
                self.url,
                body=self.body(query, texts),
                indices=indices,
                max_bytes=self.response_limit(len(texts)),
                started=started,
                read=lambda answer: self.parse(answer, len(texts)),
            )
            return scores
        except (PayloadTooLargeError, InvalidRequestError) as err:
            if isinstance(err, InvalidRequestError) and BATCH_LIMIT.search(f"{err.message} {err.body}") is None:
                raise  # a 400/422 about something else than the batch's size: retrying cannot help
            if len(texts) == 1:
                if shorter := self.cut(texts[0], len(texts[0]) // 2) if isinstance(err, PayloadTooLargeError) else None:
                    # truncate mode: the endpoint reads the passage's first tokens only, so a
                    # payload too large for it is cut (never below the floor) rather than failing.
                    return (yield from self.batch_flow(query, [shorter], indices, started))
                if isinstance(err, PayloadTooLargeError):
                    err.index = indices[0]
                err.message = f"passage {indices[0]} alone is too large for the endpoint: {err.message}"
                raise err from err.__cause__
            if not self.learn_batch_limit(err, len(texts)):
                self.batch_size = max(1, min(self.batch_size, len(texts) // 2))
            return (yield from self.in_halves(texts, indices, lambda t, i: self.batch_flow(query, t, i, started)))

    def cut(self, text: str, chars: int) -> str | None:
        """``text`` cut to ``chars`` characters from the side TEI keeps, in truncate mode; ``None`` when it may not be.

        Never below :data:`CHARS_PER_TOKEN_FLOOR` characters per token of the limit.
        """
        floor = self.token_limit * CHARS_PER_TOKEN_FLOOR
        if self.options.long_passages != "truncate" or len(text) <= floor:
            return None
        chars = max(chars, floor)
        left = (self.options.truncation_direction or "right").lower() == "left"
        return text[-chars:] if left else text[:chars]

    def capped(self, texts: Sequence[str]) -> list[str]:
        """``texts`` with each over TEI's character cap cut to it, as TEI's truncate would cut it (truncate mode)."""
        cap = self.token_limit * CHARS_PER_TOKEN_CAP
        return [self.cut(text, cap) or text if len(text) > cap else text for text in texts]

    @property
    def token_limit(self) -> int:
        """The model's input limit: ``/info``'s ``max_input_length``, else Elasticsearch's reranker's 512."""
        return self.discovered_input_length or DEFAULT_TOKEN_LIMIT

    def chunk_words(self, query_words: int) -> int:
        """Words per chunk for ``long_passages="best_chunk"``: Elasticsearch's rerank chunk size for this model.

        The limit less the pair's special tokens and the query's tokens (words / 0.75), but at
        least half the limit; in words, within what sentence chunking accepts (20..300).
        """
        limit = self.token_limit
        with_query = limit - EXTRA_TOKENS - math.ceil(query_words / WORDS_PER_TOKEN)
        tokens = max(math.floor(limit / 2), with_query)
        return min(300, max(20, int(tokens * WORDS_PER_TOKEN)))
