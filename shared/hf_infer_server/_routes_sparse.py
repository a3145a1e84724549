"""TEI's ``/embed_sparse``: ``{"inputs", "truncate", "truncation_direction", "prompt_name"}``.

Answers, per input, ``[{"index": <vocabulary id>, "value": <weight>}]`` with the non-zero entries,
as TEI 1.9 does, with the refusals of ``/embed``: 400 for no inputs, 422 for a batch above
``--max-client-batch-size``, an input over the token limit without truncation, an unknown
``prompt_name`` or a body of the wrong shape, 413 for a body over the payload limit, 503 while a
model loads.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._context import Context, handler
from ._model import dumps
from ._sparse import Sparse

__all__ = ["sparse_routes"]

_DIRECTIONS = {"Left": True, "left": True, "Right": False, "right": False}


def sparse_routes(ctx: Context, sparse: Sparse) -> list[Route]:
    """The ``/embed_sparse`` route over ``sparse``."""

    async def embed_sparse(request: Request) -> Response:
        started = time.perf_counter()
        body = await ctx.read(request)
        if sparse.error is not None:
            raise ctx.error(503, f"Sparse model {sparse.model_id} failed to load: {sparse.error}", "unhealthy")
        if sparse.loading:
            raise ctx.error(
                503, f"Sparse model {sparse.model_id} is currently loading", "unhealthy", estimated_time=5.0
            )
        texts = ctx.texts_of(body, "inputs")
        direction = body.get("truncation_direction", "Right")
        if direction not in _DIRECTIONS:
            raise ctx.undecodable("truncation_direction: unknown variant, expected `Left` or `Right`")
        prompt = body.get("prompt_name")
        if prompt is not None and (not isinstance(prompt, str) or prompt not in sparse.prompts):
            raise ctx.error(422, f"Prompt `{prompt}` was not found in the model's prompts", "validation")
        truncate = ctx.flag(body, "truncate", None)
        truncating = ctx.auto_truncate if truncate is None else truncate
        texts = ctx.capped(texts, truncating)  # TEI's character cap, before any tokenizing
        counts = await asyncio.to_thread(sparse.token_counts, texts)
        limit = sparse.max_input_length or 512
        if not truncating:
            for n in counts:
                if n > limit:
                    message = f"Input validation error: `inputs` must have less than {limit} tokens. Given: {n}"
                    raise ctx.error(422, message, "validation")
        timings: dict[str, float] = {}
        began = time.perf_counter()
        vectors = await asyncio.to_thread(sparse.vectors, texts, prompt, _DIRECTIONS[direction])
        timings["inference"] = time.perf_counter() - began
        answer = [[{"index": index, "value": value} for index, value in pairs] for pairs in vectors]
        ctx.counted("embed_sparse", texts)
        return ctx.answer(dumps(answer), texts, sum(min(n, limit) for n in counts), started, timings)

    return [Route("/embed_sparse", handler(embed_sparse), methods=["POST"])]
