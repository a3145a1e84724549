"""LlamaIndex integration of hf-infer: Hugging Face endpoint embeddings configured like Elasticsearch."""

from __future__ import annotations

from ._embedding import HFInferEmbedding
from ._node_parser import HFInferNodeParser

__all__ = ["HFInferEmbedding", "HFInferNodeParser"]
