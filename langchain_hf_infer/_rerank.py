"""``HFInferRerank``: a LangChain document compressor that reranks through a Hugging Face / TEI ``/rerank`` endpoint."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict

from hf_infer_core import RerankResult
from hf_infer_core.integration._rerank import RerankAdapter

__all__ = ["HFInferRerank"]


class HFInferRerank(RerankAdapter, BaseDocumentCompressor):
    """Rerank retrieved documents with a cross-encoder endpoint, configured like Elasticsearch's rerank task.

    ``compress_documents`` returns the ``top_n`` best documents (the field; ``None``: all), best
    first, each a copy whose ``metadata["relevance_score"]`` holds its score (langchain-cohere's
    convention); ``acompress_documents`` is natively async. Requests are batched (up to the
    endpoint's ``max_client_batch_size``), run concurrently, rate limited and retried, as the
    embeddings' are. ``url`` defaults to ``$HF_INFER_URL``, ``api_key`` to ``$HF_TOKEN`` then
    ``$HUGGINGFACEHUB_API_TOKEN``; a URL with no path means the server's ``/rerank``.

    Example:
        >>> reranker = HFInferRerank(url="http://127.0.0.1:8080", top_n=3)
        >>> retriever = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=base)

    Or from the body of an Elasticsearch ``PUT _inference/rerank/<id>`` request:

        >>> reranker = HFInferRerank.from_inference_endpoint(body, inference_id="my-reranker")
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The ``top_n`` documents most relevant to ``query``, best first, each with its ``relevance_score``."""
        if not documents:
            return []
        return _ranked(documents, self.rank(query, [document.page_content for document in documents]))

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """:meth:`compress_documents` with asyncio (native, no thread hop)."""
        if not documents:
            return []
        return _ranked(documents, await self.arank(query, [document.page_content for document in documents]))


def _ranked(documents: Sequence[Document], results: list[RerankResult]) -> list[Document]:
    # Copies: the caller's documents (a vector store's, often cached) keep their metadata.
    return [
        documents[r.index].model_copy(
            update={"metadata": {**documents[r.index].metadata, "relevance_score": r.relevance_score}}
        )
        for r in results
    ]
