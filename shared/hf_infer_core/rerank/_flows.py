"""The rerank call's whole job as one I/O-free flow; the two drivers only perform its steps.

Inputs are checked before anything is sent; the passages (or, with ``long_passages="best_chunk"``,
their chunks) are planned into batches of ``batch_size``, scored side by side within
``max_concurrency`` through the one retry loop, and merged: a cross-encoder scores each pair
alone, so the merge of batches is the ranking one request would have given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..base._errors import InvalidInputError
from ..config import ChunkingSettings
from ..config._options import RerankOptions
from ..protocol._plan import assemble, check_texts, chunk_all, plan, texts_named
from ..protocol._steps import Flow, Parallel, ask
from ..protocol._task import ProgressFactory, TaskArgs, TaskJobs, no_progress
from ..text._words import count_words
from ._core import RerankCore

__all__ = ["RerankJobs", "RerankResult", "open_jobs"]


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One passage's place in a ranking: its ``index`` in the texts given, its score, its text if asked.

    ``relevance_score`` is the endpoint's (a cross-encoder's sigmoid by default, its logit with
    ``raw_scores=True``), the name Elasticsearch and LangChain give it; ``text`` is ``None`` unless
    ``return_documents`` was asked for.
    """

    index: int
    relevance_score: float
    text: str | None = None


def open_jobs(args: TaskArgs, progress: ProgressFactory) -> RerankJobs:
    """Both rerank clients' flows: the endpoint checked to be a rerank one, the options built and checked."""
    options = args.options_for(
        RerankOptions,
        "rerank",
        "rerank",
        'InferenceEndpoint.from_request("rerank", ...) or from_url(..., task_type="rerank")',
    )
    core = RerankCore(args.endpoint, options, clock=args.clock, rng=args.rng)
    return RerankJobs(core, progress)


def check_query(query: object) -> str:
    """The query, refused before anything is sent when it is not a non-blank string."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("query is empty: a ranking needs something to rank against")
    check_passages([query], "query")
    return query


def check_passages(texts: object, name: str = "texts") -> list[str]:
    """The passages as a list, each a string that can be sent (the first bad one named by its index)."""
    if isinstance(texts, str | bytes):
        raise InvalidInputError(f"{name} must be a list of str, not a single {type(texts).__name__}")
    if not isinstance(texts, Sequence):
        raise InvalidInputError(f"{name} must be a list of str, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"{name}[{i}] must be a str, got {type(text).__name__}", index=i)
    try:
        return check_texts(texts)
    except InvalidInputError as err:  # a lone surrogate
        err.message = err.message.replace("texts[", f"{name}[", 1)
        raise


def check_top_n(top_n: object, name: str = "top_n") -> int | None:
    """``top_n`` as given: ``None`` or a positive integer (Elasticsearch's rule for the setting)."""
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n <= 0:
        raise InvalidInputError(f"{name} must be a positive integer or None, got {top_n!r}"[:200])
    return top_n


class RerankJobs(TaskJobs[RerankCore]):
    """The flow of both rerank clients' one method, over one :class:`RerankCore`."""

    def __init__(self, core: RerankCore, progress: ProgressFactory = no_progress) -> None:
        super().__init__(core, progress)
        self.options = core.options

    def rerank(
        self, query: str, texts: Sequence[str], top_n: int | None, return_documents: bool | None
    ) -> Flow[list[RerankResult]]:
        """``rerank``: every passage scored against ``query``; the ``top_n`` best, highest first.

        ``top_n`` and ``return_documents``: the call's, else the endpoint's task settings, else
        every passage and no text. Equal scores keep the passages' order.
        """
        query = check_query(query)
        items = check_passages(texts)
        settings = self.core.endpoint.task_settings
        top = check_top_n(top_n) or (settings.top_n if settings is not None else None)
        if return_documents is not None and not isinstance(return_documents, bool):
            raise InvalidInputError(f"return_documents must be a bool or None, got {type(return_documents).__name__}")
        with_text = return_documents if return_documents is not None else bool(settings and settings.return_documents)
        if not items:
            return []
        yield from self._discover()  # /info caps the batch size and states the model's input limit
        scores = yield from self._scores(query, items)
        order = sorted(range(len(items)), key=lambda i: (-scores[i], i))[:top]
        return [RerankResult(i, scores[i], items[i] if with_text else None) for i in order]

    def _scores(self, query: str, items: list[str]) -> Flow[list[float]]:
        """Each passage's score: its own, or with ``best_chunk`` its best chunk's."""
        if self.options.long_passages == "truncate":
            # What TEI's truncate cuts anyway is not sent: a 2 MB passage never meets the payload cap.
            return (yield from self._score_all(query, self.core.capped(items), None))
        # Elasticsearch's rerank chunking: sentences, sized to what the query leaves of the limit.
        words = self.core.chunk_words(count_words(query))
        settings = ChunkingSettings(strategy="sentence", max_chunk_size=words, sentence_overlap=1)
        # A passage of one chunk (or none: no words) is scored as it is.
        owned = [
            [chunk.text for chunk in chunks] if len(chunks) > 1 else [items[i]]
            for i, chunks in enumerate(chunk_all(items, settings))
        ]
        if all(len(texts) == 1 for texts in owned):
            return (yield from self._score_all(query, items, None))
        sent = [text for texts in owned for text in texts]
        owners = [i for i, texts in enumerate(owned) for _ in texts]
        with texts_named(owners):
            chunk_scores = yield from self._score_all(query, sent, owners)
        best = [-math.inf] * len(items)
        for owner, score in zip(owners, chunk_scores, strict=True):
            best[owner] = max(best[owner], score)
        return best

    def _score_all(self, query: str, texts: list[str], owners: list[int] | None) -> Flow[list[float]]:
        """Score ``texts`` in planned batches, at most ``max_concurrency`` at once; scores in input order."""
        total = len(texts) if owners is None else owners[-1] + 1
        progress = self.progress(self.options.show_progress, total, owners)
        try:
            batches = plan(texts, self.core.batch_size)
            flows = (self.core.batch_flow(query, [texts[i] for i in b], b) for b in batches)

            def done(k: int) -> None:
                progress.done(batches[k])

            results = yield from ask(Parallel(flows, len(batches), self.options.window, done))
        finally:
            progress.close()
        return assemble(len(texts), batches, results)
