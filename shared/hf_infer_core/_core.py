"""The I/O-free core of the endpoint clients: batching, requests, responses, retries, pooling.

:class:`ClientCore` holds everything the sync and async clients share and does no I/O. A batch
is driven by :meth:`ClientCore.batch_flow`, a generator in the manner of httpx's ``auth_flow``:
it yields :class:`Send` (take a rate-limit token, send this request) and :class:`Sleep` (wait
this long) steps and receives the HTTP outcome back, so retries, 413 splitting and response
checks are written once and the two clients are short loops that only perform the steps.
:meth:`ClientCore.info_flow` drives TEI's ``GET /info`` the same way, so discovery is rate
limited and retried like every request.
"""

from __future__ import annotations

import array
import base64
import binascii
import json
import logging
import math
import random
import re
import sys
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from itertools import accumulate
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import _errors
from ._body import ACCEPT_ENCODING, default_response_limit
from ._chunking import Chunk, chunk_text, count_words, word_ends_within
from ._config import InferenceEndpoint
from ._errors import (
    AuthenticationError,
    EndpointError,
    HFInferError,
    InvalidInputError,
    InvalidRequestError,
    ModelLoadingError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    body_excerpt,
)
from ._fit import Tokens
from ._options import ClientOptions, Pooling
from ._retry import RetryPolicy, decide, is_transient
from ._secret import redact

__all__ = [
    "TOKENIZE_BYTES",
    "ChunkEmbedding",
    "ClientCore",
    "HttpResult",
    "NoTokenizeRoute",
    "Pieces",
    "Send",
    "Sleep",
    "expand_pieces",
    "tokenize_answer_limit",
]

# Text per /tokenize request. TEI writes at most one token per byte of text and about 90 bytes of
# JSON per token, so an answer is bounded by what was sent (tokenize_answer_limit): with this
# much text a request's answer is at most ~24 MiB (prose gets about 4 MiB).
TOKENIZE_BYTES = 256 * 1024


def tokenize_answer_limit(sent: int) -> int:
    """The largest ``/tokenize`` answer accepted for a request body of ``sent`` bytes."""
    return 96 * sent + 64 * 1024


logger = logging.getLogger("hf_infer_core")


@dataclass(frozen=True, slots=True)
class ChunkEmbedding:
    """One chunk of an input text with its vector, as Elasticsearch returns chunked inference."""

    text: str
    start: int
    end: int
    embedding: list[float]
    _chunk: Chunk | None = field(default=None, repr=False, compare=False)

    @property
    def word_count(self) -> int:
        """ICU words in the chunk (as Elasticsearch counts them)."""
        return self._chunk.word_count if self._chunk is not None else count_words(self.text)

    @property
    def source(self) -> tuple[int, int]:
        """Offsets of the Elasticsearch chunk this one is (or, when split to fit the model, came from)."""
        if self._chunk is not None and self._chunk.source is not None:
            return self._chunk.source
        return (self.start, self.end)

    def to_dict(self) -> dict[str, Any]:
        """Return the chunk as Elasticsearch shows it: text, offsets and embeddings."""
        return {"text": self.text, "offset": {"start": self.start, "end": self.end}, "embeddings": self.embedding}


@dataclass(frozen=True, slots=True)
class Send:
    """Step: take a rate-limit token and send ``method url`` with ``body``.

    ``indices`` are the batch's positions in the caller's list (empty for discovery).
    """

    body: bytes
    indices: tuple[int, ...]
    attempt: int
    url: str
    method: str = "POST"
    # Seconds this attempt may take in all (connect, send, wait, read the whole body): the
    # ``timeout`` option, cut to what is left of ``retry_deadline``.
    timeout: float = 30.0
    # The largest body this request's answer may have, decompressed (max_response_bytes).
    max_bytes: int = 1 << 20


@dataclass(frozen=True, slots=True)
class Sleep:
    """Step: wait ``seconds`` before the next attempt."""

    seconds: float


@dataclass(frozen=True, slots=True)
class HttpResult:
    """What a client hands back for a :class:`Send`: the status, the retry hint and the raw body."""

    status_code: int
    body: bytes
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Pieces:
    """What one chunked input became when the endpoint refused it whole (413) and it was split.

    ``parts`` are ``(start, end, vector)``, offsets into the input's text (without the prefix).
    """

    parts: tuple[tuple[int, int, Any], ...]


class NoTokenizeRoute(EndpointError):
    """The endpoint has no ``/tokenize`` (404 or 405): chunks are fitted by 413 splitting instead."""


BatchFlow = Generator[Send | Sleep, "HttpResult | HFInferError | None", list[Any]]
# The limit a TEI server states in its 413: "`inputs` must have less than 256 tokens. Given: 300".
_STATED_LIMIT = re.compile(r"less than (\d{1,9}) tokens")


class ClientCore:
    """Everything both clients share: options, request building, response parsing, retry flow."""

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: ClientOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
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
        )
        shared = {
            k: v
            for k, v in (
                ("normalize", options.normalize),
                ("truncate", options.truncate),
                ("truncation_direction", options.truncation_direction),
            )
            if v is not None
        }
        # TEI's prompts are per kind (e5's "query: " / "passage: "): each kind its own prompt_name.
        document_prompt = options.document_prompt_name or options.prompt_name
        query_prompt = options.query_prompt_name or options.prompt_name
        self.extras: dict[str, Any] = {**shared, **({"prompt_name": document_prompt} if document_prompt else {})}
        self.query_extras: dict[str, Any] = {**shared, **({"prompt_name": query_prompt} if query_prompt else {})}
        self.clock = clock
        self.rng = rng or random.Random()
        self.dimensions: int | None = endpoint.service_settings.dimensions
        self.server_info: dict[str, Any] | None = None
        # The token limit a 413 stated, when neither the configuration nor /info gave one.
        self.learned_limit: int | None = None
        # False once the endpoint answered /tokenize with 404/405: no fitting by counting then.
        self.can_tokenize = True
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
    def pooling(self) -> Pooling:
        """How ``embed_documents`` combines a text's chunk vectors."""
        return self.options.pooling

    # ------------------------------------------------------------------ inputs and plans

    @staticmethod
    def check_texts(texts: Sequence[str], first: int = 0) -> list[str]:
        """Return ``texts`` as a list after checking every item is a valid ``str``.

        ``first``: the position of ``texts[0]`` in the caller's input (a streamed text), so an
        error names the caller's index.

        Raises:
            TypeError: ``texts`` is a single string, or an item is not a ``str`` (naming its index).
            InvalidInputError: an item holds a lone surrogate, which cannot be sent as UTF-8.
        """
        if isinstance(texts, str | bytes):
            raise TypeError(f"texts must be a list of str, not a single {type(texts).__name__}")
        try:
            items = list(texts)
        except TypeError:
            raise TypeError(f"texts must be a list of str, got {type(texts).__name__}") from None
        for i, text in enumerate(items, first):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
        if not "".join(items).isascii():
            for i, text in enumerate(items, first):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as err:
                    raise InvalidInputError(
                        f"texts[{i}] holds a lone surrogate at position {err.start}; it is not valid Unicode "
                        "and cannot be sent as JSON (decode the source with errors='replace')",
                        index=i,
                    ) from None
        return items

    def plan(self, texts: Sequence[str]) -> list[list[int]]:
        """Group the inputs' indices into batches of at most ``batch_size``, similar lengths together.

        Transformer servers pad every input of a batch to the longest one, so batching texts of
        similar length cuts the server's work (the model behind ``make demo`` runs ~1.6x faster on
        mixed-length texts). Only the grouping changes: each batch lists its indices in ascending
        order, and results are always returned in input order.
        """
        size = self.batch_size
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        return [sorted(order[start : start + size]) for start in range(0, len(order), size)]

    def assemble(
        self, count: int, batches: Sequence[Sequence[int]], results: Sequence[list[list[float]]]
    ) -> list[list[float]]:
        """Put each batch's vectors back at their inputs' positions; every position must be filled once."""
        out: list[list[float] | None] = [None] * count
        for indices, vectors in zip(batches, results, strict=True):
            for index, vector in zip(indices, vectors, strict=True):
                out[index] = vector
        if any(v is None for v in out):  # pragma: no cover - a bug, never a server's doing
            raise RuntimeError("internal error: an input got no vector")
        return out  # type: ignore[return-value]

    def chunk_all(self, texts: Sequence[str]) -> list[list[Chunk]]:
        """Chunk every text with the endpoint's settings; an empty text is one empty chunk (sent as is)."""
        settings = self.endpoint.chunking_settings
        out: list[list[Chunk]] = []
        for text in texts:
            chunks = chunk_text(text, settings, keep_trailing_text=self.options.keep_trailing_text)
            out.append(chunks or [Chunk(0, 0, "", 0)])
        return out

    # ------------------------------------------------------------------ requests

    def build_body(self, texts: Sequence[str], query: bool = False) -> bytes:
        """Return the JSON body ``{"inputs": [...]}`` plus the request extras that are set.

        ``query``: the texts are queries (``query_prompt_name``). With ``wire_format="base64"``:
        TEI's OpenAI-shaped request, asking for base64 vectors.
        """
        payload: dict[str, Any]
        if self.options.wire_format == "base64":
            payload = {"input": list(texts), "encoding_format": "base64", "model": self.endpoint.inference_id}
        else:
            payload = {"inputs": list(texts), **(self.query_extras if query else self.extras)}
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @property
    def embed_url(self) -> str:
        """Where batches go: the configured URL, or TEI's ``/v1/embeddings`` beside it for base64."""
        if self.options.wire_format == "base64":
            return self.info_url.removesuffix("/info") + "/v1/embeddings"
        return self.endpoint.url

    @property
    def info_url(self) -> str:
        """TEI's ``/info`` next to the embedding URL (``.../embed`` or the server root)."""
        parts = urlsplit(self.endpoint.url)
        path = parts.path.rstrip("/")
        if path.endswith("/embed"):
            path = path[: -len("/embed")]
        return urlunsplit((parts.scheme, parts.netloc, path + "/info", "", ""))

    def apply_info(self, body: bytes) -> None:
        """Record TEI's ``/info`` answer and cap ``batch_size`` at its ``max_client_batch_size``."""
        try:
            info = _plain_loads(body)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(info, dict):
            return
        self.server_info = {
            k: info.get(k) for k in ("model_id", "max_input_length", "max_client_batch_size") if k in info
        }
        cap = info.get("max_client_batch_size")
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            self.batch_size = min(self.batch_size, cap)

    # ------------------------------------------------------------------ responses

    def parse(self, result: HttpResult, count: int, *, arrays: bool = False) -> list[list[float]]:
        """Return the ``count`` vectors of a response, or raise the error class it maps to.

        ``arrays``: with ``wire_format="base64"``, each vector is a float32 numpy row over the
        received bytes instead of a list of Python floats (for ``as_numpy=True``).
        """
        if 200 <= result.status_code < 300:
            if self.options.wire_format == "base64":
                return self._parse_base64(result, count, arrays)
            return self._parse_vectors(result, count)
        raise self._status_error(result)

    def _parse_vectors(self, result: HttpResult, count: int) -> list[list[float]]:
        try:
            data = _loads(result.body)
        except (ValueError, UnicodeDecodeError) as err:
            kind = "HTML" if result.body.lstrip()[:1] == b"<" else "not JSON (cut off or plain text)"
            raise ResponseFormatError(
                f"the endpoint answered {result.status_code} but the body is {kind}: {err}; "
                f"body: {body_excerpt(self._redact(result.body))!r}",
                transient=True,
            ) from None
        if isinstance(data, dict) and "embeddings" in data:
            data = data["embeddings"]
        if not isinstance(data, list):
            raise ResponseFormatError(
                f'expected a JSON array of vectors (or {{"embeddings": [...]}}), got a JSON {type(data).__name__}'
            )
        if len(data) != count:
            raise ResponseFormatError(f"sent {count} inputs but received {len(data)} vectors")
        # Checking 400k numbers one by one in Python costs as much as parsing them, so a proof
        # is made from the bytes instead: with no string in the body, each number token holds at
        # most one ".", so exactly one "." per vector value means every value is written as a
        # decimal and orjson/json made it a float (an integer, true, false or null has no ".").
        # One sum() per vector then proves the values numeric and finite (NaN and infinities
        # propagate). Bodies failing the proof take the exact element-by-element path, which
        # also turns JSON integers into floats.
        values = sum(len(v) for v in data if isinstance(v, list))
        proven = b'"' not in result.body and result.body.count(b".") == values
        dims = self.dimensions
        for i, vector in enumerate(data):
            if not isinstance(vector, list) or not vector:
                raise ResponseFormatError(f"vector {i} of the batch is not a non-empty array of numbers")
            if not (proven and _finite_float_sum(vector)):
                data[i] = vector = _exact_floats(vector, i)
            if dims is None:
                dims = len(vector)
            elif len(vector) != dims:
                raise ResponseFormatError(
                    f"vector {i} of the batch has {len(vector)} dimensions, expected {dims} (ragged vectors)"
                )
        if self.dimensions is None:
            # Elasticsearch, too, takes the dimensions from the first embedding returned.
            self.dimensions = dims
        return data

    def _redact(self, body: bytes) -> str:
        """The body as text, with the key and anything shaped like a token redacted (servers echo headers)."""
        key = self.endpoint.api_key
        return redact(body.decode("utf-8", "replace"), [key.get_secret_value() if key is not None else None])

    def _parse_base64(self, result: HttpResult, count: int, arrays: bool = False) -> list[list[float]]:
        """TEI's OpenAI answer with ``encoding_format: base64``: little-endian float32 bytes per vector."""
        try:
            data = _loads(result.body)
            items = data["data"]
            if any(item["index"] != i for i, item in enumerate(items)):
                items = sorted(items, key=lambda item: item["index"])
                if [item["index"] for item in items] != list(range(len(items))):
                    raise ValueError("the vectors' indices are not 0..n-1, each once (a duplicate or a gap)")
            encoded: list[str] = [item["embedding"] for item in items]
            if not all(isinstance(e, str) for e in encoded):
                raise TypeError("an embedding is not a string")
            sizes = [len(e) // 4 * 3 - e.count("=", -2) for e in encoded]
            if len({len(e) for e in encoded}) == 1 and len(encoded[0]) % 4 == 0 and encoded[0][-1:] != "=":
                # Equal unpadded pieces (any dimension count divisible by 3) decode as one string:
                # one C call per body instead of one per vector.
                raw = _b64decode("".join(encoded))
            else:
                raw = b"".join(_b64decode(e) for e in encoded)
            if len(raw) != sum(sizes):  # pragma: no cover - strict decoding of whole pieces ensures it
                raise ValueError("the decoded bytes do not add up to the pieces")
        except (ValueError, UnicodeDecodeError, TypeError, KeyError, binascii.Error) as err:
            raise ResponseFormatError(
                f"the endpoint answered {result.status_code} but not with base64 vectors in OpenAI's shape "
                f"({type(err).__name__}); body: {body_excerpt(self._redact(result.body))!r}",
                transient=result.body.lstrip()[:1] != b"{",
            ) from None
        if len(sizes) != count:
            raise ResponseFormatError(f"sent {count} inputs but received {len(sizes)} vectors")
        dims = self.dimensions
        for i, size in enumerate(sizes):
            if not size or size % 4:
                raise ResponseFormatError(f"vector {i} of the batch is {size} bytes, not whole float32 values")
            if dims is None:
                dims = size // 4
            elif size != dims * 4:
                raise ResponseFormatError(
                    f"vector {i} of the batch has {size // 4} dimensions, expected {dims} (ragged vectors)"
                )
        if dims is None:  # pragma: no cover - a batch has at least one input, so one vector was checked
            raise ResponseFormatError("the batch has no vectors")
        vectors = _float32_rows(raw, count, dims, arrays)
        if self.dimensions is None:
            self.dimensions = dims
        return vectors

    def _status_error(self, result: HttpResult) -> EndpointError:
        text = self._redact(result.body)
        message, error_type, estimated = _error_fields(text)
        code = result.status_code
        kind = (error_type or "").lower()
        where = f"the hugging_face endpoint [{self.endpoint.inference_id}] answered status [{code}]"
        detail = f"{where}. Error message: [{message or body_excerpt(text)}]"
        kwargs: dict[str, Any] = {"status_code": code, "body": body_excerpt(text), "error_type": error_type}
        if code in (401, 403):
            hint = "check api_key (or the HF_TOKEN environment variable it defaults to): the endpoint " + (
                "refused it" if code == 403 else "did not accept it, or needs one and none was sent"
            )
            said = message or body_excerpt(text)
            return AuthenticationError(f"{where}: {hint}" + (f". Error message: [{said}]" if said else ""), **kwargs)
        if code in (404, 405) and self.options.wire_format == "base64":
            return InvalidRequestError(
                f"wire_format='base64' needs TEI's POST /v1/embeddings beside the configured URL, and "
                f"{urlsplit(self.embed_url).path} answered {code}: use wire_format='json' with this endpoint",
                **kwargs,
            )
        if code == 413:
            return PayloadTooLargeError(detail, **kwargs)
        if code == 429 or kind == "overloaded":
            return RateLimitError(detail, retry_after=_retry_after_seconds(result.retry_after), **kwargs)
        if code == 503 and (estimated is not None or "loading" in (message or "").lower()):
            return ModelLoadingError(detail, estimated_time=estimated, **kwargs)
        if code >= 500 or code == 424 or kind in ("backend", "unhealthy"):
            return ServerError(detail, **kwargs)
        if code in (400, 422) or kind in ("validation", "tokenizer", "empty"):
            return InvalidRequestError(detail, **kwargs)
        return EndpointError(detail, **kwargs)

    # ------------------------------------------------------------------ the batch flow

    def batch_flow(
        self,
        texts: Sequence[str],
        indices: Sequence[int],
        arrays: bool = False,
        splittable: bool = False,
        query: bool = False,
    ) -> BatchFlow:
        """Drive one batch to its vectors: send, check, retry or split, as a generator of steps.

        Returns (as ``StopIteration.value``) one vector per input, in order. Raises the typed
        error of the last failure, carrying the attempt count and the inputs' indices.
        ``splittable``: the inputs are chunks (``document_prefix`` + text), so one the endpoint
        refuses whole (413) is halved at a word boundary until it takes the pieces, and comes
        back as :class:`Pieces` (see :func:`expand_pieces`) instead of raising.
        """
        started = self.clock()
        attempt = 0
        body = self.build_body(texts, query)
        while True:
            attempt += 1
            budget = self.attempt_budget(started)
            if budget <= 0:
                raise _errors.TimeoutError(
                    f"the batch used its retry_deadline of {self.policy.deadline:g}s",
                    attempts=attempt - 1,
                    indices=indices,
                )
            outcome = yield Send(
                body,
                tuple(indices),
                attempt,
                self.embed_url,
                timeout=budget,
                max_bytes=self.response_limit(len(texts)),
            )
            try:
                if isinstance(outcome, HFInferError):
                    raise outcome
                if outcome is None:
                    raise RuntimeError("the client sent nothing back for a Send step")
                return self.parse(outcome, len(texts), arrays=arrays)
            except PayloadTooLargeError as err:
                if len(texts) > 1:
                    # Never truncate (Elasticsearch halves every input): halve the batch instead.
                    mid = len(texts) // 2
                    left = yield from self.batch_flow(texts[:mid], indices[:mid], arrays, splittable)
                    right = yield from self.batch_flow(texts[mid:], indices[mid:], arrays, splittable)
                    return left + right
                self._learn_limit(err)
                halves = self.halves(texts[0]) if splittable else None
                if halves is None:
                    err.index = indices[0]
                    hint = (
                        ""
                        if splittable
                        else "; embed() sends texts as they are: embed_documents() and embed_chunks() split a "
                        "long text to fit the model"
                    )
                    err.message = f"input {indices[0]} alone is too large for the endpoint: {err.message}{hint}"
                    raise err.with_context(attempts=attempt, indices=indices) from err.__cause__
                parts: list[tuple[int, int, Any]] = []
                for start, end, sent in halves:
                    (vector,) = yield from self.batch_flow([sent], indices, arrays, splittable)
                    if isinstance(vector, Pieces):
                        parts += [(start + s, start + e, v) for s, e, v in vector.parts]
                    else:
                        parts.append((start, end, vector))
                return [Pieces(tuple(parts))]
            except HFInferError as err:
                decision = decide(self.policy, attempt, err, self.clock() - started, self.rng)
                if not decision.retry:
                    # A transport error keeps its httpx cause; the retry loop itself is no context.
                    raise err.with_context(attempts=attempt, indices=indices) from err.__cause__
                yield Sleep(decision.wait)

    def halves(self, sent: str) -> list[tuple[int, int, str]] | None:
        """Cut a chunk input (``document_prefix`` + text) in two at its middle word end; ``None``: one character.

        Offsets are into the text; each half is sent with the prefix again.
        """
        prefix = self.options.document_prefix
        text = sent[len(prefix) :]
        inner = word_ends_within(text, 0, len(text))[:-1]
        if inner:
            cut = inner[len(inner) // 2]
        elif len(text) > 1:
            cut = len(text) // 2  # one word longer than the limit: between characters
        else:
            return None
        return [(0, cut, prefix + text[:cut]), (cut, len(text), prefix + text[cut:])]

    def _learn_limit(self, err: PayloadTooLargeError) -> None:
        if self.token_limit is None and (stated := _STATED_LIMIT.search(f"{err.message} {err.body}")):
            # TEI says "less than N" but checks `tokens > N`: N itself is the limit.
            self.learned_limit = int(stated.group(1))

    def request_flow(
        self,
        url: str,
        method: str = "GET",
        body: bytes = b"",
        indices: Sequence[int] = (),
        max_bytes: int | None = None,
    ) -> Generator[Send | Sleep, HttpResult | HFInferError | None, HttpResult]:
        """Send one request until it gets a 2xx answer, rate limited and retried like a batch.

        Returns the answer; raises the typed error of a permanent failure (or of the last
        transient one), carrying the attempt count and ``indices``.
        """
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            outcome = yield Send(
                body,
                tuple(indices),
                attempt,
                url,
                method,
                timeout=max(self.attempt_budget(started), 0.001),
                max_bytes=max_bytes or self.response_limit(0),
            )
            try:
                if isinstance(outcome, HFInferError):
                    raise outcome
                if outcome is None:
                    raise RuntimeError("the client sent nothing back for a Send step")
                if 200 <= outcome.status_code < 300:
                    return outcome
                raise self._status_error(outcome)
            except HFInferError as err:
                decision = decide(self.policy, attempt, err, self.clock() - started, self.rng)
                if not decision.retry:
                    raise err.with_context(attempts=attempt, indices=indices) from err.__cause__
                yield Sleep(decision.wait)

    def info_flow(self) -> Generator[Send | Sleep, HttpResult | HFInferError | None, None]:
        """Ask TEI's ``/info`` once, rate limited and retried like a batch, and apply its answer.

        An endpoint that is not TEI answers 404 or 405: nothing is learnt and nothing fails. A
        refused key or a transient failure that outlasts the retries raises its typed error,
        since the first batch would meet the same.
        """
        try:
            answer = yield from self.request_flow(self.info_url)
        except EndpointError as err:
            if isinstance(err, AuthenticationError) or is_transient(err):
                raise
            logger.debug("no TEI /info at %s (status %d)", urlsplit(self.info_url).path, err.status_code)
            return
        self.apply_info(answer.body)

    # ------------------------------------------------------------------ token limits

    @property
    def token_limit(self) -> int | None:
        """The model's token limit when chunks must be fitted to it: configured, else from ``/info``."""
        if not self.options.fit_chunks_to_model:
            return None
        configured = self.endpoint.service_settings.max_input_tokens
        discovered = (self.server_info or {}).get("max_input_length")
        if configured is not None:
            return configured
        if isinstance(discovered, int) and not isinstance(discovered, bool) and discovered > 0:
            return discovered
        return self.learned_limit

    @property
    def tokenize_url(self) -> str:
        """TEI's ``/tokenize`` next to the embedding URL."""
        return self.info_url.removesuffix("/info") + "/tokenize"

    def tokenize_groups(self, texts: Sequence[str]) -> list[range]:
        """Consecutive groups of ``texts`` for ``/tokenize``: ``batch_size`` texts and ~TOKENIZE_BYTES each.

        The answer to a group is bounded by what it sends (see :func:`tokenize_answer_limit`), so
        sizing the groups by their text sizes the answers too.
        """
        groups: list[range] = []
        start = size = 0
        for i, text in enumerate(texts):
            length = len(text) if text.isascii() else len(text.encode("utf-8"))
            if i > start and (i - start >= self.batch_size or size + length > TOKENIZE_BYTES):
                groups.append(range(start, i))
                start, size = i, 0
            size += length
        if start < len(texts):
            groups.append(range(start, len(texts)))
        return groups

    def tokenize_flow(
        self, texts: Sequence[str]
    ) -> Generator[Send | Sleep, HttpResult | HFInferError | None, list[Tokens]]:
        """Tokenize ``texts`` (one group) with TEI's ``/tokenize``: special tokens counted, the others located."""
        body = json.dumps({"inputs": list(texts), "add_special_tokens": True}, ensure_ascii=False).encode("utf-8")
        limit = max(self.response_limit(len(texts)), tokenize_answer_limit(len(body)))
        try:
            answer = yield from self.request_flow(self.tokenize_url, "POST", body, max_bytes=limit)
        except EndpointError as err:
            if err.status_code in (404, 405):
                self.can_tokenize = False
                raise NoTokenizeRoute(
                    f"the endpoint has no /tokenize ({err.status_code})", status_code=err.status_code
                ) from err
            raise
        try:
            data = _loads(answer.body)
            return [_tei_tokens(text, tokens) for text, tokens in zip(texts, data, strict=True)]
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise ResponseFormatError(
                f"the endpoint's /tokenize answered {answer.status_code} with something other than "
                f"{len(texts)} token lists with offsets: {body_excerpt(self._redact(answer.body))!r}"
            ) from None

    # ------------------------------------------------------------------ combining chunks

    def pool_all(self, chunks: Sequence[Sequence[Chunk]], vectors: Sequence[list[float]]) -> list[list[float]]:
        """One vector per text from the flat chunk vectors (``chunks[i]`` are text i's chunks, in order)."""
        return [self.pool_text(text_chunks, text_vectors) for text_chunks, text_vectors in per_text(chunks, vectors)]

    def pool_text(self, chunks: Sequence[Chunk], vectors: Sequence[list[float]]) -> list[float]:
        """One text's vector from its chunks' vectors (see :meth:`pool` for two or more)."""
        # A one-chunk text (the common case) keeps its vector object: parsed for this call only.
        return vectors[0] if len(chunks) == 1 else self.pool(chunks, vectors)

    def pool(self, chunks: Sequence[Chunk], vectors: Sequence[list[float]]) -> list[float]:
        """Combine a text's chunk vectors (two or more) into one (documented rule: see ``embed_documents``).

        Lists give a list; float32 numpy rows (base64 with ``as_numpy``) give a float64 row,
        computed in the same order with the same exact norm, so both paths agree.
        """
        weights = [max(c.word_count, 0) for c in chunks]
        if sum(weights) == 0:
            weights = [1] * len(vectors)
        total = float(sum(weights))
        if not isinstance(vectors[0], list):
            return _pool_rows(self.pooling, weights, total, vectors)
        if self.pooling == "first":
            return list(vectors[0])
        dims = len(vectors[0])
        mean = [0.0] * dims
        for weight, vector in zip(weights, vectors, strict=True):
            if weight:
                factor = weight / total
                mean = [m + factor * v for m, v in zip(mean, vector, strict=True)]
        norm = math.sqrt(math.fsum(m * m for m in mean))
        return [m / norm for m in mean] if norm > 0 else mean


def _pool_rows(pooling: Pooling, weights: list[int], total: float, rows: Sequence[Any]) -> Any:
    import numpy

    if pooling == "first":
        return rows[0]
    mean = numpy.zeros(len(rows[0]), dtype=numpy.float64)
    for weight, row in zip(weights, rows, strict=True):
        if weight:
            mean = mean + (weight / total) * row.astype(numpy.float64)
    norm = math.sqrt(math.fsum(mean * mean))  # exact, as the list path's
    return mean / norm if norm > 0 else mean


def expand_pieces(chunks: Sequence[Chunk], vectors: Sequence[Any]) -> tuple[list[Chunk], list[Any]]:
    """One text's chunks and vectors with each split input (:class:`Pieces`) replaced by its pieces."""
    if not any(isinstance(v, Pieces) for v in vectors):
        return list(chunks), list(vectors)
    out_chunks: list[Chunk] = []
    out_vectors: list[Any] = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        if not isinstance(vector, Pieces):
            out_chunks.append(chunk)
            out_vectors.append(vector)
            continue
        origin = chunk.source or (chunk.start, chunk.end)
        for start, end, piece_vector in vector.parts:
            out_chunks.append(Chunk(chunk.start + start, chunk.start + end, chunk.text[start:end], source=origin))
            out_vectors.append(piece_vector)
    return out_chunks, out_vectors


def per_text(
    chunks: Sequence[Sequence[Chunk]], vectors: Sequence[list[float]]
) -> list[tuple[Sequence[Chunk], Sequence[list[float]]]]:
    """Split flat chunk ``vectors`` into each text's: ``chunks[i]`` are text i's chunks, in order."""
    out: list[tuple[Sequence[Chunk], Sequence[list[float]]]] = []
    position = 0
    for text_chunks in chunks:
        out.append((text_chunks, vectors[position : position + len(text_chunks)]))
        position += len(text_chunks)
    return out


def chunk_embeddings(chunks: Sequence[Chunk], vectors: Sequence[list[float]]) -> list[ChunkEmbedding]:
    """One text's chunks with their vectors, as the ``embed_chunks`` methods return them."""
    return [ChunkEmbedding(c.text, c.start, c.end, v, c) for c, v in zip(chunks, vectors, strict=True)]


def _plain_loads(body: bytes | str) -> Any:
    """``json.loads`` for small answers (/info, error bodies); too deep a nesting is a ValueError."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("nested too deeply") from None


try:  # orjson parses vectors ~6x faster than the json module; it is optional (extra "fast").
    import orjson

    def _loads(body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            # orjson rejects NaN/Infinity; json accepts them, so the error can say "NaN".
            try:
                return json.loads(body, parse_int=float)
            except RecursionError:
                raise ValueError("nested too deeply") from None

except ImportError:  # pragma: no cover - exercised where orjson is not installed

    def _loads(body: bytes) -> Any:
        try:
            return json.loads(body, parse_int=float)
        except RecursionError:
            raise ValueError("nested too deeply") from None


try:  # pybase64 (SIMD) decodes ~30x faster than binascii, with the same strict errors (extra "fast").
    import pybase64

    def _b64decode(text: str) -> bytes:
        return pybase64.b64decode(text, validate=True)

except ImportError:  # pragma: no cover - exercised where pybase64 is not installed

    def _b64decode(text: str) -> bytes:
        return base64.b64decode(text, validate=True)


def _float32_rows(raw: bytes, count: int, dims: int, arrays: bool) -> list[list[float]]:
    """``count`` vectors of ``dims`` little-endian float32 values from ``raw``, all finite.

    ``arrays``: float32 numpy rows of one array over the bytes, no Python float made. Otherwise
    lists of floats, through numpy when it is installed (one C pass) and ``array`` when not.
    """
    try:
        import numpy
    except ImportError:  # pragma: no cover - exercised where numpy is not installed
        if arrays:
            raise
        return [_float32_list(raw[i * dims * 4 : (i + 1) * dims * 4], i) for i in range(count)]
    matrix = numpy.frombuffer(raw, dtype="<f4").reshape(count, dims)
    if not numpy.isfinite(matrix).all():
        bad = int(numpy.flatnonzero(~numpy.isfinite(matrix).all(axis=1))[0])
        raise ResponseFormatError(f"vector {bad} of the batch holds NaN or infinite values")
    return list(matrix) if arrays else _float_lists(matrix)


def _float_lists(matrix: Any) -> list[list[float]]:
    """The rows of a float32 matrix as lists of Python floats (the only place base64 makes them)."""
    rows: list[list[float]] = matrix.tolist()
    return rows


def _float32_list(blob: bytes, i: int) -> list[float]:
    values = array.array("f")
    values.frombytes(blob)
    if sys.byteorder != "little":  # pragma: no cover - the wire is little-endian
        values.byteswap()
    vector = values.tolist()
    # float32 values summed as doubles cannot overflow, so the sum is finite iff every value is.
    if not math.isfinite(sum(vector)):
        raise ResponseFormatError(f"vector {i} of the batch holds NaN or infinite values")
    return vector


def _finite_float_sum(vector: list[Any]) -> bool:
    try:
        total = sum(vector)
    except TypeError:
        return False
    return type(total) is float and math.isfinite(total)


def _exact_floats(vector: list[Any], i: int) -> list[float]:
    """Check every value of one vector; return it as plain floats (JSON integers converted)."""
    out: list[float] = []
    for x in vector:
        if type(x) is float:
            out.append(x)
        elif type(x) is int:
            out.append(float(x))
        else:
            raise ResponseFormatError(f"vector {i} of the batch holds a non-numeric value {x!r}")
    if not all(map(math.isfinite, out)):
        raise ResponseFormatError(f"vector {i} of the batch holds NaN or infinite values")
    return out


def _tei_tokens(text: str, tokens: list[dict[str, Any]]) -> Tokens:
    """One text's tokens from TEI's ``/tokenize``, whose ``start``/``stop`` count UTF-8 bytes.

    Special tokens are those TEI gives no offsets; the others' byte offsets become characters.
    """
    special = 0
    offsets: list[tuple[int, int]] = []
    for token in tokens:
        start, stop = token["start"], token["stop"]
        if start is None or stop is None:
            special += 1
        elif type(start) is not int or type(stop) is not int:
            raise TypeError("token offsets must be integers")
        else:
            offsets.append((start, stop))
    if not text.isascii():
        # Character index of each UTF-8 byte offset that starts a character (or ends the text).
        where = {b: i for i, b in enumerate(accumulate((len(c.encode("utf-8")) for c in text), initial=0))}
        offsets = [(where[start], where[stop]) for start, stop in offsets]
    return Tokens.from_offsets(special, offsets)


def _error_fields(text: str) -> tuple[str | None, str | None, float | None]:
    """Return (message, TEI error_type, HF estimated_time) from an error body, when it is JSON."""
    try:
        data = _plain_loads(text)
    except ValueError:
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    if isinstance(error, list):
        error = "; ".join(map(str, error))
    message = str(error) if error is not None else None
    error_type = data.get("error_type")
    estimated = data.get("estimated_time")
    estimated_time = (
        float(estimated) if isinstance(estimated, int | float) and not isinstance(estimated, bool) else None
    )
    return message, str(error_type) if error_type is not None else None, estimated_time


def _retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After``: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
