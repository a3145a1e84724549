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

__all__ = ["HFInferEmbedding", "HFInferNodeParser", "HFInferRerank"]
