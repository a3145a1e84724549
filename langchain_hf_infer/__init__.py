"""LangChain integration of hf-infer: Hugging Face endpoint embeddings configured like Elasticsearch."""

from __future__ import annotations

from ._embeddings import HFInferEmbeddings
from ._splitter import HFInferTextSplitter

__all__ = ["HFInferEmbeddings", "HFInferTextSplitter"]
