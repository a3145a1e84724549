"""What both framework adapters need: options to endpoint, lazy clients, safe copies and pickles.

An :class:`EmbeddingSession` turns adapter options into an :class:`InferenceEndpoint` and creates
its :class:`EmbeddingClient` and :class:`AsyncEmbeddingClient` on first use (no network access
before). Clients hold sockets, locks and threads, so copies and pickles of a session carry only
the endpoint (its key sealed) and the options, and make new clients when used: that is what lets
the adapters survive ``copy.deepcopy``, ``pickle`` and multiprocessing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ._client import AsyncEmbeddingClient, EmbeddingClient
from ._config import DEFAULT_REQUESTS_PER_MINUTE, InferenceEndpoint
from ._core import ChunkEmbedding
from ._errors import ConfigError

__all__ = ["CLIENT_OPTIONS", "EmbeddingSession", "endpoint_fields", "session_from_fields"]

# Adapter fields that are client options, passed through unchanged.
CLIENT_OPTIONS = (
    "batch_size",
    "max_concurrency",
    "timeout",
    "max_retries",
    "max_retry_wait",
    "retry_deadline",
    "query_prefix",
    "document_prefix",
    "pooling",
    "normalize",
    "truncate",
    "truncation_direction",
    "prompt_name",
    "show_progress",
    "discover",
)


def endpoint_fields(task_type: str, inference_id: str, body: Mapping[str, Any] | str) -> dict[str, Any]:
    """Parse an Elasticsearch request body into the adapters' endpoint fields (``from_inference_endpoint``)."""
    endpoint = InferenceEndpoint.from_request(task_type, inference_id, body)
    settings = endpoint.service_settings
    return {
        "url": settings.url,
        "api_key": settings.api_key,
        "inference_id": endpoint.inference_id,
        "requests_per_minute": settings.rate_limit.requests_per_minute,
        "chunking_settings": endpoint.chunking_settings.to_dict(),
        "similarity": settings.similarity,
        "dimensions": settings.dimensions,
        "max_input_tokens": settings.max_input_tokens,
    }


def session_from_fields(fields: Mapping[str, Any]) -> EmbeddingSession:
    """Validate an adapter's fields into an endpoint, with its client options, as a session.

    The endpoint is checked with Elasticsearch's rules and messages; unset optional service
    settings (``None``) are left out, as if the JSON had not named them.
    """
    url = fields.get("url")
    if not url:
        raise ConfigError(
            ["[service_settings] does not contain the required setting [url] (pass url= or set HF_INFER_URL)"]
        )
    endpoint = InferenceEndpoint.from_url(
        url,
        fields.get("api_key"),
        inference_id=fields.get("inference_id", "hf-infer"),
        requests_per_minute=fields.get("requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE),
        chunking_settings=fields.get("chunking_settings"),
        similarity=fields.get("similarity"),
        dimensions=fields.get("dimensions"),
        max_input_tokens=fields.get("max_input_tokens"),
    )
    return EmbeddingSession(endpoint, {k: fields[k] for k in CLIENT_OPTIONS if k in fields})


class EmbeddingSession:
    """Lazily created sync and async clients for one endpoint; cheap to copy and to pickle."""

    def __init__(self, endpoint: InferenceEndpoint, options: Mapping[str, Any]) -> None:
        self.endpoint = endpoint
        self.options = {k: v for k, v in options.items() if v is not None}
        self._lock = threading.Lock()
        self._sync: EmbeddingClient | None = None
        self._async: AsyncEmbeddingClient | None = None

    @property
    def client(self) -> EmbeddingClient:
        """The blocking client, created on first use."""
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = EmbeddingClient(self.endpoint, **self.options)
        return self._sync

    @property
    def aclient(self) -> AsyncEmbeddingClient:
        """The asyncio client (usable from any event loop), created on first use."""
        if self._async is None:
            with self._lock:
                if self._async is None:
                    self._async = AsyncEmbeddingClient(self.endpoint, **self.options)
        return self._async

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """See :meth:`EmbeddingClient.embed_documents`."""
        return self.client.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """See :meth:`EmbeddingClient.embed_query`."""
        return self.client.embed_query(text)

    def embed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """See :meth:`EmbeddingClient.embed_chunks`."""
        return self.client.embed_chunks(texts)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """See :meth:`AsyncEmbeddingClient.embed_documents`."""
        return await self.aclient.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """See :meth:`AsyncEmbeddingClient.embed_query`."""
        return await self.aclient.embed_query(text)

    async def aembed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """See :meth:`AsyncEmbeddingClient.embed_chunks`."""
        return await self.aclient.embed_chunks(texts)

    def close(self) -> None:
        """Close the blocking client's connections (the session stays usable)."""
        with self._lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None

    async def aclose(self) -> None:
        """Close the async client's connections for the running loop."""
        if self._async is not None:
            await self._async.aclose()

    def __reduce__(self) -> tuple[type[EmbeddingSession], tuple[InferenceEndpoint, dict[str, Any]]]:
        return (EmbeddingSession, (self.endpoint, dict(self.options)))

    def __deepcopy__(self, memo: dict[int, Any]) -> EmbeddingSession:
        return EmbeddingSession(self.endpoint, dict(self.options))

    def __repr__(self) -> str:
        return f"<EmbeddingSession {self.endpoint.inference_id!r} url={self.endpoint.url!r}>"
