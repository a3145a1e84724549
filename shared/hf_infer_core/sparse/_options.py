"""The sparse embedding task's options: the chunked pipeline's and TEI's ``/embed_sparse`` request options."""

from __future__ import annotations

from ..pipeline._options import ChunkedOptionArgs, ChunkedOptions

__all__ = ["SparseEmbeddingOptionArgs", "SparseEmbeddingOptions"]


class SparseEmbeddingOptions(ChunkedOptions):
    """The sparse clients' options: :class:`ChunkedOptions` and TEI's ``/embed_sparse`` fields (sent only when set)."""

    # TEI's /embed_sparse takes the request options of ChunkedOptions (truncation, prompts), and no more.


class SparseEmbeddingOptionArgs(ChunkedOptionArgs, total=False):
    """:class:`SparseEmbeddingOptions` as keyword arguments (same names and types)."""
