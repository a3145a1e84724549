"""LlamaIndex adapter for hf-infer."""
