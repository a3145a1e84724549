"""The sparse embedding task (TEI's ``/embed_sparse``, Elasticsearch's ``sparse_embedding``), on the chunked pipeline.

Its options, its I/O-free core and flows (``_core``, ``_flows``, ``_wire``: new modules only; the
pipeline, drivers and protocol are the embeddings') and its two clients. Nothing in ``_core``,
``_flows``, ``_options`` or ``_wire`` performs I/O (an import-linter contract checks it).
"""

from __future__ import annotations

from ._async import AsyncSparseEmbeddingClient
from ._options import SparseEmbeddingOptionArgs, SparseEmbeddingOptions
from ._sync import SparseEmbeddingClient
from ._wire import SparseVector

__all__ = [
    "AsyncSparseEmbeddingClient",
    "SparseEmbeddingClient",
    "SparseEmbeddingOptionArgs",
    "SparseEmbeddingOptions",
    "SparseVector",
]
