"""Text: ICU word segmentation, Elasticsearch's chunkers, fitting chunks to a token limit, pooling."""

from __future__ import annotations

from ._chunking import Chunk, ChunkEmbedding, chunk_text, count_words, resolve_chunking_settings

__all__ = ["Chunk", "ChunkEmbedding", "chunk_text", "count_words", "resolve_chunking_settings"]
