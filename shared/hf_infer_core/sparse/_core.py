"""The sparse embedding task's I/O-free core: TEI's ``/embed_sparse`` bodies, its answers checked and stored.

:class:`SparseCore` is the chunked pipeline's core (batches, 413 halving, token fitting, cache
keys) for sparse vectors. The model's identity (``cache/_identity.py``) is matched on a dense
sketch of the probe's sparse vector: 64 signed sums of its weights, the sign of each index drawn
from a hash of it, so a model whose vocabulary ids or weights moved gives another sketch, and the
same model the same one (within the tolerance, as for dense vectors).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Self, cast

from ..config import InferenceEndpoint
from ..pipeline._core import ChunkedCore
from ..protocol._retry import Jitter
from ..protocol._steps import HttpResult
from ..text._fit import LocalTokenizer
from ._options import SparseEmbeddingOptions
from ._wire import SparseVector, decode_sparse, encode_sparse, sparse_body, sparse_vectors

__all__ = ["SparseCore", "sketch"]

_SKETCH = 64


def sketch(vector: SparseVector) -> list[float]:
    """A dense fingerprint of ``vector``: for each of 64 rows, the sum of its weights signed by a hash of their index."""
    rows = [0.0] * _SKETCH
    for index, value in vector.items():
        bits = int.from_bytes(hashlib.blake2b(index.to_bytes(8, "little"), digest_size=8).digest(), "little")
        for row in range(_SKETCH):
            rows[row] += value if bits >> row & 1 else -value
    return rows


class SparseCore(ChunkedCore):
    """The sparse task's core: everything both sparse clients share, and no I/O."""

    route: ClassVar[str] = "/embed_sparse"
    options: SparseEmbeddingOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: SparseEmbeddingOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
        counter: LocalTokenizer | None = None,
    ) -> None:
        super().__init__(endpoint, options, clock=clock, rng=rng, counter=counter)

    @property
    def task_url(self) -> str:
        """TEI's ``/embed_sparse``: the configured URL, or beside a TEI embedding route it was given."""
        url = self.endpoint.url.rstrip("/")
        for route in ("/embed_sparse", "/embed"):
            if url.endswith(route):
                return url.removesuffix(route) + "/embed_sparse"
        return self.info_url.removesuffix("/info") + "/embed_sparse"

    @property
    def info_url(self) -> str:
        """TEI's ``/info`` beside the sparse route, or beside a TEI embedding route the URL names."""
        url = self.endpoint.url.split("?", 1)[0].rstrip("/")
        for route in ("/embed_sparse", "/embed"):
            if url.endswith(route):
                return url.removesuffix(route) + "/info"
        return url + "/info"

    def build_body(self, texts: Sequence[str], query: bool = False, probe: bool = False) -> bytes:
        """``{"inputs": [...]}`` with the request options of its kind; ``probe``: the identity probe last."""
        return sparse_body(self.with_probe(texts, probe), self.query_extras if query else self.extras)

    def parse(self, result: HttpResult, count: int, *, arrays: bool = False) -> list[object]:
        """The ``count`` sparse vectors of a 2xx answer, checked."""
        return list(sparse_vectors(result.status_code, result.body, count, self._redact))

    def request_parts(self, query: bool) -> dict[str, object]:
        """TEI's request options and the prompt of the text's kind."""
        return {"request": self.query_extras if query else self.extras, "task": "sparse_embedding"}

    def probe_vector(self, result: object) -> list[float]:
        """The probe's sparse vector as its dense sketch (see the module docstring)."""
        return sketch(cast(SparseVector, result))

    def encode(self, result: object, pooled: bool = False) -> bytes:
        """A sparse vector's stored form (indices and float64 weights, bit-exact)."""
        return encode_sparse(cast(SparseVector, result))

    def decode(self, blob: bytes | None, arrays: bool, pooled: bool = False) -> object:
        """A stored sparse vector, or ``None``."""
        return decode_sparse(blob)

    def adopt(self, other: Self) -> None:
        """Take what ``other`` (a core of the same endpoint) learnt."""
        super().adopt(other)
