"""The embedding task: its I/O-free flows (``_core``, ``_flows``, ``_stream``, ``_wire``) and its two clients.

The flows decide everything (batches, token fitting, 413 halving, pooling, stream order); the
clients (``_sync``, ``_async``) only hand each public method's flow to a driver. Nothing in
``_core``, ``_flows``, ``_stream`` or ``_wire`` performs I/O (an import-linter contract checks it).
"""

from __future__ import annotations

from ._async import AsyncEmbeddingClient
from ._sync import EmbeddingClient

__all__ = ["AsyncEmbeddingClient", "EmbeddingClient"]
