"""What ``/embed_sparse`` answers with: a SPLADE-style model (``--sparse-model DIR``), or a stand-in.

A SPLADE model is a masked language model whose logits, per position and vocabulary entry, become
``log(1 + relu(logit))`` and are max-pooled over the text's positions (what TEI computes for a
model with ``pooling: splade``, and sentence-transformers' ``SparseEncoder`` with ``SpladePooling``).
Without one, the server weights the embedding model's own word pieces by log-saturated term
frequency, ``log(1 + count)``: a stand-in with which hybrid retrieval can be developed and tested
against this server (exact terms match exactly), not a learned expansion. ``/info``, ``--help``,
the start-up line and the README say which one is serving.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from ._loaded import Loaded
from ._model import Model, untruncated_copy

__all__ = ["STAND_IN", "Sparse"]

STAND_IN = (
    "the embedding model's word pieces weighted by log(1 + count) (a stand-in for development and tests, not a "
    "SPLADE model's learned weights: start the server with --sparse-model DIR to serve one)"
)

SparseVector = list[tuple[int, float]]


class Sparse(Loaded):
    """Sparse vectors from the SPLADE model loaded from ``path``, else from the embedding model's tokenizer."""

    def __init__(self, embedding: Model, path: str | None = None) -> None:
        super().__init__(embedding, path, "hf-infer-sparse-load")

    def _load(self, path: str) -> Any:
        from sentence_transformers import SparseEncoder

        return SparseEncoder(path, device="cpu", local_files_only=True)

    @property
    def weighting(self) -> str:
        """What the weights are, as ``/info`` says it."""
        return "splade" if self.path is not None else STAND_IN

    @property
    def prompts(self) -> dict[str, str]:
        """The prompts a request's ``prompt_name`` may name."""
        source = self.model if self.path is not None else self.embedding.model
        return dict(getattr(source, "prompts", {}) or {})

    @property
    def max_input_length(self) -> int | None:
        """The token limit: the SPLADE model's, else the embedding model's."""
        if self.path is None:
            return self.embedding.max_input_length if self.embedding.model is not None else None
        if self.model is None:
            return None
        return int(getattr(self.model, "max_seq_length", 0) or 512)

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens of each text, untruncated, special tokens included (the route's 422 check)."""
        return [len(e.ids) for e in self._untruncated().encode_batch(texts, add_special_tokens=True)]

    def _untruncated(self) -> Any:
        if self._backend is None:
            source = self.model if self.model is not None else self.embedding.model
            self._backend = untruncated_copy(source.tokenizer)
        return self._backend

    def vectors(self, texts: list[str], prompt_name: str | None, left: bool) -> list[SparseVector]:
        """Each text's non-zero ``(index, value)`` pairs, by index; over the limit, cut at ``left`` or the right end."""
        prompt = self.prompts.get(prompt_name, "") if prompt_name is not None else ""
        texts = [prompt + text for text in texts]
        if self.model is None:
            return [self._stand_in(text, left) for text in texts]
        with self._lock:
            tokenizer = self.model.tokenizer
            side = tokenizer.truncation_side
            tokenizer.truncation_side = "left" if left else "right"
            try:
                embeddings = self.model.encode(
                    texts, batch_size=32, convert_to_tensor=True, convert_to_sparse_tensor=True, show_progress_bar=False
                )
            finally:
                tokenizer.truncation_side = side
        rows = embeddings.coalesce()
        indices, values = rows.indices(), rows.values()
        out: list[SparseVector] = [[] for _ in texts]
        for (row, column), value in zip(indices.t().tolist(), values.tolist(), strict=True):
            if value != 0.0:  # TEI sends the non-zero entries only
                out[row].append((column, float(value)))
        return [sorted(pairs) for pairs in out]

    def _stand_in(self, text: str, left: bool) -> SparseVector:
        encoding = self._untruncated().encode(text, add_special_tokens=True)
        special = set(self.embedding.model.tokenizer.all_special_ids)
        ids = [i for i in encoding.ids if i not in special]
        limit = max(0, (self.max_input_length or 512) - 2)  # the model's own [CLS] and [SEP] count too
        ids = ids[-limit:] if left and len(ids) > limit else ids[:limit]
        counts = Counter(ids)
        return sorted((index, math.log1p(count)) for index, count in counts.items())
