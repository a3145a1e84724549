"""The options both framework adapters expose, declared once as a pydantic mixin.

:class:`EmbeddingOptions` holds every field ``HFInferEmbeddings`` (LangChain) and
``HFInferEmbedding`` (LlamaIndex) share, the key's sealing and environment default, and the
validation that turns the fields into an :class:`~hf_infer_core._session.EmbeddingSession`. Each
adapter adds only its framework's base class and methods. Elasticsearch's ``similarity`` is not
here: LlamaIndex's ``BaseEmbedding.similarity`` is a method, so each adapter names it itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from ._config import InferenceEndpoint
from ._core import ChunkEmbedding
from ._secret import seal_secret
from ._session import EmbeddingSession, endpoint_fields, session_from_fields

__all__ = ["EmbeddingOptions", "env_api_key"]


def env_api_key() -> SecretStr | None:
    """The key from ``HF_TOKEN``, then ``HUGGINGFACEHUB_API_TOKEN`` (``None`` when neither is set)."""
    value = os.environ.get("HF_TOKEN") or os.environ.get("HUGGINGFACEHUB_API_TOKEN")
    return SecretStr(value) if value else None


class EmbeddingOptions(BaseModel):
    """Endpoint and client options of the framework adapters (see the README for each)."""

    # hide_input_in_errors: a validation error must never print the inputs, the key among them.
    model_config = ConfigDict(hide_input_in_errors=True, arbitrary_types_allowed=True)

    url: str | None = Field(default_factory=lambda: os.environ.get("HF_INFER_URL"), description="Endpoint URL.")
    api_key: SecretStr | None = Field(default_factory=env_api_key, description="Access token.")
    inference_id: str = "hf-infer"
    requests_per_minute: int = 3000
    chunking_settings: dict[str, Any] | None = None
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

    # The adapter field that carries Elasticsearch's service_settings.similarity.
    similarity_field: ClassVar[str] = "similarity"

    @field_validator("api_key")
    @classmethod
    def _seal(cls, value: SecretStr | None) -> SecretStr | None:
        # An explicit None (e.g. from a dump, which never holds the key) means "from the environment".
        return seal_secret(value if value is not None else env_api_key())

    @model_validator(mode="after")
    def _build_session(self) -> Self:
        self._session = session_from_fields({**dict(self), "similarity": getattr(self, self.similarity_field)})
        return self

    @classmethod
    def from_inference_endpoint(
        cls,
        body: Mapping[str, Any] | str,
        *,
        inference_id: str,
        task_type: str = "text_embedding",
        **options: Any,
    ) -> Self:
        """Build from an Elasticsearch ``PUT _inference/<task_type>/<inference_id>`` body (dict or JSON).

        ``options`` are the client options (``batch_size``, ``max_concurrency``, prefixes, ...).
        """
        fields = endpoint_fields(task_type, inference_id, body)
        fields[cls.similarity_field] = fields.pop("similarity")
        return cls(**fields, **options)

    @property
    def endpoint(self) -> InferenceEndpoint:
        """The validated endpoint configuration."""
        return self._session.endpoint

    def embed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """Chunk each text and return its chunks with offsets and vectors (chunk-level ingestion)."""
        return self._session.embed_chunks(texts)

    async def aembed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """Async :meth:`embed_chunks`."""
        return await self._session.aembed_chunks(texts)

    def close(self) -> None:
        """Close pooled connections (the object stays usable)."""
        self._session.close()
