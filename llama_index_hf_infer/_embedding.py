"""``HFInferEmbedding``: LlamaIndex embeddings from a Hugging Face endpoint configured like Elasticsearch."""

from __future__ import annotations

from typing import ClassVar, Self

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, SecretStr, field_serializer, model_validator

from hf_infer_core._adapter import AdapterOptions

__all__ = ["HFInferEmbedding"]


class HFInferEmbedding(BaseEmbedding, AdapterOptions):
    """LlamaIndex embeddings from a Hugging Face Inference Endpoint or TEI server, configured like Elasticsearch.

    Same options as ``langchain_hf_infer.HFInferEmbeddings``; Elasticsearch's ``similarity`` is
    ``vector_similarity`` here (``BaseEmbedding.similarity`` is a method). ``get_text_embedding_batch``
    hands up to ``embed_batch_size`` (default 2048) texts at once to the client, which batches them
    by ``batch_size`` and runs ``max_concurrency`` requests in parallel. The key is the ``api_key``
    field, which LlamaIndex keeps out of its events; dumps leave it out (``None``), so a dumped
    configuration is rebuilt with the key from ``HF_TOKEN``.
    """

    # Unknown arguments are errors, as in the LangChain adapter: a misspelt option must not pass.
    model_config = ConfigDict(extra="forbid")

    similarity_field: ClassVar[str] = "vector_similarity"

    vector_similarity: str | None = Field(
        default=None, description="Elasticsearch's service_settings.similarity (BaseEmbedding.similarity is a method)."
    )
    embed_batch_size: int = Field(default=2048, gt=0, le=2048)

    @field_serializer("api_key")
    def _no_key(self, value: SecretStr | None) -> None:
        return None

    @model_validator(mode="after")
    def _name_after_endpoint(self) -> Self:
        if self.model_name == "unknown":
            self.model_name = self.inference_id
        return self

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "HFInferEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._session.client.embed_query(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await self._session.aclient.embed_query(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._session.client.embed_documents([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._session.aclient.embed_documents([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._session.client.embed_documents(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._session.aclient.embed_documents(texts)
