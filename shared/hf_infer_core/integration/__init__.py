"""What the framework adapters and Ray share: adapter fields, the lazy session, ``embed_dataset``.

``hf_infer_core.ray`` is the public home of the Ray integration; the adapters live in
``langchain_hf_infer`` and ``llama_index_hf_infer``.
"""

from __future__ import annotations

from ._adapter import EmbeddingAdapter, EndpointAdapter
from ._rerank import RerankAdapter
from ._session import EmbeddingSession, RerankSession, SparseEmbeddingSession
from ._sparse import SparseEmbeddingAdapter

__all__ = [
    "EmbeddingAdapter",
    "EmbeddingSession",
    "EndpointAdapter",
    "RerankAdapter",
    "RerankSession",
    "SparseEmbeddingAdapter",
    "SparseEmbeddingSession",
]

# The adapter bases' names before each carried its task's, kept for one release.
_RENAMED = {"AdapterOptions": "EmbeddingAdapter", "RerankAdapterOptions": "RerankAdapter"}


def __getattr__(name: str) -> object:
    """The old names, each with a DeprecationWarning naming the new one."""
    if name not in _RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    warnings.warn(
        f"{__name__}.{name} is renamed {_RENAMED[name]}; the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[_RENAMED[name]]
