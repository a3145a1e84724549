"""The embedding task: its options, its I/O-free core and flows (``_core``, ``_flows``, ``_wire``) and its two clients.

The flows compose the chunked pipeline's (``pipeline/``: batches, token fitting, 413 halving,
the cache, stream order) and pool chunk vectors; the clients (``_sync``, ``_async``) only hand
each public method's flow to a driver. Nothing in ``_core``, ``_flows`` or ``_wire`` performs I/O
(an import-linter contract checks it).
"""

from __future__ import annotations

from ._async import AsyncEmbeddingClient
from ._options import EmbeddingOptionArgs, EmbeddingOptions
from ._sync import EmbeddingClient

__all__ = ["AsyncEmbeddingClient", "EmbeddingClient", "EmbeddingOptionArgs", "EmbeddingOptions"]
