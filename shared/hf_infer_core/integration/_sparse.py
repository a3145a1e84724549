"""What both sparse adapters share: their fields (the sparse options, the chunking settings) and their calls.

``langchain_hf_infer.HFInferSparseEmbeddings`` (langchain-qdrant's ``SparseEmbeddings``) and
``llama_index_hf_infer.HFInferSparseEmbedding`` (LlamaIndex's ``BaseSparseEmbedding``) add only
their framework's base class and its vector type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ..config import InferenceEndpoint
from ..sparse._options import SparseEmbeddingOptions
from ..sparse._wire import SparseVector
from ._adapter import ADAPTER_CONFIG, EndpointAdapter
from ._session import SparseEmbeddingSession

__all__ = ["SparseEmbeddingAdapter"]


class SparseEmbeddingAdapter(EndpointAdapter, SparseEmbeddingOptions):
    """Endpoint and client options of the sparse adapters, and Elasticsearch's ``chunking_settings``."""

    model_config = ADAPTER_CONFIG
    task_type: ClassVar[str] = "sparse_embedding"

    chunking_settings: dict[str, Any] | None = None

    _session: SparseEmbeddingSession

    def _task_settings(self) -> dict[str, Any]:
        return {"chunking_settings": self.chunking_settings}

    @classmethod
    def _task_fields(cls, endpoint: InferenceEndpoint) -> dict[str, object]:
        return {"chunking_settings": endpoint.chunking_settings.to_dict()}

    @property
    def client_options(self) -> SparseEmbeddingOptions:
        """The client options, as the clients use them."""
        return self._session.options

    def sparse_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text (a long one chunked, its chunks pooled by their maximum)."""
        return self._session.call(lambda client: client.embed_documents(texts))

    def sparse_query(self, text: str) -> SparseVector:
        """The sparse vector of one query."""
        return self._session.call(lambda client: client.embed_query(text))

    async def asparse_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """:meth:`sparse_documents` with asyncio (native, no thread hop)."""
        return await self._session.acall(lambda client: client.embed_documents(texts))

    async def asparse_query(self, text: str) -> SparseVector:
        """:meth:`sparse_query` with asyncio."""
        return await self._session.acall(lambda client: client.embed_query(text))
