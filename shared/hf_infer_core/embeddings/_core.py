"""The embeddings' I/O-free core: batches, request bodies, vectors parsed, 413 halving, token fitting.

:class:`ClientCore` is the embedding task's :class:`~..protocol._request.RequestCore`. A batch is
driven by :meth:`ClientCore.batch_flow`, a generator in the manner of httpx's ``auth_flow``: it
runs the one retry loop (:meth:`~..protocol._request.RequestCore.attempts`), parses the vectors
and halves the batch on a 413, so the two clients are short loops that only perform its steps.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

from ..base._errors import ClientClosedError, EndpointError, HFInferError, PayloadTooLargeError, RateLimitBackendError
from ..cache._identity import PROBE_TEXT, Identity
from ..cache._keys import keys_for, namespace_of
from ..config import InferenceEndpoint
from ..config._options import ClientOptions
from ..protocol._plan import chunk_all, plan, split_in_two, tokenize_groups
from ..protocol._request import RequestCore, answer
from ..protocol._steps import Flow, HttpResult, Parallel, Send, Sleep, Step, ask
from ..protocol._wire import tei_tokens, tokenize_answer_limit, tokenize_body
from ..text._chunking import Chunk
from ..text._fit import Counter, Tokens, fit_texts_flow
from ..text._pooling import Pieces
from ._wire import base64_body, base64_vectors, json_body, json_vectors

__all__ = [
    "ClientCore",
    "HttpResult",
    "NoTokenizeRoute",
    "Send",
    "Sleep",
]


logger = logging.getLogger("hf_infer_core")


class NoTokenizeRoute(EndpointError):
    """The endpoint has no ``/tokenize`` (404 or 405): chunks are fitted by 413 splitting instead."""


# A batch's vectors, in order; an input a 413 split comes back as its Pieces.
BatchFlow = Flow[list[Any]]
# The limit a TEI server states in its 413: "`inputs` must have less than 256 tokens. Given: 300".
_STATED_LIMIT = re.compile(r"less than (\d{1,9}) tokens")


def _digest(domain: bytes, value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=16, person=domain.ljust(16, b"\0")[:16]).hexdigest()


class ClientCore(RequestCore):
    """The embedding task's core: everything both embedding clients share, and no I/O."""

    options: ClientOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: ClientOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(endpoint, options, clock=clock, rng=rng)
        shared: dict[str, Any] = {
            k: v
            for k, v in (
                ("normalize", options.normalize),
                ("truncate", options.truncate),
                ("truncation_direction", options.truncation_direction),
            )
            if v is not None
        }
        # dimensions: TEI truncates (and renormalises) Matryoshka vectors to it (from 1.8).
        self.asked_dimensions = endpoint.service_settings.dimensions
        if self.asked_dimensions is not None:
            shared["dimensions"] = self.asked_dimensions
        # TEI's prompts are per kind (e5's "query: " / "passage: "): each kind its own prompt_name.
        document_prompt = options.document_prompt_name or options.prompt_name
        query_prompt = options.query_prompt_name or options.prompt_name
        self.extras: dict[str, Any] = {**shared, **({"prompt_name": document_prompt} if document_prompt else {})}
        self.query_extras: dict[str, Any] = {**shared, **({"prompt_name": query_prompt} if query_prompt else {})}
        self.dimensions: int | None = endpoint.service_settings.dimensions
        # The token limit a 413 stated, when neither the configuration nor /info gave one.
        self.learned_limit: int | None = None
        # With a cache, every batch whose vectors are stored carries the probe: one place less.
        self.reserve = 0
        self._warned_truncation = False
        # The model behind each kind of request (documents, queries): see cache/_identity.py.
        self._identities: dict[str, Identity] = {}
        # The static namespace and its identity registry key, per kind and /info's model hint:
        # everything else in it is fixed for the core's life, and every cached batch asks for it.
        self._static: dict[tuple[bool, str], tuple[dict[str, object], str]] = {}

    # ------------------------------------------------------------------ inputs and plans

    @property
    def send_size(self) -> int:
        """Texts per request: ``batch_size``, less the place a cached call's probe takes."""
        return max(1, self.batch_size - self.reserve)

    def plan(self, texts: Sequence[str]) -> list[list[int]]:
        """The batches of ``texts`` at this endpoint's (possibly discovered) ``batch_size``: see :func:`plan`."""
        return plan(texts, self.send_size)

    def chunk_all(self, texts: Sequence[str]) -> list[list[Chunk]]:
        """Chunk every text with the endpoint's settings: see :func:`chunk_all`."""
        return chunk_all(texts, self.endpoint.chunking_settings, self.options.keep_trailing_text)

    # ------------------------------------------------------------------ requests

    def build_body(self, texts: Sequence[str], query: bool = False, probe: bool = False) -> bytes:
        """A batch's body: ``{"inputs": [...]}`` with the request options of its kind, or TEI's base64 request.

        ``query``: the texts are queries (``query_prompt_name``). ``probe``: the identity probe
        goes last (its vector certifies the others', see cache/_identity.py).
        """
        if probe:
            texts = [*texts, PROBE_TEXT]
        if self.options.wire_format == "base64":
            return base64_body(texts, self.endpoint.inference_id, self.asked_dimensions)
        return json_body(texts, self.query_extras if query else self.extras)

    @property
    def embed_url(self) -> str:
        """Where batches go: the configured URL, or TEI's ``/v1/embeddings`` beside it for base64."""
        if self.options.wire_format == "base64":
            return self.info_url.removesuffix("/info") + "/v1/embeddings"
        return self.endpoint.url

    def adopt(self, other: Self) -> None:
        """Take what ``other`` (a core of the same endpoint) learnt: ``/info``, the vector size, limits, probes."""
        super().adopt(other)
        self.dimensions = self.dimensions or other.dimensions
        self.learned_limit = self.learned_limit or other.learned_limit

    def connection_lost(self) -> None:
        """A lost connection or a 503 may be a redeploy: hits wait for the model to be verified again."""
        for identity in self._identities.values():
            identity.invalidate()

    # ------------------------------------------------------------------ responses

    def parse(
        self, result: HttpResult, count: int, *, arrays: bool = False, certify: Identity | None = None
    ) -> list[list[float]]:
        """Return the ``count`` vectors of a response, or raise the error class it maps to.

        ``arrays``: with ``wire_format="base64"``, each vector is a float32 numpy row over the
        received bytes instead of a list of Python floats (for ``as_numpy=True``). The vector
        size is learnt from the first answer, as Elasticsearch learns it. ``certify``: the
        request carried the identity probe last; its vector is checked against the identity
        (a mismatch moves its generation, so nothing of this answer is stored) and dropped.
        """
        if certify is not None:
            vectors = self.parse(result, count + 1, arrays=arrays)
            certify.certify([float(v) for v in vectors.pop()])
            return vectors
        if not 200 <= result.status_code < 300:
            raise self._status_error(result)
        if self.options.wire_format == "base64":
            vectors, dims = base64_vectors(
                result.status_code, result.body, count, self.dimensions, arrays, self._redact, self.asked_dimensions
            )
        else:
            vectors, dims = json_vectors(
                result.status_code, result.body, count, self.dimensions, self._redact, self.asked_dimensions
            )
        self.dimensions = dims
        return vectors

    def identity(self, query: bool) -> Identity:
        """The identity of the model behind requests of this kind (queries share the documents' when sent alike)."""
        extras = self.query_extras if query else self.extras
        if query and extras == self.extras:
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

        The namespace holds everything besides the text that decides its vector: the model's
        verified identity (the anchor its probe vector matched, see cache/_identity.py) and what
        ``/info`` names it; the full URL and the credential (hashed: a key another tenant's
        endpoint refuses is another namespace); TEI's request options and the prompt of the
        text's kind, the configured vector size, the wire format (JSON and base64 vectors differ in
        their last bits) and whether it is a query.
        """
        parts = self._vector_parts(query)
        return None if parts is None else keys_for(namespace_of(parts), texts)

    def _static_parts(self, query: bool) -> tuple[dict[str, object], str]:
        """What decides a vector besides the text and the model's verified identity, and its identity registry key."""
        info = self.server_info or {}
        hint = repr((info.get("model_id"), info.get("model_sha")))
        if (found := self._static.get((query, hint))) is None:
            parts = self._namespace(query, info)
            found = self._static[(query, hint)] = (parts, "identity-" + namespace_of(parts).hex())
        return found

    def _namespace(self, query: bool, info: dict[str, Any]) -> dict[str, object]:
        key = self.endpoint.api_key
        return {
            "version": 2,
            "model": {"model_id": info.get("model_id"), "model_sha": info.get("model_sha")},
            # Hashed apart (domain-separated), so no dict of the core ever holds the URL's secrets or the key.
            "url": _digest(b"url", self.endpoint.url.encode()),
            "credential": _digest(b"credential", key.get_secret_value().encode()) if key is not None else None,
            "request": self.query_extras if query else self.extras,
            "dimensions": self.endpoint.service_settings.dimensions,
            "wire_format": self.options.wire_format,
            "kind": "query" if query else "document",
        }

    def _vector_parts(self, query: bool) -> dict[str, object] | None:
        """:meth:`_static_parts` and the verified identity; ``None`` while it is not verified."""
        anchor = self.identity(query).current
        return None if anchor is None else {**self._static_parts(query)[0], "anchor": anchor}

    def document_keys(self, texts: Sequence[str], local_tokenizer: str | None) -> list[str] | None:
        """The cache key of each text's pooled vector (``embed_documents``), or ``None`` while the model is not verified.

        Its chunks' namespace (model, request options, wire), and how they are made and pooled:
        chunking settings, token limit, the local tokenizer's fingerprint (``None``: the
        endpoint's ``/tokenize``, the model's own), prefix, pooling.
        """
        chunks = self._vector_parts(False)
        if chunks is None:
            return None
        parts = {
            "chunks": chunks,  # what decides each chunk's vector: model, options, wire
            "chunking": self.endpoint.chunking_settings.model_dump(mode="json"),
            "keep_trailing_text": self.options.keep_trailing_text,
            "token_limit": self.token_limit,
            "local_tokenizer": local_tokenizer,
            "document_prefix": self.options.document_prefix,
            "pooling": self.options.pooling,
            "kind": "document vector",
        }
        return keys_for(namespace_of(parts), texts)

    def _status_error(self, result: HttpResult) -> EndpointError:
        error = super()._status_error(result)
        if (
            self.asked_dimensions is not None
            and 400 <= error.status_code < 500
            and error.status_code not in (401, 403, 404, 408, 413, 429)
            and "dimension" in f"{error.message} {error.body}".lower()
        ):
            # An endpoint that refuses TEI's `dimensions` (not TEI, an older TEI, a model not
            # trained for it): the option is what to change, so the message names it.
            error.message += (
                f"; the request carried dimensions={self.asked_dimensions} (service_settings.dimensions, sent as "
                "TEI's `dimensions`): leave it unset for this endpoint, or set it to a size the model allows"
            )
        return error

    def error_route(self) -> str | None:
        """The base64 route, which an endpoint that is not TEI lacks: its 404 names it."""
        return urlsplit(self.embed_url).path if self.options.wire_format == "base64" else None

    # ------------------------------------------------------------------ the batch flow

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
        """Drive one batch to its vectors: send, check, retry or split, as a generator of steps.

        Returns (as ``StopIteration.value``) one vector per input, in order. Raises the typed
        error of the last failure, carrying the attempt count and the inputs' indices.
        ``splittable``: the inputs are chunks (``document_prefix`` + text), so one the endpoint
        refuses whole (413) is halved at a word boundary until it takes the pieces, and comes
        back as :class:`Pieces` (see :func:`expand_pieces`) instead of raising. A 413's halves
        run side by side (within ``max_concurrency``) and within the batch's ``retry_deadline``.
        ``certify``: the request carries the identity probe (its vectors are to be cached).
        """
        started = self.clock() if started is None else started
        try:
            vectors: list[Any] = yield from self.attempts(
                self.embed_url,
                body=self.build_body(texts, query, probe=certify is not None),
                indices=indices,
                max_bytes=self.response_limit(len(texts) + (certify is not None)),
                started=started,
                read=lambda answer: self.parse(answer, len(texts), arrays=arrays, certify=certify),
            )
            return vectors
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
                err.index = indices[0]
                hint = (
                    ""
                    if splittable
                    else "; embed_query() sends the query as it is (a query is not chunked): shorten it, or set "
                    "truncate=True to let the endpoint cut it"
                    if query
                    else "; embed() sends texts as they are: embed_documents() and embed_chunks() split a "
                    "long text to fit the model"
                )
                err.message = f"input {indices[0]} alone is too large for the endpoint: {err.message}{hint}"
                raise err from err.__cause__
            flows = (
                self.batch_flow([sent], indices, arrays, splittable, query, started, certify) for _, _, sent in pieces
            )
            results = yield from ask(Parallel(flows, len(pieces), self.options.window))
            parts: list[tuple[int, int, Any]] = []
            for (start, end, _), (vector,) in zip(pieces, results, strict=True):
                if isinstance(vector, Pieces):
                    parts += [(start + s, start + e, v) for s, e, v in vector.parts]
                else:
                    parts.append((start, end, vector))
            return [Pieces(tuple(parts))]

    def _learn_limit(self, err: PayloadTooLargeError) -> None:
        if self.token_limit is None and (stated := _STATED_LIMIT.search(f"{err.message} {err.body}")):
            # TEI says "less than N" but checks `tokens > N`: N itself is the limit.
            self.learned_limit = int(stated.group(1))

    def probe_flow(self, identity: Identity, query: bool) -> Flow[list[float]]:
        """The identity probe alone, with the request options of its kind: its vector, as floats."""
        vectors = yield from self.attempts(
            self.embed_url,
            body=self.build_body([PROBE_TEXT], query),
            indices=(),
            max_bytes=self.response_limit(1),
            read=lambda answer: self.parse(answer, 1),
        )
        return [float(v) for v in vectors[0]]

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

    def fit_flow(
        self, items: Sequence[str], chunks: list[list[Chunk]], local: bool, count: Counter[Step, object]
    ) -> Flow[tuple[list[list[Chunk]], bool]]:
        """``chunks`` fitted to the model's token limit, texts counted by ``count``'s sub-flows.

        ``local``: ``count`` uses a local tokenizer (else TEI's ``/tokenize``). With no limit
        known, or no way to count, the chunks stay as they are: the chunked paths' 413
        splitting fits what the endpoint refuses. Also returns False when a limit is known but
        the chunks could not be counted (``/tokenize`` missing or failing): not what a sound
        endpoint's call makes, so not cached.
        """
        limit = self.token_limit
        if limit is None:
            return chunks, True
        if not (local or self.probes.due("tokenize")):
            self._cut_by_server(limit)
            return chunks, False
        try:
            fitted: list[list[Chunk]] = yield from fit_texts_flow(
                items, chunks, limit, self.options.document_prefix, count
            )
        except NoTokenizeRoute:  # the endpoint has no /tokenize
            self._cut_by_server(limit)
            return chunks, False
        return fitted, True

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
        """TEI's ``/tokenize`` next to the embedding URL."""
        return self.info_url.removesuffix("/info") + "/tokenize"

    def tokenize_groups(self, texts: Sequence[str]) -> list[range]:
        """The ``/tokenize`` requests for ``texts``: see :func:`tokenize_groups`."""
        return tokenize_groups(texts, self.batch_size)

    def tokenize_flow(self, texts: Sequence[str]) -> Flow[list[Tokens]]:
        """Tokenize ``texts`` (one group) with TEI's ``/tokenize``: special tokens counted, the others located.

        An optional probe: one attempt. A failure raises :class:`NoTokenizeRoute`, which fitting
        takes as "no counting" (the chunked paths' 413 splitting fits instead); a 404 or 405 is
        remembered for good, any other failure for a few minutes, with one WARNING (see :mod:`._probes`).
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
