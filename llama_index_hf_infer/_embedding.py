"""``HFInferEmbedding``: LlamaIndex embeddings from a Hugging Face endpoint configured like Elasticsearch."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, Self

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from hf_infer_core import ChunkEmbedding, InferenceEndpoint
from hf_infer_core._secret import seal_secret
from hf_infer_core._session import EmbeddingSession, endpoint_fields, session_from_fields

__all__ = ["HFInferEmbedding"]


def _env_key() -> SecretStr | None:
    value = os.environ.get("HF_TOKEN") or os.environ.get("HUGGINGFACEHUB_API_TOKEN")
    return SecretStr(value) if value else None


class HFInferEmbedding(BaseEmbedding):
    """LlamaIndex embeddings from a Hugging Face Inference Endpoint or TEI server, configured like Elasticsearch.

    Same options as ``langchain_hf_infer.HFInferEmbeddings``. ``get_text_embedding_batch`` hands
    up to ``embed_batch_size`` (default 2048) texts at once to the client, which batches them by
    ``batch_size`` and runs ``max_concurrency`` requests in parallel. The key is the ``api_key``
    field, which LlamaIndex keeps out of its events; dumps leave it out (``None``), so a dumped
    configuration is rebuilt with the key from ``HF_TOKEN``.
    """

    # hide_input_in_errors: a validation error must never print the inputs, the key among them.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str | None = Field(default_factory=lambda: os.environ.get("HF_INFER_URL"), description="Endpoint URL.")
    api_key: SecretStr | None = Field(default_factory=_env_key, description="Access token (never dumped).")
    inference_id: str = "hf-infer"
    requests_per_minute: int = 3000
    chunking_settings: dict[str, Any] | None = None
    vector_similarity: str | None = Field(
        default=None, description="Elasticsearch's service_settings.similarity (BaseEmbedding.similarity is a method)."
    )
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
    embed_batch_size: int = Field(default=2048, gt=0, le=2048)

    _session: EmbeddingSession = PrivateAttr()

    @field_validator("api_key")
    @classmethod
    def _seal(cls, value: SecretStr | None) -> SecretStr | None:
        # An explicit None (e.g. from a dump, which never holds the key) means "from the environment".
        return seal_secret(value if value is not None else _env_key())

    @field_serializer("api_key")
    def _no_key(self, value: SecretStr | None) -> None:
        return None

    @model_validator(mode="after")
    def _build(self) -> Self:
        if self.model_name == "unknown":
            self.model_name = self.inference_id
        self._session = session_from_fields({**dict(self), "similarity": self.vector_similarity})
        return self

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "HFInferEmbedding"

    @classmethod
    def from_inference_endpoint(
        cls,
        body: Mapping[str, Any] | str,
        *,
        inference_id: str,
        task_type: str = "text_embedding",
        **options: Any,
    ) -> HFInferEmbedding:
        """Build from an Elasticsearch ``PUT _inference/<task_type>/<inference_id>`` body (dict or JSON)."""
        fields = endpoint_fields(task_type, inference_id, body)
        fields["vector_similarity"] = fields.pop("similarity")
        return cls(**fields, **options)

    @property
    def endpoint(self) -> InferenceEndpoint:
        """The validated endpoint configuration."""
        return self._session.endpoint

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._session.embed_query(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await self._session.aembed_query(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._session.embed_documents([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._session.aembed_documents([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._session.embed_documents(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._session.aembed_documents(texts)

    def embed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """Chunk each text and return its chunks with offsets and vectors."""
        return self._session.embed_chunks(texts)

    async def aembed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """Async :meth:`embed_chunks`."""
        return await self._session.aembed_chunks(texts)
