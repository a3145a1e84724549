"""LlamaIndex integration of hf-infer: Hugging Face endpoint embeddings and reranking configured like Elasticsearch."""

from __future__ import annotations

try:
    from ._embedding import HFInferEmbedding
    from ._node_parser import HFInferNodeParser
    from ._rerank import HFInferRerank
except ImportError as err:  # a bare "No module named 'llama_index'" does not say what to install
    if err.name is None or not err.name.startswith("llama_index"):
        raise
    raise ImportError(
        f'llama_index_hf_infer needs LlamaIndex ({err.name} is not installed): pip install "hf-infer[llama-index]"',
        name=err.name,
    ) from err

__all__ = [
    "HFInferEmbedding",
    "HFInferNodeParser",
    "HFInferRerank",
    "HFInferSparseEmbedding",
    "qdrant_sparse_functions",
]


def __getattr__(name: str) -> object:
    # BaseSparseEmbedding is newer than the oldest llama-index-core supported: loaded when asked for.
    if name not in ("HFInferSparseEmbedding", "qdrant_sparse_functions"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _sparse

    return getattr(_sparse, name)
