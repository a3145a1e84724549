"""The drivers: the threaded :class:`EmbeddingClient` and the asyncio :class:`AsyncEmbeddingClient` perform the protocol's steps."""

from __future__ import annotations

from ._async import AsyncEmbeddingClient
from ._sync import EmbeddingClient

__all__ = ["AsyncEmbeddingClient", "EmbeddingClient"]
