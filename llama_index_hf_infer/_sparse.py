"""``HFInferSparseEmbedding``: LlamaIndex sparse embeddings from TEI's ``/embed_sparse``, for hybrid retrieval."""

from __future__ import annotations

from collections.abc import Callable

from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding, SparseEmbedding
from llama_index.core.bridge.pydantic import ConfigDict, SecretStr, field_serializer, model_validator

from hf_infer_core.integration._sparse import SparseEmbeddingAdapter

__all__ = ["HFInferSparseEmbedding", "qdrant_sparse_functions"]


class HFInferSparseEmbedding(BaseSparseEmbedding, SparseEmbeddingAdapter):
    """LlamaIndex sparse embeddings (``{vocabulary id: weight}``) from an endpoint serving a SPLADE model.

    A ``BaseSparseEmbedding``: sync and native async, single and batch methods, LlamaIndex's
    events; same endpoint fields and environment fallbacks as ``HFInferEmbedding``. A long text
    is chunked with ``chunking_settings``, its sparse vector the element-wise maximum of its
    chunks'. For Qdrant's hybrid mode, :func:`qdrant_sparse_functions` gives the store its
    ``sparse_doc_fn`` and ``sparse_query_fn``. Dumps leave the key out, as ``HFInferEmbedding``'s.
    """

    model_config = ConfigDict(extra="forbid")

    @field_serializer("api_key")
    def _no_key(self, value: SecretStr | None) -> None:
        return None

    @model_validator(mode="after")
    def _name_after_endpoint(self) -> HFInferSparseEmbedding:
        if self.model_name == "unknown":
            self.__dict__["model_name"] = self.model or self.inference_id
        return self

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "HFInferSparseEmbedding"

    def _get_query_embedding(self, query: str) -> SparseEmbedding:
        return self.sparse_query(query)

    async def _aget_query_embedding(self, query: str) -> SparseEmbedding:
        return await self.asparse_query(query)

    def _get_text_embedding(self, text: str) -> SparseEmbedding:
        (vector,) = self.sparse_documents([text])
        return vector

    async def _aget_text_embedding(self, text: str) -> SparseEmbedding:
        (vector,) = await self.asparse_documents([text])
        return vector

    def _get_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return list(self.sparse_documents(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return list(await self.asparse_documents(texts))


def qdrant_sparse_functions(
    model: HFInferSparseEmbedding,
) -> tuple[
    Callable[[list[str]], tuple[list[list[int]], list[list[float]]]],
    Callable[[list[str]], tuple[list[list[int]], list[list[float]]]],
]:
    """``(sparse_doc_fn, sparse_query_fn)`` for ``QdrantVectorStore(enable_hybrid=True, ...)`` over ``model``."""

    def split(vectors: list[SparseEmbedding]) -> tuple[list[list[int]], list[list[float]]]:
        return [list(v) for v in vectors], [list(v.values()) for v in vectors]

    def documents(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        return split(model.get_text_embedding_batch(texts))

    def queries(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        return split([model.get_query_embedding(text) for text in texts])

    return documents, queries
