"""TEI's ``/rerank``: ``{"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"}``.

Answers ``[{"index", "score", "text"?}]`` sorted by score, highest first, as TEI 1.9 does, with its
refusals: 400 for no texts, 422 for a batch above ``--max-client-batch-size``, a pair above the
token limit without truncation or a body of the wrong shape, 503 while a model loads.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._context import Context, handler
from ._model import dumps
from ._rerank import Reranker

__all__ = ["rerank_routes"]

_DIRECTIONS = {"Left": True, "left": True, "Right": False, "right": False}


def rerank_routes(ctx: Context, reranker: Reranker) -> list[Route]:
    """The ``/rerank`` route over ``reranker``."""

    async def rerank(request: Request) -> Response:
        body = await ctx.read(request)
        if reranker.error is not None:
            raise ctx.error(503, f"Rerank model {reranker.model_id} failed to load: {reranker.error}", "unhealthy")
        if reranker.loading:
            raise ctx.error(
                503, f"Rerank model {reranker.model_id} is currently loading", "unhealthy", estimated_time=5.0
            )
        query = body.get("query")
        if not isinstance(query, str):
            raise ctx.undecodable(
                "missing field `query`" if query is None else "query: invalid type: expected a string"
            )
        texts = body.get("texts")
        if not isinstance(texts, list):
            raise ctx.undecodable(
                "missing field `texts`" if texts is None else "texts: invalid type: expected a sequence"
            )
        if not texts:
            raise ctx.error(400, "`texts` cannot be empty", "empty")
        texts = ctx.texts_of(body, "texts")  # strings, within --max-client-batch-size
        raw = bool(ctx.flag(body, "raw_scores", False))
        with_text = bool(ctx.flag(body, "return_text", False))
        truncate = ctx.flag(body, "truncate", None)
        direction = body.get("truncation_direction", "Right")
        if direction not in _DIRECTIONS:
            raise ctx.undecodable("truncation_direction: unknown variant, expected `Left` or `Right`")
        truncating = ctx.auto_truncate if truncate is None else truncate
        texts = ctx.capped(texts, truncating)  # TEI's character cap, before any tokenizing
        if not truncating:
            limit = reranker.max_input_length or 512
            for n in await asyncio.to_thread(reranker.pair_token_counts, query, texts):
                if n > limit:
                    message = f"Input validation error: `inputs` must have less than {limit} tokens. Given: {n}"
                    raise ctx.error(422, message, "validation")
        scores = await asyncio.to_thread(reranker.scores, query, texts, raw, _DIRECTIONS[direction])
        order = sorted(range(len(texts)), key=lambda i: (-scores[i], i))
        ranks = [
            {"index": i, "text": texts[i], "score": scores[i]} if with_text else {"index": i, "score": scores[i]}
            for i in order
        ]
        ctx.counted("rerank", texts)
        return Response(dumps(ranks), media_type="application/json")

    return [Route("/rerank", handler(rerank), methods=["POST"])]
