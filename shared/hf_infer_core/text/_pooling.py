"""One vector per text from its chunks' vectors, and the chunked results' shapes; no I/O.

``embed_documents`` combines a text's chunk vectors (the mean weighted by each chunk's words,
L2-normalised, or the first chunk's); ``embed_chunks`` pairs chunks with their vectors; an input
the endpoint refused whole and that was split (:class:`Pieces`) becomes its pieces first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..config._options import Pooling
from ._chunking import Chunk, ChunkEmbedding

T = TypeVar("T")

__all__ = ["Pieces", "chunk_embeddings", "expand_pieces", "per_text", "pool", "pool_all", "pool_text"]


@dataclass(frozen=True, slots=True)
class Pieces:
    """What one chunked input became when the endpoint refused it whole (413) and it was split.

    ``parts`` are ``(start, end, vector)``, offsets into the input's text (without the prefix).
    """

    parts: tuple[tuple[int, int, object], ...]


def pool_all(pooling: Pooling, chunks: Sequence[Sequence[Chunk]], vectors: Sequence[list[float]]) -> list[list[float]]:
    """One vector per text from the flat chunk vectors (``chunks[i]`` are text i's chunks, in order)."""
    return [pool_text(pooling, text_chunks, text_vectors) for text_chunks, text_vectors in per_text(chunks, vectors)]


def pool_text(pooling: Pooling, chunks: Sequence[Chunk], vectors: Sequence[list[float]]) -> list[float]:
    """One text's vector from its chunks' vectors (see :func:`pool` for two or more)."""
    # A one-chunk text (the common case) keeps its vector object: parsed for this call only.
    return vectors[0] if len(chunks) == 1 else pool(pooling, chunks, vectors)


def pool(pooling: Pooling, chunks: Sequence[Chunk], vectors: Sequence[list[float]]) -> list[float]:
    """Combine a text's chunk vectors (two or more) into one (documented rule: see ``embed_documents``).

    Lists give a list; float32 numpy rows (base64 with ``as_numpy``) give a float64 row,
    computed in the same order with the same exact norm, so both paths agree.
    """
    weights = [max(c.word_count, 0) for c in chunks]
    if sum(weights) == 0:
        weights = [1] * len(vectors)
    total = float(sum(weights))
    if not isinstance(vectors[0], list):
        return _pool_rows(pooling, weights, total, vectors)
    if pooling == "first":
        return list(vectors[0])
    dims = len(vectors[0])
    mean = [0.0] * dims
    for weight, vector in zip(weights, vectors, strict=True):
        if weight:
            factor = weight / total
            mean = [m + factor * v for m, v in zip(mean, vector, strict=True)]
    norm = math.sqrt(math.fsum(m * m for m in mean))
    return [m / norm for m in mean] if norm > 0 else mean


def _pool_rows(pooling: Pooling, weights: list[int], total: float, rows: Sequence[Any]) -> Any:
    import numpy

    if pooling == "first":
        return rows[0]
    mean = numpy.zeros(len(rows[0]), dtype=numpy.float64)
    for weight, row in zip(weights, rows, strict=True):
        if weight:
            mean = mean + (weight / total) * row.astype(numpy.float64)
    norm = math.sqrt(math.fsum(mean * mean))  # exact, as the list path's
    return mean / norm if norm > 0 else mean


def expand_pieces(chunks: Sequence[Chunk], vectors: Sequence[object]) -> tuple[list[Chunk], list[object]]:
    """One text's chunks and vectors with each split input (:class:`Pieces`) replaced by its pieces."""
    if not any(isinstance(v, Pieces) for v in vectors):
        return list(chunks), list(vectors)
    out_chunks: list[Chunk] = []
    out_vectors: list[object] = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        if not isinstance(vector, Pieces):
            out_chunks.append(chunk)
            out_vectors.append(vector)
            continue
        origin = chunk.source or (chunk.start, chunk.end)
        for start, end, piece_vector in vector.parts:
            out_chunks.append(Chunk(chunk.start + start, chunk.start + end, chunk.text[start:end], source=origin))
            out_vectors.append(piece_vector)
    return out_chunks, out_vectors


def per_text(chunks: Sequence[Sequence[Chunk]], vectors: Sequence[T]) -> list[tuple[Sequence[Chunk], Sequence[T]]]:
    """Split flat chunk ``vectors`` (any task's results) into each text's: ``chunks[i]`` are text i's chunks, in order."""
    out: list[tuple[Sequence[Chunk], Sequence[T]]] = []
    position = 0
    for text_chunks in chunks:
        out.append((text_chunks, vectors[position : position + len(text_chunks)]))
        position += len(text_chunks)
    return out


def chunk_embeddings(chunks: Sequence[Chunk], vectors: Sequence[list[float]]) -> list[ChunkEmbedding]:
    """One text's chunks with their vectors, as the ``embed_chunks`` methods return them."""
    return [ChunkEmbedding(c.text, c.start, c.end, v, c) for c, v in zip(chunks, vectors, strict=True)]
