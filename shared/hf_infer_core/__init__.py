"""hf_infer_core: Elasticsearch-compatible Hugging Face endpoint config, chunking and client.

The core never imports LangChain or LlamaIndex; the adapters in
``langchain_hf_infer`` and ``llama_index_hf_infer`` are thin layers over it.
"""

from __future__ import annotations

from ._chunking import Chunk, chunk_text, count_words, resolve_chunking_settings
from ._client import AsyncEmbeddingClient, EmbeddingClient
from ._config import (
    DEFAULT_CHUNKING_SETTINGS,
    DEFAULT_REQUESTS_PER_MINUTE,
    ChunkingSettings,
    HuggingFaceServiceSettings,
    InferenceEndpoint,
    RateLimitSettings,
)
from ._core import ChunkEmbedding
from ._errors import (
    AuthenticationError,
    ConfigError,
    EndpointError,
    HFInferError,
    InvalidInputError,
    InvalidRequestError,
    ModelLoadingError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TimeoutError,
    TransportError,
)
from ._ratelimit import RateLimiter, shared_rate_limiter
from ._retry import RetryDecision, RetryPolicy, decide, is_transient
from ._server import LocalServer, run_local_server

__version__ = "0.1.0"

__all__ = [
    "AsyncEmbeddingClient",
    "ChunkEmbedding",
    "EmbeddingClient",
    "RateLimiter",
    "RetryDecision",
    "RetryPolicy",
    "decide",
    "is_transient",
    "shared_rate_limiter",
    "DEFAULT_CHUNKING_SETTINGS",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "AuthenticationError",
    "Chunk",
    "ChunkingSettings",
    "ConfigError",
    "EndpointError",
    "HFInferError",
    "HuggingFaceServiceSettings",
    "InferenceEndpoint",
    "InvalidInputError",
    "InvalidRequestError",
    "LocalServer",
    "ModelLoadingError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RateLimitSettings",
    "ResponseFormatError",
    "ServerError",
    "TimeoutError",
    "TransportError",
    "__version__",
    "chunk_text",
    "count_words",
    "resolve_chunking_settings",
    "run_local_server",
]
