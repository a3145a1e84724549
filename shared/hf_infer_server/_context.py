"""What every route shares: reading a request as TEI 1.9 does, its refusals, and the counters behind ``/metrics``.

A :class:`Context` holds the served :class:`~._model.Model` and the server's settings; the route
families (``_routes_embed.py``, ``_routes_meta.py``) take it. Imported by :func:`create_app` only,
so that importing ``hf_infer_server`` needs no starlette.

TEI 1.9's answers (router/src/http/server.rs, core/src/tokenization.rs at v1.9.3): a validation
error (a batch over ``--max-client-batch-size``, an input over the model's tokens or over its
character cap, an unknown prompt) is 422 with ``error_type`` ``validation``; an empty input is
400 (``empty``); only a body over ``--payload-limit`` is 413 (plain text). Memory per request is
bounded by its size: the body by ``--payload-limit``, and no input is tokenized before its
characters are checked against the cap (the model's tokens x 250), nor a request's inputs beyond
:data:`MAX_TOKENIZED_CHARS` characters.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ._access import record_inputs
from ._model import PAYLOAD_LIMIT, Model

__all__ = ["CHARS_PER_TOKEN_CAP", "MAX_TOKENIZED_CHARS", "Context", "Rejected", "handler"]

Route = Callable[[Request], Awaitable[Response]]
# TEI's MAX_CHAR_MULTIPLIER: an input over the model's tokens times this many characters is
# refused (or, with truncate, cut to it) before it is tokenized.
CHARS_PER_TOKEN_CAP = 250
# The most characters one request has tokenized (the Rust tokenizer holds ~500 bytes a token:
# at most ~130 MB, one large tokenization at a time); more is refused before tokenizing.
MAX_TOKENIZED_CHARS = 1 << 18


class Rejected(Exception):
    """A request TEI would refuse: carries the response it would give."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<something>+json``, as axum's Json extractor accepts."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def _too_large(**headers: str) -> Rejected:
    text = "Failed to buffer the request body: length limit exceeded"
    return Rejected(PlainTextResponse(text, status_code=413, headers=headers or None))


def _lone_surrogate(value: Any, depth: int = 0) -> bool:
    """True when a string anywhere in a decoded body holds a lone surrogate (serde refuses one)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 64:  # bodies this deep are refused by json's own recursion limit first
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k, depth + 1) or _lone_surrogate(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v, depth + 1) for v in value)
    return False


@dataclass
class Context:
    """The served model, the server's settings and its counters."""

    model: Model
    name: str
    max_batch_size: int
    auto_truncate: bool
    max_concurrent_requests: int
    payload_limit: int = PAYLOAD_LIMIT
    body_timeout: float = 30.0
    counters: collections.Counter[str] = field(default_factory=collections.Counter)

    def error(self, status: int, message: str, error_type: str, counter: str | None = None, **extra: Any) -> Rejected:
        """TEI's JSON error: ``{"error", "error_type"}`` (counted by type, or by ``counter`` as TEI counts it)."""
        self.counters[f'te_request_failure{{err="{counter or error_type}"}}'] += 1
        return Rejected(JSONResponse({"error": message, "error_type": error_type, **extra}, status_code=status))

    def undecodable(self, detail: str) -> Rejected:
        """Axum's Json extractor, in front of every TEI route, answers a body of the wrong shape so."""
        self.counters['te_request_failure{err="validation"}'] += 1
        return Rejected(
            PlainTextResponse(f"Failed to deserialize the JSON body into the target type: {detail}", status_code=422)
        )

    def ready(self) -> None:
        """Refuse with TEI's 503 while the model loads, or if it failed to."""
        model = self.model
        if model.error is not None:
            raise self.error(503, f"Model {self.name} failed to load: {model.error}", "unhealthy")
        if model.model is None:
            elapsed = time.monotonic() - model.started
            estimated = round(max(1.0, 20.0 - elapsed), 1)
            raise self.error(503, f"Model {self.name} is currently loading", "unhealthy", estimated_time=estimated)

    async def read(self, request: Request) -> dict[str, Any]:
        """The JSON object of a request's body: its size, content type and shape checked as TEI checks them.

        The body must arrive within ``body_timeout`` seconds (a body dripped a byte a second is
        answered 408 and its connection closed); a refusal before the body is read closes the
        connection, so what the client still sends is never read.
        """
        if int(request.headers.get("content-length") or 0) > self.payload_limit:
            raise _too_large(connection="close")
        if not _is_json(request.headers.get("content-type", "")):
            # axum's Json extractor answers so (and reads nothing).
            self.counters['te_request_failure{err="validation"}'] += 1
            raise Rejected(
                PlainTextResponse(
                    "Expected request with `Content-Type: application/json`",
                    status_code=415,
                    headers={"connection": "close"},
                )
            )
        # Read as a stream and stopped at the limit: a chunked body (no Content-Length) of any
        # size costs at most payload_limit bytes of memory.
        pieces: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                async for piece in request.stream():
                    size += len(piece)
                    if size > self.payload_limit:
                        raise _too_large(connection="close")  # the server stops reading what the client still sends
                    pieces.append(piece)
        except TimeoutError:
            self.counters['te_request_failure{err="validation"}'] += 1
            message = f"the request body did not arrive within {self.body_timeout:g} s"
            raise Rejected(PlainTextResponse(message, status_code=408, headers={"connection": "close"})) from None
        self.ready()
        try:
            body = json.loads(b"".join(pieces))
        except RecursionError:
            raise self.undecodable("recursion limit exceeded") from None  # 200,000 nested brackets: 422, not 500
        except ValueError as err:
            raise self.undecodable(str(err)) from None
        if not isinstance(body, dict):
            raise self.undecodable("invalid type: expected struct")
        if _lone_surrogate(body):  # anywhere: the query, a prompt name, a key (TEI's serde refuses them all)
            raise self.undecodable("lone leading surrogate in hex escape")
        return body

    def texts_of(self, body: dict[str, Any], key: str) -> list[str]:
        """The request's inputs: a string or a list of strings, at most ``max_batch_size``, none empty-listed."""
        value = body.get(key)
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise self.undecodable(f"{key}: data did not match any variant of untagged enum Input")
        record_inputs(len(texts))
        if not texts:
            raise self.error(400, f"`{key}` cannot be empty", "empty")
        if len(texts) > self.max_batch_size:
            message = f"batch size {len(texts)} > maximum allowed batch size {self.max_batch_size}"
            raise self.error(422, message, "validation", counter="batch_size")
        return texts

    def capped(self, texts: list[str], truncate: bool) -> list[str]:
        """TEI's character cap, before any tokenizing: an input over it is refused (422), or cut to it with truncate.

        Then the request's characters are bounded by :data:`MAX_TOKENIZED_CHARS` (memory).
        """
        cap = self.model.max_input_length * CHARS_PER_TOKEN_CAP
        out = []
        for text in texts:
            if len(text) > cap:
                if not truncate:
                    message = (
                        f"Input validation error: `inputs` must have less than {cap} characters. Given: {len(text)}"
                    )
                    raise self.error(422, message, "validation")
                text = text[:cap]
            out.append(text)
        total = sum(len(text) for text in out)
        if total > MAX_TOKENIZED_CHARS:
            message = (
                f"the inputs hold {total} characters, more than this server tokenizes in one request "
                f"({MAX_TOKENIZED_CHARS}): send fewer or shorter inputs"
            )
            # 413, as a body over the payload limit: a request too large as a whole is halved by clients.
            raise self.error(413, message, "validation")
        return out

    def flag(self, body: dict[str, Any], key: str, default: bool | None) -> bool | None:
        """A boolean field of the request (``None`` when absent and without default)."""
        value = body.get(key, default)
        if value is not None and not isinstance(value, bool):
            raise self.undecodable(f"{key}: invalid type: expected a boolean")
        return value

    async def check_length(self, texts: list[str], truncate: bool | None) -> tuple[list[str], bool, int]:
        """The texts to encode (capped), whether to truncate, and their tokens (``x-compute-tokens``).

        ``truncate`` ``None``: the server's ``--auto-truncate``. Without truncation an input over the
        model's tokens is TEI 1.9's 422. The characters are checked before any tokenizing.
        """
        truncate = self.auto_truncate if truncate is None else truncate
        texts = self.capped(texts, truncate)
        limit = self.model.max_input_length
        counts = await asyncio.to_thread(self.model.token_counts, texts)
        if not truncate:
            for n in counts:
                if n > limit:
                    message = f"Input validation error: `inputs` must have less than {limit} tokens. Given: {n}"
                    raise self.error(422, message, "validation")
        return texts, truncate, sum(min(n, limit) for n in counts)

    def dimensions_of(self, body: dict[str, Any]) -> int | None:
        """The request's ``dimensions`` (TEI's Matryoshka truncation), at most the model's size."""
        value = body.get("dimensions")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.undecodable("dimensions: invalid value: expected a positive integer")
        size = int(self.model.model.get_sentence_embedding_dimension() or 0)
        if value > size:
            raise self.error(422, f"`dimensions` ({value}) is larger than the model's {size}", "validation")
        return value

    def prompt_of(self, body: dict[str, Any]) -> str | None:
        """The request's ``prompt_name``, one the model has."""
        prompt = body.get("prompt_name")
        if prompt is None:
            return None
        prompts = getattr(self.model.model, "prompts", {}) or {}
        if not isinstance(prompt, str) or prompt not in prompts:
            raise self.error(422, f"prompt `{prompt}` is not available (available: {sorted(prompts)})", "validation")
        return prompt

    def counted(self, method: str, texts: list[str]) -> None:
        """Count a served request as TEI's metrics do."""
        kind = "single" if len(texts) == 1 else "batch"
        self.counters[f'te_request_count{{method="{kind}"}}'] += 1
        self.counters[f'te_request_success{{method="{kind}"}}'] += 1
        self.counters[f"te_{method}_inputs_total"] += len(texts)

    def answer(
        self, payload: bytes, texts: list[str], tokens: int, started: float, timings: dict[str, float]
    ) -> Response:
        """A successful answer with TEI's headers: characters, tokens and times (milliseconds, as TEI's)."""
        total = round((time.perf_counter() - started) * 1000)
        queue, inference = round(timings.get("queue", 0.0) * 1000), round(timings.get("inference", 0.0) * 1000)
        headers = {
            "x-compute-type": "cpu",
            "x-compute-characters": str(sum(len(text) for text in texts)),
            "x-compute-tokens": str(tokens),
            "x-compute-time": str(total),
            "x-total-time": str(total),
            "x-tokenization-time": str(max(0, total - queue - inference)),
            "x-queue-time": str(queue),
            "x-inference-time": str(inference),
        }
        return Response(payload, media_type="application/json", headers=headers)


def handler(route: Route) -> Route:
    """``route``, its :class:`Rejected` refusals answered with the response they carry."""

    async def run(request: Request) -> Response:
        try:
            return await route(request)
        except Rejected as rejected:
            return rejected.response

    return run
