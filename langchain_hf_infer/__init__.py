"""LangChain integration of hf-infer: Hugging Face endpoint embeddings configured like Elasticsearch."""

from __future__ import annotations

from ._splitter import HFInferTextSplitter

__all__ = ["HFInferTextSplitter"]
