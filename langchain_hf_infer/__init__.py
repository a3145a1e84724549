"""LangChain adapter for hf-infer."""
