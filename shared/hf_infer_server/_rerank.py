"""What ``/rerank`` scores with: a sentence-transformers ``CrossEncoder`` (``--rerank-model DIR``), or a stand-in.

Without a cross-encoder the server scores a pair by the cosine similarity of the served embedding
model's vectors of the query and the passage: a stand-in so that a reranker can be developed and
tested against this server, not a relevance model (a cross-encoder reads query and passage
together; cosine similarity of two independent vectors is what retrieval already ranked by).
``/info``, ``--help`` and the README say which one is serving.
"""

from __future__ import annotations

import math
from typing import Any

from ._loaded import Loaded
from ._model import Model, untruncated_copy

__all__ = ["STAND_IN", "Reranker"]

STAND_IN = (
    "cosine similarity of the embedding model's vectors (a stand-in for development and tests, not a "
    "cross-encoder's relevance: start the server with --rerank-model DIR to serve one)"
)


class Reranker(Loaded):
    """Scores (query, passage) pairs with the cross-encoder loaded from ``path``, else the embedding model's cosine."""

    def __init__(self, embedding: Model, path: str | None = None) -> None:
        super().__init__(embedding, path, "hf-infer-rerank-load")

    def _load(self, path: str) -> Any:
        from sentence_transformers import CrossEncoder

        return CrossEncoder(path, device="cpu", local_files_only=True)

    @property
    def scoring(self) -> str:
        """What the scores are, as ``/info`` says it."""
        return "cross-encoder" if self.path is not None else STAND_IN

    @property
    def max_input_length(self) -> int | None:
        """The pair's token limit: the cross-encoder's, else the embedding model's."""
        if self.path is None:
            return self.embedding.max_input_length if self.embedding.model is not None else None
        if self.model is None:
            return None
        return int(getattr(self.model, "max_seq_length", None) or getattr(self.model, "max_length", 0) or 512)

    def pair_token_counts(self, query: str, texts: list[str]) -> list[int]:
        """Tokens of each (query, passage) pair, untruncated, special tokens included."""
        if self._backend is None:
            self._backend = untruncated_copy(
                self.model.tokenizer if self.model is not None else self.embedding.model.tokenizer
            )
        encodings = self._backend.encode_batch([(query, text) for text in texts], add_special_tokens=True)
        return [len(encoding.ids) for encoding in encodings]

    def scores(self, query: str, texts: list[str], raw: bool, left: bool) -> list[float]:
        """Each passage's score against ``query``: a sigmoid of the cross-encoder's logit (``raw``: the logit).

        The stand-in gives the cosine similarity ``c`` as ``(c + 1) / 2``, in [0, 1] as a sigmoid
        is (``raw``: ``c``). ``left``: a pair over the limit loses its start (the cross-encoder's
        tokenizer cuts on the left); the stand-in cuts on the right, as ``/embed`` does.
        """
        if self.model is None:
            vectors = self.embedding.encode([query, *texts], True, None, True)
            cosines = [float(c) for c in vectors[1:] @ vectors[0]]  # unit vectors: the dot product is the cosine
            return cosines if raw else [(c + 1.0) / 2.0 for c in cosines]
        import torch

        with self._lock:
            tokenizer = self.model.tokenizer
            side = tokenizer.truncation_side
            tokenizer.truncation_side = "left" if left else "right"
            try:
                logits = self.model.predict(
                    [(query, text) for text in texts],
                    batch_size=32,
                    activation_fn=torch.nn.Identity(),
                    show_progress_bar=False,
                    convert_to_numpy=True,
                )
            finally:
                tokenizer.truncation_side = side
        values = [float(x) for x in logits.reshape(len(texts), -1)[:, 0]]
        return values if raw else [_sigmoid(x) for x in values]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
