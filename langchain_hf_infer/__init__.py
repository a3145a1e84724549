"""LangChain integration of hf-infer: Hugging Face endpoint embeddings and reranking configured like Elasticsearch."""

from __future__ import annotations

try:
    from ._embeddings import HFInferEmbeddings
    from ._rerank import HFInferRerank
    from ._splitter import HFInferTextSplitter
except ImportError as err:  # a bare "No module named 'langchain_core'" does not say what to install
    if err.name is None or not err.name.startswith(("langchain_core", "langchain_text_splitters")):
        raise
    raise ImportError(
        f'langchain_hf_infer needs LangChain ({err.name} is not installed): pip install "hf-infer[langchain]"',
        name=err.name,
    ) from err

__all__ = ["HFInferEmbeddings", "HFInferRerank", "HFInferSparseEmbeddings", "HFInferTextSplitter"]


def __getattr__(name: str) -> object:
    # langchain-qdrant is the hybrid extra's: the package imports without it.
    if name != "HFInferSparseEmbeddings":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from ._sparse import HFInferSparseEmbeddings
    except ImportError as err:
        if err.name is None or not err.name.startswith(("langchain_qdrant", "qdrant_client")):
            raise
        raise ImportError(
            f'HFInferSparseEmbeddings needs langchain-qdrant ({err.name} is not installed): pip install "hf-infer[hybrid]"',
            name=err.name,
        ) from err
    return HFInferSparseEmbeddings
