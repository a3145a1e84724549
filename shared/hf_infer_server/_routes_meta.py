"""The routes about the model rather than its vectors: ``/tokenize``, ``/info``, ``/health`` (``/``, ``/ping``), ``/metrics``."""

from __future__ import annotations

import asyncio
import os

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ._context import Context, handler
from ._model import MAX_TOKENIZE_TOKENS
from ._rerank import Reranker
from ._sparse import Sparse

__all__ = ["TEI_VERSION", "meta_routes"]

# The text-embeddings-inference release this server answers as (statuses, flags, /info, headers).
TEI_VERSION = "1.9.3"


def meta_routes(ctx: Context, reranker: Reranker, sparse: Sparse) -> list[Route]:
    """The tokenizer, information, health and metrics routes over ``ctx``'s model (and ``reranker``'s, ``sparse``'s)."""
    model = ctx.model

    async def tokenize(request: Request) -> Response:
        body = await ctx.read(request)
        texts = ctx.capped(ctx.texts_of(body, "inputs"), truncate=False)  # characters checked before tokenizing
        special = ctx.flag(body, "add_special_tokens", True)
        answer = await asyncio.to_thread(model.tokenize, texts, bool(special), MAX_TOKENIZE_TOKENS)
        if isinstance(answer, int):
            message = (
                f"the inputs have {answer} tokens, more than this server tokenizes at once ({MAX_TOKENIZE_TOKENS})"
            )
            raise ctx.error(413, message, "validation")  # too large as a whole: this server's bound, not TEI's
        return Response(answer, media_type="application/json")

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "model_id": ctx.name,
                "model_sha": None,
                "model_dtype": "float32",
                "model_type": {"embedding": {"pooling": "mean"}},
                "max_concurrent_requests": ctx.max_concurrent_requests,
                "max_input_length": model.max_input_length if model.model is not None else None,
                "max_batch_tokens": ctx.max_batch_size * 512,
                "max_batch_requests": None,
                "max_client_batch_size": ctx.max_batch_size,
                "auto_truncate": ctx.auto_truncate,
                "tokenization_workers": os.cpu_count() or 1,
                "version": TEI_VERSION,  # the TEI release whose answers this server gives
                "sha": None,
                "docker_label": f"hf-infer {_version()}",
                # Not TEI's: this server answers /embed, /rerank and /embed_sparse, and says how /rerank scores
                "rerank": {
                    "route": "/rerank",
                    "model_id": reranker.model_id,
                    "scoring": reranker.scoring,
                    "max_input_length": reranker.max_input_length,
                    "error": reranker.error,
                },
                # And how /embed_sparse weighs (TEI serves it for a model with pooling: splade).
                "sparse": {
                    "route": "/embed_sparse",
                    "model_id": sparse.model_id,
                    "weighting": sparse.weighting,
                    "max_input_length": sparse.max_input_length,
                    "error": sparse.error,
                },
            }
        )

    async def health(request: Request) -> Response:
        ctx.ready()
        if reranker.error is not None or reranker.loading:
            state = "failed to load" if reranker.error else "is currently loading"
            raise ctx.error(503, f"Rerank model {reranker.model_id} {state}", "unhealthy")
        if sparse.error is not None or sparse.loading:
            state = "failed to load" if sparse.error else "is currently loading"
            raise ctx.error(503, f"Sparse model {sparse.model_id} {state}", "unhealthy")
        return Response(status_code=200)

    async def metrics(request: Request) -> Response:
        # Prometheus' text format: one TYPE line per family, then every sample of that family.
        families: dict[str, list[str]] = {}
        for key, value in sorted(ctx.counters.items()):
            families.setdefault(key.split("{")[0], []).append(f"{key} {value}")
        lines = [line for name, samples in families.items() for line in (f"# TYPE {name} counter", *samples)]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    return [
        Route("/", handler(health), methods=["GET"]),
        Route("/tokenize", handler(tokenize), methods=["POST"]),
        Route("/info", info, methods=["GET"]),
        Route("/health", handler(health), methods=["GET"]),
        Route("/ping", handler(health), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _version() -> str:
    from hf_infer_core import __version__

    return __version__
