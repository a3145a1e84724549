"""What the framework adapters and Ray share: adapter fields, the lazy session, ``embed_dataset``.

``hf_infer_core.ray`` is the public home of the Ray integration; the adapters live in
``langchain_hf_infer`` and ``llama_index_hf_infer``.
"""

from __future__ import annotations

from ._adapter import AdapterOptions, EndpointAdapter
from ._rerank import RerankAdapterOptions
from ._session import EmbeddingSession, RerankSession

__all__ = ["AdapterOptions", "EmbeddingSession", "EndpointAdapter", "RerankAdapterOptions", "RerankSession"]
