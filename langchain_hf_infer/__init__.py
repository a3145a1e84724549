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

__all__ = ["HFInferEmbeddings", "HFInferRerank", "HFInferTextSplitter"]
