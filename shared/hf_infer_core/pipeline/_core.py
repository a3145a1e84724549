"""The chunked pipeline's I/O-free core: batches with their 413 halving, token fitting, the cache's keys.

:class:`ChunkedCore` is what every task that sends chunks of texts builds on (the embeddings;
sparse embeddings next): a batch driven by :meth:`ChunkedCore.batch_flow` (the one retry loop,
the answer parsed, the batch halved on a 413, an input alone split at a word), chunks fitted to
the model's token limit with a local tokenizer or TEI's ``/tokenize``, and the keys under which
its results are cached, tied to the model's verified identity (``cache/_identity.py``).

A task says what it sends and what it gets back: :meth:`build_body`, :meth:`parse`,
:attr:`task_url`, :meth:`request_parts` and how one result is stored (:meth:`encode`,
:meth:`decode`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Self, cast

from ..base._errors import ClientClosedError, EndpointError, HFInferError, PayloadTooLargeError, RateLimitBackendError
from ..cache._identity import PROBE_TEXT, Identity
from ..cache._keys import keys_for, namespace_of
from ..config import InferenceEndpoint
from ..protocol._plan import split_in_two, tokenize_groups
from ..protocol._request import RequestCore, answer
from ..protocol._retry import Jitter
from ..protocol._steps import Flow, HttpResult, Parallel, ask
from ..protocol._wire import tei_tokens, tokenize_answer_limit, tokenize_body
from ..text._chunking import Chunk
from ..text._fit import LocalTokenizer, Tokens, fit_texts_flow
from ..text._pooling import Pieces
from ._options import ChunkedOptions

if TYPE_CHECKING:
    pass

__all__ = ["BatchFlow", "ChunkedCore", "NoTokenizeRoute"]

logger = logging.getLogger("hf_infer_core")


class NoTokenizeRoute(EndpointError):
    """The endpoint has no ``/tokenize`` (404 or 405): chunks are fitted by 413 splitting instead."""


# A batch's results, in order; an input a 413 split comes back as its Pieces.
BatchFlow = Flow[list[object]]
# The limit a TEI server states in its 413: "`inputs` must have less than 256 tokens. Given: 300".
_STATED_LIMIT = re.compile(r"less than (\d{1,9}) tokens")


def _digest(domain: bytes, value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=16, person=domain.ljust(16, b"\0")[:16]).hexdigest()


class ChunkedCore(RequestCore):
    """A chunked task's core: batches, fitting, cache keys; the task adds its bodies and answers."""

    options: ChunkedOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: ChunkedOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
        counter: LocalTokenizer | None = None,
    ) -> None:
        super().__init__(endpoint, options, clock=clock, rng=rng)
        self.extras, self.query_extras = self.request_options(options, {}, {})
        # A local token counter (tokenizer=); without one, TEI's /tokenize counts when needed.
        self.counter = counter
        # The token limit a 413 stated, when neither the configuration nor /info gave one.
        self.learned_limit: int | None = None
        # With a cache, every batch whose results are stored carries the probe: one place less.
        self.reserve = 0
        self._warned_truncation = False
        # The model behind each kind of request (documents, queries): see cache/_identity.py.
        self._identities: dict[str, Identity] = {}
        # The static namespace and its identity registry key, per kind and /info's model hint:
        # everything else in it is fixed for the core's life, and every cached batch asks for it.
        self._static: dict[tuple[bool, str], tuple[dict[str, object], str]] = {}

    @staticmethod
    def request_options(
        options: ChunkedOptions, first: dict[str, object], last: dict[str, object]
    ) -> tuple[dict[str, object], dict[str, object]]:
        """TEI's request options (those set) for documents and for queries, a task's own ``first`` and ``last``.

        The order is the body's (TEI's own clients' order; recorded bodies replay byte for byte).

        TEI's prompts are per kind (e5's "query: " / "passage: "): each kind its own prompt_name.
        """
        shared = {
            **first,
            **{
                k: v
                for k, v in (("truncate", options.truncate), ("truncation_direction", options.truncation_direction))
                if v is not None
            },
            **last,
        }
        document_prompt = options.document_prompt_name or options.prompt_name
        query_prompt = options.query_prompt_name or options.prompt_name
        return (
            {**shared, **({"prompt_name": document_prompt} if document_prompt else {})},
            {**shared, **({"prompt_name": query_prompt} if query_prompt else {})},
        )

    # ------------------------------------------------------------------ what a task says

    @property
    def task_url(self) -> str:
        """Where batches go (the configured URL, unless the task's wire needs another route)."""
        return self.endpoint.url

    def build_body(self, texts: Sequence[str], query: bool = False, probe: bool = False) -> bytes:
        """A batch's body; ``probe``: the identity probe goes last (see cache/_identity.py)."""
        raise NotImplementedError

    def parse(self, result: HttpResult, count: int, *, arrays: bool = False) -> list[object]:
        """The ``count`` results of a 2xx answer, checked; ``arrays``: the task's array form, where it has one."""
        raise NotImplementedError

    def request_parts(self, query: bool) -> dict[str, object]:
        """What decides a result besides the text, the model, the URL and the credential (the task's request options)."""
        raise NotImplementedError

    def probe_vector(self, result: object) -> list[float]:
        """The probe's result as the floats its identity is matched on."""
        return [float(v) for v in cast("Iterable[float]", result)]

    def encode(self, result: object, pooled: bool = False) -> bytes:
        """One result as the cache stores it (``pooled``: a document's, pooled from its chunks')."""
        raise NotImplementedError

    def decode(self, blob: bytes | None, arrays: bool, pooled: bool = False) -> object:
        """A stored result, or ``None`` when there is none or it does not decode (a miss)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ batches

    @property
    def send_size(self) -> int:
        """Texts per request: ``batch_size``, less the place a cached call's probe takes."""
        return max(1, self.batch_size - self.reserve)

    @staticmethod
    def with_probe(texts: Sequence[str], probe: bool) -> Sequence[str]:
        """``texts``, with the identity probe last when the request certifies them."""
        return [*texts, PROBE_TEXT] if probe else texts

    def adopt(self, other: Self) -> None:
        """Take what ``other`` (a core of the same endpoint) learnt: ``/info``, limits, probes."""
        super().adopt(other)
        self.learned_limit = self.learned_limit or other.learned_limit

    def connection_lost(self) -> None:
        """A lost connection or a 503 may be a redeploy: hits wait for the model to be verified again."""
        for identity in self._identities.values():
            identity.invalidate()

    def certified(
        self, result: HttpResult, count: int, *, arrays: bool = False, certify: Identity | None = None
    ) -> list[object]:
        """:meth:`parse`; with ``certify``, the request carried the probe last: its result is matched and dropped.

        A mismatch moves the identity's generation, so nothing of this answer is stored.
        """
        if certify is None:
            return self.parse(result, count, arrays=arrays)
        results = self.parse(result, count + 1, arrays=arrays)
        certify.certify(self.probe_vector(results.pop()))
        return results

    def batch_flow(
        self,
        texts: Sequence[str],
        indices: Sequence[int],
        arrays: bool = False,
        splittable: bool = False,
        query: bool = False,
        started: float | None = None,
        certify: Identity | None = None,
    ) -> BatchFlow:
        """Drive one batch to its results: send, check, retry or split, as a generator of steps.

        Returns one result per input, in order. Raises the typed error of the last failure,
        carrying the attempt count and the inputs' indices. ``splittable``: the inputs are
        chunks (``document_prefix`` + text), so one the endpoint refuses whole (413) is halved at
        a word boundary until it takes the pieces, and comes back as :class:`Pieces` instead of
        raising. A 413's halves run side by side (within ``max_concurrency``) and within the
        batch's ``retry_deadline``. ``certify``: the request carries the identity probe.
        """
        started = self.clock() if started is None else started
        try:
            results: list[object] = yield from self.attempts(
                self.task_url,
                body=self.build_body(texts, query, probe=certify is not None),
                indices=indices,
                max_bytes=self.response_limit(len(texts) + (certify is not None)),
                started=started,
                read=lambda answer: self.certified(answer, len(texts), arrays=arrays, certify=certify),
            )
            return results
        except PayloadTooLargeError as err:
            if len(texts) > 1:
                self.learn_batch_limit(err, len(texts) + (certify is not None))
                # Never truncate (Elasticsearch halves every input): halve the batch instead.
                return (
                    yield from self.in_halves(
                        texts, indices, lambda t, i: self.batch_flow(t, i, arrays, splittable, query, started, certify)
                    )
                )
            self._learn_limit(err)
            pieces = split_in_two(texts[0], self.options.document_prefix) if splittable else None
            if pieces is None:
                raise self._alone_too_large(err, indices[0], splittable, query) from err.__cause__
            flows = (
                self.batch_flow([sent], indices, arrays, splittable, query, started, certify) for _, _, sent in pieces
            )
            outcomes = yield from ask(Parallel(flows, len(pieces), self.options.window))
            parts: list[tuple[int, int, object]] = []
            for (start, end, _), (result,) in zip(pieces, outcomes, strict=True):
                if isinstance(result, Pieces):
                    parts += [(start + s, start + e, v) for s, e, v in result.parts]
                else:
                    parts.append((start, end, result))
            return [Pieces(tuple(parts))]

    @staticmethod
    def _alone_too_large(err: PayloadTooLargeError, index: int, splittable: bool, query: bool) -> PayloadTooLargeError:
        err.index = index
        hint = (
            ""
            if splittable
            else "; embed_query() sends the query as it is (a query is not chunked): shorten it, or set "
            "truncate=True to let the endpoint cut it"
            if query
            else "; embed() sends texts as they are: embed_documents() and embed_chunks() split a "
            "long text to fit the model"
        )
        err.message = f"input {index} alone is too large for the endpoint: {err.message}{hint}"
        return err

    def _learn_limit(self, err: PayloadTooLargeError) -> None:
        if self.token_limit is None and (stated := _STATED_LIMIT.search(f"{err.message} {err.body}")):
            # TEI says "less than N" but checks `tokens > N`: N itself is the limit.
            self.learned_limit = int(stated.group(1))

    def probe_flow(self, query: bool) -> Flow[list[float]]:
        """The identity probe alone, with the request options of its kind: its result, as floats."""
        results = yield from self.attempts(
            self.task_url,
            body=self.build_body([PROBE_TEXT], query),
            indices=(),
            max_bytes=self.response_limit(1),
            read=lambda answer: self.parse(answer, 1),
        )
        return self.probe_vector(results[0])

    # ------------------------------------------------------------------ the model's identity, the cache's keys

    def identity(self, query: bool) -> Identity:
        """The identity of the model behind requests of this kind (queries share the documents' when sent alike)."""
        if query and self.request_parts(True) == self.request_parts(False):
            return self.identity(False)
        kind = "query" if query else "document"
        found = self._identities.get(kind)
        _, registry = self._static_parts(query)
        if found is None or found.registry_key != registry:  # /info named another model since
            found = self._identities[kind] = Identity(registry, self.clock)
        return found

    def identities(self) -> list[tuple[bool, Identity]]:
        """The identities made so far, each with whether its requests are queries."""
        return [(kind == "query", identity) for kind, identity in self._identities.items()]

    def cache_keys(self, texts: Sequence[str], query: bool) -> list[str] | None:
        """The cache key of each text as sent, or ``None`` while the model is not verified (no hits, no stores).

        The namespace holds everything besides the text that decides its result: the model's
        verified identity (the anchor its probe matched, see cache/_identity.py) and what
        ``/info`` names it; the full URL and the credential (hashed: a key another tenant's
        endpoint refuses is another namespace); the task's request options for the text's kind
        (:meth:`request_parts`) and whether it is a query.
        """
        parts = self._result_parts(query)
        return None if parts is None else keys_for(namespace_of(parts), texts)

    def _static_parts(self, query: bool) -> tuple[dict[str, object], str]:
        """What decides a result besides the text and the model's verified identity, and its identity registry key."""
        info = self.server_info or {}
        hint = repr((info.get("model_id"), info.get("model_sha")))
        if (found := self._static.get((query, hint))) is None:
            key = self.endpoint.api_key
            parts: dict[str, object] = {
                "version": 2,
                "model": {"model_id": info.get("model_id"), "model_sha": info.get("model_sha")},
                # Hashed apart (domain-separated), so no dict of the core ever holds the URL's secrets or the key.
                "url": _digest(b"url", self.endpoint.url.encode()),
                "credential": _digest(b"credential", key.get_secret_value().encode()) if key is not None else None,
                **self.request_parts(query),
                "kind": "query" if query else "document",
            }
            found = self._static[(query, hint)] = (parts, "identity-" + namespace_of(parts).hex())
        return found

    def _result_parts(self, query: bool) -> dict[str, object] | None:
        """:meth:`_static_parts` and the verified identity; ``None`` while it is not verified."""
        anchor = self.identity(query).current
        return None if anchor is None else {**self._static_parts(query)[0], "anchor": anchor}

    def document_keys(self, texts: Sequence[str], pooling: object) -> list[str] | None:
        """The cache key of each text's pooled result (``embed_documents``), or ``None`` while the model is not verified.

        Its chunks' namespace (model, request options, wire), and how they are made and pooled:
        chunking settings, token limit, the local tokenizer's fingerprint (``None``: the
        endpoint's ``/tokenize``, the model's own), prefix, ``pooling``.
        """
        chunks = self._result_parts(False)
        if chunks is None:
            return None
        parts = {
            "chunks": chunks,  # what decides each chunk's result: model, options, wire
            "chunking": self.endpoint.chunking_settings.model_dump(mode="json"),
            "keep_trailing_text": self.options.keep_trailing_text,
            "token_limit": self.token_limit,
            "local_tokenizer": self.counter.fingerprint if self.counter is not None else None,
            "document_prefix": self.options.document_prefix,
            "pooling": pooling,
            "kind": "document vector",
        }
        return keys_for(namespace_of(parts), texts)

    # ------------------------------------------------------------------ token limits

    @property
    def token_limit(self) -> int | None:
        """The model's token limit when chunks must be fitted to it: configured, else from ``/info``."""
        if not self.options.fit_chunks_to_model:
            return None
        configured = self.endpoint.service_settings.max_input_tokens
        if configured is not None:
            return configured
        return self.discovered_input_length or self.learned_limit

    def fit_flow(self, items: Sequence[str], chunks: list[list[Chunk]]) -> Flow[tuple[list[list[Chunk]], bool]]:
        """``chunks`` fitted to the model's token limit, counted by the local tokenizer or ``/tokenize``.

        With no limit known, or no way to count, the chunks stay as they are: the chunked paths'
        413 splitting fits what the endpoint refuses. Also returns False when a limit is known
        but the chunks could not be counted (``/tokenize`` missing or failing): not what a sound
        endpoint's call makes, so not cached.
        """
        limit = self.token_limit
        if limit is None:
            return chunks, True
        if not (self.counter is not None or self.probes.due("tokenize")):
            self._cut_by_server(limit)
            return chunks, False
        try:
            fitted: list[list[Chunk]] = yield from fit_texts_flow(
                items, chunks, limit, self.options.document_prefix, self.count_flow
            )
        except NoTokenizeRoute:  # the endpoint has no /tokenize
            self._cut_by_server(limit)
            return chunks, False
        return fitted, True

    def count_flow(self, texts: list[str]) -> Flow[list[Tokens]]:
        """Tokens of ``texts``: the local tokenizer's, else TEI's ``/tokenize`` in parallel groups."""
        if self.counter is not None:
            return self.counter(texts)
        groups = tokenize_groups(texts, self.batch_size)
        flows = (self.tokenize_flow([texts[i] for i in group]) for group in groups)
        results = yield from ask(Parallel(flows, len(groups), self.options.window))
        return [tokens for group in results for tokens in group]

    def _cut_by_server(self, limit: int) -> None:
        """One WARNING when chunks cannot be fitted and the endpoint cuts what is too long (TEI 1.9's auto_truncate).

        Without auto-truncation a chunk over the limit is refused and split; with it, the server
        cuts the chunk silently, and only this says so.
        """
        if (self.server_info or {}).get("auto_truncate") is True and not self._warned_truncation:
            self._warned_truncation = True
            logger.warning(
                "hf-infer: %s truncates inputs over %d tokens (auto_truncate), and chunks cannot be counted here "
                "(no /tokenize answer, no tokenizer=): a chunk over the limit may be cut by the server, its end not "
                "embedded; pass tokenizer= (the model's tokenizer.json) to fit chunks exactly",
                self.probes.where,
                limit,
            )

    @property
    def tokenize_url(self) -> str:
        """TEI's ``/tokenize`` next to the task's URL."""
        return self.info_url.removesuffix("/info") + "/tokenize"

    def tokenize_flow(self, texts: Sequence[str]) -> Flow[list[Tokens]]:
        """Tokenize ``texts`` (one group) with TEI's ``/tokenize``: special tokens counted, the others located.

        An optional probe: one attempt. A failure raises :class:`NoTokenizeRoute`, which fitting
        takes as "no counting" (the chunked paths' 413 splitting fits instead); a 404 or 405 is
        remembered for good, any other failure for a few minutes, with one WARNING (see ``protocol/_probes.py``).
        """
        body = tokenize_body(texts)
        limit = max(self.response_limit(len(texts)), tokenize_answer_limit(len(body)))
        try:
            reply = yield from self.attempts(self.tokenize_url, body=body, max_bytes=limit, probe=True, read=answer)
            return tei_tokens(texts, reply.status_code, reply.body, self._redact)
        except (ClientClosedError, RateLimitBackendError):
            raise  # not the endpoint's answer: the call would meet it on its next request
        except HFInferError as err:
            missing = isinstance(err, EndpointError) and err.status_code in (404, 405)
            self.probes.skip("tokenize", err, for_good=missing)
            raise NoTokenizeRoute(
                f"/tokenize failed ({err.message})", status_code=getattr(err, "status_code", 0)
            ) from err
