"""The embedding methods both adapters share beyond their frameworks' own (chunks, streams, the vector size).

A task's adapter methods are apart from :class:`~._adapter.EmbeddingAdapter` (fields, key, session):
each hands one client call to the adapter's session, which holds the client for the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Literal, overload

from ..cache._cache import CacheStats
from ..text._chunking import ChunkEmbedding

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ._session import EmbeddingSession

__all__ = ["EmbeddingMethods"]


class EmbeddingMethods:
    """Chunk-level and streaming embedding through the adapter's :class:`~._session.EmbeddingSession`."""

    if TYPE_CHECKING:
        _session: EmbeddingSession

    @property
    def cache_stats(self) -> CacheStats:
        """The cache's hits and misses (in chunks) and failures, since the adapter's settings last changed."""
        return self._session.cache_stats

    @property
    def embedding_dimensions(self) -> int | None:
        """The vector size with no probe call: configured ``dimensions``, else learnt by the first call."""
        return self._session.dimensions

    def embed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """Chunk each text and return its chunks with offsets and vectors (chunk-level ingestion)."""
        return self._session.call(lambda client: client.embed_chunks(texts))

    async def aembed_chunks(self, texts: list[str]) -> list[list[ChunkEmbedding]]:
        """Async :meth:`embed_chunks`."""
        return await self._session.acall(lambda client: client.embed_chunks(texts))

    @overload
    def embed_iter(self, texts: Iterable[str], *, as_numpy: Literal[False] = False) -> Iterator[list[float]]: ...
    @overload
    def embed_iter(self, texts: Iterable[str], *, as_numpy: Literal[True]) -> Iterator[NDArray[np.float32]]: ...
    def embed_iter(
        self, texts: Iterable[str], *, as_numpy: bool = False
    ) -> Iterator[list[float]] | Iterator[NDArray[np.float32]]:
        """Stream documents' vectors in order, reading ``texts`` lazily (see ``EmbeddingClient.embed_iter``)."""
        if as_numpy:
            return self._session.iterate(lambda client: client.embed_iter(texts, as_numpy=True))
        return self._session.iterate(lambda client: client.embed_iter(texts))

    def embed_chunks_iter(self, texts: Iterable[str]) -> Iterator[list[ChunkEmbedding]]:
        """Stream each text's chunks with offsets and vectors, in order, reading ``texts`` lazily."""
        return self._session.iterate(lambda client: client.embed_chunks_iter(texts))

    @overload
    def aembed_iter(
        self, texts: Iterable[str] | AsyncIterable[str], *, as_numpy: Literal[False] = False
    ) -> AsyncIterator[list[float]]: ...
    @overload
    def aembed_iter(
        self, texts: Iterable[str] | AsyncIterable[str], *, as_numpy: Literal[True]
    ) -> AsyncIterator[NDArray[np.float32]]: ...
    def aembed_iter(
        self, texts: Iterable[str] | AsyncIterable[str], *, as_numpy: bool = False
    ) -> AsyncIterator[list[float]] | AsyncIterator[NDArray[np.float32]]:
        """Async :meth:`embed_iter`; ``texts`` may be an async iterable."""
        if as_numpy:
            return self._session.aiterate(lambda client: client.aembed_iter(texts, as_numpy=True))
        return self._session.aiterate(lambda client: client.aembed_iter(texts))

    def aembed_chunks_iter(self, texts: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[list[ChunkEmbedding]]:
        """Async :meth:`embed_chunks_iter`; ``texts`` may be an async iterable."""
        return self._session.aiterate(lambda client: client.aembed_chunks_iter(texts))
