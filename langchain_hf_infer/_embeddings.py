"""``HFInferEmbeddings``: LangChain embeddings from a Hugging Face endpoint configured like Elasticsearch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from hf_infer_core import ChunkEmbedding, InferenceEndpoint
from hf_infer_core._secret import seal_secret
from hf_infer_core._session import EmbeddingSession, endpoint_fields, session_from_fields

__all__ = ["HFInferEmbeddings"]


class HFInferEmbeddings(BaseModel, Embeddings):
    """Embeddings from a Hugging Face Inference Endpoint or TEI server, configured like Elasticsearch.

    Long documents are chunked as Elasticsearch chunks them (``chunking_settings``) and their
    chunk vectors combined; requests are batched, run concurrently, rate limited and retried.

    Example:
        >>> embeddings = HFInferEmbeddings(url="http://127.0.0.1:8080/embed", api_key="hf_...")
        >>> vectors = embeddings.embed_documents(["some text", "another text"])

    Or from the body of an Elasticsearch ``PUT _inference/text_embedding/<id>`` request:

        >>> embeddings = HFInferEmbeddings.from_inference_endpoint(body, inference_id="my-id")
    """

    # hide_input_in_errors: a validation error must never print the inputs, the key among them.
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    url: str | None = Field(default_factory=from_env("HF_INFER_URL", default=None))
    """Endpoint URL (``service_settings.url``); default ``$HF_INFER_URL``."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(["HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN"], default=None)
    )
    """Access token; default ``$HF_TOKEN``, then ``$HUGGINGFACEHUB_API_TOKEN``."""
    inference_id: str = "hf-infer"
    requests_per_minute: int = 3000
    chunking_settings: dict[str, Any] | None = None
    similarity: str | None = None
    dimensions: int | None = None
    max_input_tokens: int | None = None
    batch_size: int = 32
    max_concurrency: int = 4
    timeout: float = 30.0
    max_retries: int = 5
    max_retry_wait: float = 30.0
    retry_deadline: float = 120.0
    query_prefix: str = ""
    document_prefix: str = ""
    pooling: Literal["mean", "first"] = "mean"
    normalize: bool | None = None
    truncate: bool | None = None
    truncation_direction: Literal["left", "right", "Left", "Right"] | None = None
    prompt_name: str | None = None
    show_progress: bool = False
    discover: bool = False

    _session: EmbeddingSession = PrivateAttr()

    @field_validator("api_key")
    @classmethod
    def _seal(cls, value: SecretStr | None) -> SecretStr | None:
        # An explicit None (e.g. from a dump, which never holds the key) means "from the environment".
        return seal_secret(
            value if value is not None else secret_from_env(["HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN"], default=None)()
        )

    @model_validator(mode="after")
    def _build(self) -> Self:
        self._session = session_from_fields(dict(self))
        return self

    @classmethod
    def from_inference_endpoint(
        cls,
        body: Mapping[str, Any] | str,
        *,
        inference_id: str,
        task_type: str = "text_embedding",
        **options: Any,
    ) -> HFInferEmbeddings:
        """Build from an Elasticsearch ``PUT _inference/<task_type>/<inference_id>`` body (dict or JSON)."""
        return cls(**endpoint_fields(task_type, inference_id, body), **options)

    @property
    def endpoint(self) -> InferenceEndpoint:
        """The validated endpoint configuration."""
        return self._session.endpoint

    @property
    def lc_secrets(self) -> dict[str, str]:
        """Serialised LangChain objects refer to the key by environment variable, never by value."""
        return {"api_key": "HF_TOKEN"}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (chunked with ``chunking_settings``, chunk vectors combined)."""
        return self._session.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (``query_prefix`` prepended, not chunked)."""
        return self._session.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with asyncio (native, no thread hop)."""
        return await self._session.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one query with asyncio."""
        return await self._session.aembed_query(text)

    def embed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """Chunk each text and return its chunks with offsets and vectors (chunk-level ingestion)."""
        return self._session.embed_chunks(texts)

    async def aembed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """Async :meth:`embed_chunks`."""
        return await self._session.aembed_chunks(texts)

    def close(self) -> None:
        """Close pooled connections (the object stays usable)."""
        self._session.close()
