"""What every route shares: reading a request as TEI does, its refusals, and the counters behind ``/metrics``.

A :class:`Context` holds the served :class:`~._model.Model` and the server's settings; the route
families (``_routes_embed.py``, ``_routes_meta.py``) take it. Imported by :func:`create_app` only,
so that importing ``hf_infer_server`` needs no starlette.
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

__all__ = ["Context", "Rejected", "handler"]

Route = Callable[[Request], Awaitable[Response]]


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


@dataclass
class Context:
    """The served model, the server's settings and its counters."""

    model: Model
    name: str
    max_batch_size: int
    auto_truncate: bool
    max_concurrent_requests: int
    counters: collections.Counter[str] = field(default_factory=collections.Counter)

    def error(self, status: int, message: str, error_type: str, **extra: Any) -> Rejected:
        """TEI's JSON error: ``{"error", "error_type"}`` (counted by type)."""
        self.counters[f'te_request_failure{{err="{error_type}"}}'] += 1
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
        """The JSON object of a request's body: its size, content type and shape checked as TEI checks them."""
        if int(request.headers.get("content-length") or 0) > PAYLOAD_LIMIT:
            raise _too_large()
        if not _is_json(request.headers.get("content-type", "")):
            # axum's Json extractor answers so (and reads nothing).
            self.counters['te_request_failure{err="validation"}'] += 1
            raise Rejected(PlainTextResponse("Expected request with `Content-Type: application/json`", status_code=415))
        # Read as a stream and stopped at the limit: a chunked body (no Content-Length) of any
        # size costs at most PAYLOAD_LIMIT bytes of memory.
        pieces: list[bytes] = []
        size = 0
        async for piece in request.stream():
            size += len(piece)
            if size > PAYLOAD_LIMIT:
                raise _too_large(connection="close")  # so the server stops reading what the client still sends
            pieces.append(piece)
        self.ready()
        try:
            body = json.loads(b"".join(pieces))
        except RecursionError:
            raise self.undecodable("recursion limit exceeded") from None  # 200,000 nested brackets: 422, not 500
        except ValueError as err:
            raise self.undecodable(str(err)) from None
        if not isinstance(body, dict):
            raise self.undecodable("invalid type: expected struct")
        return body

    def texts_of(self, body: dict[str, Any], key: str) -> list[str]:
        """The request's inputs: a string or a list of strings, valid Unicode, at most ``max_batch_size``."""
        value = body.get(key)
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise self.undecodable(f"{key}: data did not match any variant of untagged enum Input")
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # "\ud800" decodes in Python's JSON; serde refuses a lone surrogate
                raise self.undecodable(f"{key}: lone leading surrogate in hex escape") from None
        record_inputs(len(texts))
        if not texts:
            raise self.error(413, "`inputs` cannot be empty", "validation")
        if len(texts) > self.max_batch_size:
            message = f"batch size {len(texts)} > maximum allowed batch size {self.max_batch_size}"
            raise self.error(413, message, "validation")
        return texts

    def flag(self, body: dict[str, Any], key: str, default: bool | None) -> bool | None:
        """A boolean field of the request (``None`` when absent and without default)."""
        value = body.get(key, default)
        if value is not None and not isinstance(value, bool):
            raise self.undecodable(f"{key}: invalid type: expected a boolean")
        return value

    async def check_length(self, texts: list[str], truncate: bool | None) -> bool:
        """Whether to truncate; without truncation an input over the model's limit is TEI's 413."""
        truncate = self.auto_truncate if truncate is None else truncate
        if not truncate:
            limit = self.model.max_input_length
            for n in await asyncio.to_thread(self.model.token_counts, texts):
                if n > limit:
                    message = f"Input validation error: `inputs` must have less than {limit} tokens. Given: {n}"
                    raise self.error(413, message, "validation")
        return truncate

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
            raise self.error(413, f"prompt `{prompt}` is not available (available: {sorted(prompts)})", "validation")
        return prompt

    def counted(self, method: str, texts: list[str]) -> None:
        """Count a served request as TEI's metrics do."""
        kind = "single" if len(texts) == 1 else "batch"
        self.counters[f'te_request_count{{method="{kind}"}}'] += 1
        self.counters[f'te_request_success{{method="{kind}"}}'] += 1
        self.counters[f"te_{method}_inputs_total"] += len(texts)


def handler(route: Route) -> Route:
    """``route``, its :class:`Rejected` refusals answered with the response they carry."""

    async def run(request: Request) -> Response:
        try:
            return await route(request)
        except Rejected as rejected:
            return rejected.response

    return run
