"""``HFInferSparseEmbeddings``: langchain-qdrant's ``SparseEmbeddings`` from TEI's ``/embed_sparse``, for hybrid retrieval."""

from __future__ import annotations

from langchain_qdrant import SparseEmbeddings, SparseVector
from pydantic import ConfigDict

from hf_infer_core import SparseVector as Weights
from hf_infer_core.integration._sparse import SparseEmbeddingAdapter

__all__ = ["HFInferSparseEmbeddings"]


def _qdrant(vector: Weights) -> SparseVector:
    return SparseVector(indices=list(vector), values=list(vector.values()))


class HFInferSparseEmbeddings(SparseEmbeddingAdapter, SparseEmbeddings):
    """Sparse vectors from a Hugging Face / TEI endpoint serving a SPLADE model, configured like Elasticsearch.

    The sparse half of ``QdrantVectorStore(..., sparse_embedding=..., retrieval_mode=RetrievalMode.HYBRID)``:
    ``embed_documents`` and ``embed_query`` return langchain-qdrant's ``SparseVector`` (indices in
    order, their weights); the async twins are native. A long document is chunked with
    ``chunking_settings`` and its sparse vector is the element-wise maximum of its chunks'. Same
    endpoint fields and environment fallbacks as ``HFInferEmbeddings`` (``url`` from
    ``$HF_INFER_URL``: a TEI server's root or its ``/embed_sparse``).

    Example:
        >>> sparse = HFInferSparseEmbeddings(url="http://127.0.0.1:8080")
        >>> store = QdrantVectorStore.from_texts(texts, dense, sparse_embedding=sparse, retrieval_mode=RetrievalMode.HYBRID)
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """One sparse vector per text."""
        return [_qdrant(v) for v in self.sparse_documents(texts)]

    def embed_query(self, text: str) -> SparseVector:
        """The sparse vector of one query."""
        return _qdrant(self.sparse_query(text))

    async def aembed_documents(self, texts: list[str]) -> list[SparseVector]:
        """:meth:`embed_documents` with asyncio (native)."""
        return [_qdrant(v) for v in await self.asparse_documents(texts)]

    async def aembed_query(self, text: str) -> SparseVector:
        """:meth:`embed_query` with asyncio (native)."""
        return _qdrant(await self.asparse_query(text))
