"""hf_infer_core: Elasticsearch-compatible Hugging Face endpoint config, chunking and client.

The core never imports LangChain, LlamaIndex or the model server; the adapters in
``langchain_hf_infer`` and ``llama_index_hf_infer`` are thin layers over it, and the local
TEI-compatible server lives in ``hf_infer_server`` (extra ``server``). Its sub-packages are
layers, each importing only those below it (checked by import-linter; docs/architecture.md):
``integration`` (what the adapters and Ray share), ``embeddings`` and ``rerank`` (each task's
flows and clients, side by side), ``drivers`` (the threaded and asyncio drivers), ``protocol`` (the I/O-free
steps, retry loop, discovery) beside ``limits`` (rate and concurrency limits), ``text`` (words,
chunks, token fitting), ``config`` (Elasticsearch's schema, the options), ``cache`` (the
chunk-level vector cache), ``base`` (errors, secrets).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from .base import (
    AuthenticationError,
    ClientClosedError,
    ConfigError,
    EndpointError,
    HFInferError,
    InvalidInputError,
    InvalidRequestError,
    ModelLoadingError,
    PayloadTooLargeError,
    RateLimitBackendError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TimeoutError,
    TransportError,
)
from .cache import CacheStats
from .config import (
    DEFAULT_CHUNKING_SETTINGS,
    DEFAULT_INFERENCE_ID,
    DEFAULT_REQUESTS_PER_MINUTE,
    ChunkingSettings,
    HuggingFaceServiceSettings,
    InferenceEndpoint,
    RateLimitSettings,
    RerankOptionArgs,
    RerankOptions,
    RerankTaskSettings,
    env_api_key,
)
from .embeddings import AsyncEmbeddingClient, EmbeddingClient, EmbeddingOptionArgs, EmbeddingOptions
from .limits import RateLimiter, RedisRateLimiter, shared_rate_limiter
from .protocol import is_transient
from .rerank import AsyncRerankClient, RerankClient, RerankResult
from .sparse import (
    AsyncSparseEmbeddingClient,
    SparseEmbeddingClient,
    SparseEmbeddingOptionArgs,
    SparseEmbeddingOptions,
    SparseVector,
)
from .text import Chunk, ChunkEmbedding, chunk_text, count_words, resolve_chunking_settings

# Names renamed or retired, kept for one release with a DeprecationWarning: where the object is
# now (a name of this package, or "module:name" under it) and why.
_DEPRECATED = {
    "ClientOptions": ("EmbeddingOptions", "renamed EmbeddingOptions (each task's options carry its name)"),
    "ClientOptionArgs": ("EmbeddingOptionArgs", "renamed EmbeddingOptionArgs"),
    "RetryPolicy": (
        "protocol._retry:RetryPolicy",
        _NO_POLICY := "no client takes a retry policy (the options "
        "max_retries, max_retry_wait, retry_deadline and connect_retry_deadline set it)",
    ),
    "RetryDecision": ("protocol._retry:RetryDecision", _NO_POLICY),
    "decide": ("protocol._retry:decide", _NO_POLICY),
}


def __getattr__(name: str) -> object:
    """The deprecated names, each with a DeprecationWarning saying what replaces it."""
    if name not in _DEPRECATED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    where, why = _DEPRECATED[name]
    warnings.warn(
        f"hf_infer_core.{name} is deprecated and goes in the next release: {why}", DeprecationWarning, stacklevel=2
    )
    module, _, attribute = where.rpartition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute) if module else globals()[attribute]


try:  # one version source: the installed distribution's metadata (pyproject.toml)
    __version__ = _version("hf-infer")
except _PackageNotFoundError:  # pragma: no cover - a source tree on sys.path without an install
    __version__ = "0+unknown"

__all__ = [
    "CacheStats",
    "AsyncEmbeddingClient",
    "AsyncRerankClient",
    "RerankClient",
    "RerankOptionArgs",
    "RerankOptions",
    "RerankResult",
    "RerankTaskSettings",
    "AsyncSparseEmbeddingClient",
    "SparseEmbeddingClient",
    "SparseEmbeddingOptionArgs",
    "SparseEmbeddingOptions",
    "SparseVector",
    "ChunkEmbedding",
    "EmbeddingClient",
    "EmbeddingOptionArgs",
    "EmbeddingOptions",
    "RateLimiter",
    "RedisRateLimiter",
    "is_transient",
    "shared_rate_limiter",
    "DEFAULT_CHUNKING_SETTINGS",
    "DEFAULT_INFERENCE_ID",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "AuthenticationError",
    "Chunk",
    "ClientClosedError",
    "ChunkingSettings",
    "ConfigError",
    "EndpointError",
    "HFInferError",
    "HuggingFaceServiceSettings",
    "InferenceEndpoint",
    "InvalidInputError",
    "InvalidRequestError",
    "ModelLoadingError",
    "PayloadTooLargeError",
    "RateLimitBackendError",
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
    "env_api_key",
]
