"""The embedding routes: TEI's ``/embed`` (and ``/``), ``/embed_all``, and its OpenAI-compatible ``/v1/embeddings``."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._context import Context, Rejected, handler
from ._model import MAX_ANSWER_FLOATS, dumps

__all__ = ["embed_routes"]


def embed_routes(ctx: Context) -> list[Route]:
    """The routes that answer vectors, over ``ctx``'s model."""
    model = ctx.model

    async def embed(request: Request) -> Response:
        started = time.perf_counter()
        body = await ctx.read(request)
        texts = ctx.texts_of(body, "inputs")
        normalize = ctx.flag(body, "normalize", True)
        dimensions = ctx.dimensions_of(body)
        prompt = ctx.prompt_of(body)
        texts, truncate, tokens = await ctx.check_length(texts, ctx.flag(body, "truncate", None))
        timings: dict[str, float] = {}
        vectors = await asyncio.to_thread(model.encode, texts, bool(normalize), prompt, truncate, timings)
        vectors = truncated(vectors, dimensions, bool(normalize))
        ctx.counted("embed", texts)
        return ctx.answer(dumps(vectors), texts, tokens, started, timings)

    async def embed_all(request: Request) -> Response:
        body = await ctx.read(request)
        texts = ctx.texts_of(body, "inputs")
        texts, _, _ = await ctx.check_length(texts, ctx.flag(body, "truncate", None))
        answer = await asyncio.to_thread(model.token_embeddings, texts, MAX_ANSWER_FLOATS, ctx.prompt_of(body))
        if isinstance(answer, int):
            message = f"the answer would hold {answer} floats, more than this server sends ({MAX_ANSWER_FLOATS})"
            raise ctx.error(413, message, "validation")  # too large as a whole: this server's bound, not TEI's
        ctx.counted("embed_all", texts)
        return Response(answer, media_type="application/json")

    async def openai_embeddings(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await ctx.read(request)
            texts = ctx.texts_of(body, "input")
            encoding = body.get("encoding_format", "float")
            if encoding not in ("float", "base64"):
                raise ctx.undecodable("encoding_format: unknown variant, expected `float` or `base64`")
            dimensions = ctx.dimensions_of(body)
            texts, truncate, tokens = await ctx.check_length(texts, None)
        except Rejected as rejected:
            converted: Response = _openai_error(rejected.response)
            return converted
        timings: dict[str, float] = {}
        vectors = truncated(
            await asyncio.to_thread(model.encode, texts, True, None, truncate, timings), dimensions, True
        )
        ctx.counted("embed", texts)
        data = [
            {"object": "embedding", "embedding": _b64(v) if encoding == "base64" else v, "index": i}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        answer = {"object": "list", "data": data, "model": ctx.name, "usage": usage}
        return ctx.answer(dumps(answer), texts, tokens, started, timings)

    return [
        Route("/", handler(embed), methods=["POST"]),
        Route("/embed", handler(embed), methods=["POST"]),
        Route("/embed_all", handler(embed_all), methods=["POST"]),
        Route("/embeddings", openai_embeddings, methods=["POST"]),
        Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
    ]


def _openai_error(response: Any) -> Any:
    """TEI's OpenAI route speaks OpenAI's error shape: ``{"message", "code", "type"}``."""
    try:
        payload = json.loads(bytes(response.body))
    except ValueError:
        return response  # a plain-text rejection (bad JSON) is the same on every route
    return JSONResponse(
        {"message": payload.get("error"), "code": response.status_code, "type": payload.get("error_type")},
        status_code=response.status_code,
    )


def _b64(vector: Any) -> str:
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def truncated(vectors: Any, dimensions: int | None, normalize: bool) -> Any:
    """The first ``dimensions`` values of each vector (Matryoshka), renormalised when the request normalises, as TEI."""
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    import numpy as np

    cut = np.ascontiguousarray(vectors[:, :dimensions])
    if normalize:
        norms = np.linalg.norm(cut, axis=1, keepdims=True)
        cut = cut / np.where(norms == 0, 1.0, norms)
    return cut
