"""``HFInferEmbeddings``: LangChain embeddings from a Hugging Face endpoint configured like Elasticsearch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict

from hf_infer_core.integration._adapter import EmbeddingAdapter

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["HFInferEmbeddings"]


class HFInferEmbeddings(EmbeddingAdapter, Embeddings):
    """Embeddings from a Hugging Face Inference Endpoint or TEI server, configured like Elasticsearch.

    Long documents are chunked as Elasticsearch chunks them (``chunking_settings``) and their
    chunk vectors combined; requests are batched, run concurrently, rate limited and retried.
    ``url`` defaults to ``$HF_INFER_URL``, ``api_key`` to ``$HF_TOKEN`` then
    ``$HUGGINGFACEHUB_API_TOKEN``; with no key at all no ``Authorization`` header is sent (a local
    TEI server). Serialisation is pydantic's: dumps never hold the key.

    Example:
        >>> embeddings = HFInferEmbeddings(url="http://127.0.0.1:8080/embed", api_key="hf_...")
        >>> vectors = embeddings.embed_documents(["some text", "another text"])

    Or from the body of an Elasticsearch ``PUT _inference/text_embedding/<id>`` request:

        >>> embeddings = HFInferEmbeddings.from_inference_endpoint(body, inference_id="my-id")
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    similarity: str | None = None
    """Elasticsearch's ``service_settings.similarity``: ``cosine``, ``dot_product`` or ``l2_norm``."""

    @overload
    def embed_documents(self, texts: list[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    def embed_documents(self, texts: list[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    def embed_documents(self, texts: list[str], *, as_numpy: bool = False) -> list[list[float]] | NDArray[np.float32]:
        """Embed documents (chunked with ``chunking_settings``, chunk vectors combined).

        ``as_numpy=True`` returns one float32 array of shape (texts, dimensions).
        """
        if as_numpy:
            return self._session.call(lambda client: client.embed_documents(texts, as_numpy=True))
        return self._session.call(lambda client: client.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (``query_prefix`` prepended, not chunked)."""
        return self._session.call(lambda client: client.embed_query(text))

    @overload
    async def aembed_documents(self, texts: list[str], *, as_numpy: Literal[False] = False) -> list[list[float]]: ...
    @overload
    async def aembed_documents(self, texts: list[str], *, as_numpy: Literal[True]) -> NDArray[np.float32]: ...
    async def aembed_documents(
        self, texts: list[str], *, as_numpy: bool = False
    ) -> list[list[float]] | NDArray[np.float32]:
        """Embed documents with asyncio (native, no thread hop); ``as_numpy`` as in :meth:`embed_documents`."""
        if as_numpy:
            return await self._session.acall(lambda client: client.embed_documents(texts, as_numpy=True))
        return await self._session.acall(lambda client: client.embed_documents(texts))

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one query with asyncio."""
        return await self._session.acall(lambda client: client.embed_query(text))
