"""The rerank task (Elasticsearch's ``hugging_face`` ``rerank``, TEI's ``/rerank``): its I/O-free flows and two clients.

The flows (``_core``, ``_flows``) decide everything: batches, 413/422 halving, best-chunk
scoring, the merged ranking; the clients (``_sync``, ``_async``) only hand the one public
method's flow to a driver. Nothing in ``_core`` or ``_flows`` performs I/O (an import-linter
contract checks it).
"""

from __future__ import annotations

from ._async import AsyncRerankClient
from ._flows import RerankResult
from ._sync import RerankClient

__all__ = ["AsyncRerankClient", "RerankClient", "RerankResult"]
