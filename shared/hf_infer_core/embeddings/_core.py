"""The embedding task's I/O-free core: its request bodies, its vectors parsed and stored.

:class:`EmbeddingCore` is the chunked pipeline's core (:class:`~..pipeline._core.ChunkedCore`:
batches, 413 halving, token fitting, cache keys) for dense vectors: TEI's ``/embed`` body with
its request options (or the base64 route's), the vectors checked and their size learnt, and a
vector's stored form (float32 for the base64 route, float64 for JSON, bit-exact).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from ..base._errors import EndpointError
from ..cache._keys import decode_vector, encode_vector
from ..config import InferenceEndpoint
from ..pipeline._core import ChunkedCore
from ..protocol._retry import Jitter
from ..protocol._steps import HttpResult
from ..text._fit import LocalTokenizer
from ._options import EmbeddingOptions
from ._wire import base64_body, base64_vectors, json_body, json_vectors

__all__ = ["EmbeddingCore"]


class EmbeddingCore(ChunkedCore):
    """The embedding task's core: everything both embedding clients share, and no I/O."""

    route: ClassVar[str] = "/embed"
    options: EmbeddingOptions

    def __init__(
        self,
        endpoint: InferenceEndpoint,
        options: EmbeddingOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Jitter | None = None,
        counter: LocalTokenizer | None = None,
    ) -> None:
        super().__init__(endpoint, options, clock=clock, rng=rng, counter=counter)
        # dimensions: TEI truncates (and renormalises) Matryoshka vectors to it (from 1.8).
        self.asked_dimensions = endpoint.service_settings.dimensions
        normalize: dict[str, object] = {"normalize": options.normalize} if options.normalize is not None else {}
        dimensions: dict[str, object] = {"dimensions": self.asked_dimensions} if self.asked_dimensions else {}
        self.extras, self.query_extras = self.request_options(options, normalize, dimensions)
        self.dimensions: int | None = endpoint.service_settings.dimensions
        self._float32 = options.wire_format == "base64"

    def build_body(self, texts: Sequence[str], query: bool = False, probe: bool = False) -> bytes:
        """A batch's body: ``{"inputs": [...]}`` with the request options of its kind, or TEI's base64 request.

        ``query``: the texts are queries (``query_prompt_name``). ``probe``: the identity probe
        goes last (its vector certifies the others', see cache/_identity.py).
        """
        texts = self.with_probe(texts, probe)
        if self._float32:
            return base64_body(texts, self.endpoint.inference_id, self.asked_dimensions)
        return json_body(texts, self.query_extras if query else self.extras)

    @property
    def task_url(self) -> str:
        """Where batches go: the configured URL, or TEI's ``/v1/embeddings`` beside it for base64."""
        if self._float32:
            return self.info_url.removesuffix("/info") + "/v1/embeddings"
        return self.endpoint.url

    def adopt(self, other: Self) -> None:
        """Take what ``other`` (a core of the same endpoint) learnt, the vector size too."""
        super().adopt(other)
        self.dimensions = self.dimensions or other.dimensions

    def parse(self, result: HttpResult, count: int, *, arrays: bool = False) -> list[Any]:
        """Return the ``count`` vectors of a 2xx response, or raise the error class it maps to.

        ``arrays``: with ``wire_format="base64"``, each vector is a float32 numpy row over the
        received bytes instead of a list of Python floats (for ``as_numpy=True``). The vector
        size is learnt from the first answer, as Elasticsearch learns it.
        """
        if self._float32:
            vectors, dims = base64_vectors(
                result.status_code, result.body, count, self.dimensions, arrays, self._redact, self.asked_dimensions
            )
        else:
            vectors, dims = json_vectors(
                result.status_code, result.body, count, self.dimensions, self._redact, self.asked_dimensions
            )
        self.dimensions = dims
        return vectors

    def request_parts(self, query: bool) -> dict[str, object]:
        """TEI's request options and the prompt of the text's kind, the configured vector size, the wire format.

        (JSON and base64 vectors differ in their last bits.)
        """
        return {
            "request": self.query_extras if query else self.extras,
            "dimensions": self.endpoint.service_settings.dimensions,
            "wire_format": self.options.wire_format,
        }

    def encode(self, result: object, pooled: bool = False) -> bytes:
        """A vector's stored form: float32 for the base64 route's, float64 for JSON's and for pooled ones (exact)."""
        return encode_vector(result, self._float32 and not pooled)

    def decode(self, blob: bytes | None, arrays: bool, pooled: bool = False) -> object:
        """A stored vector (a float32 row with ``arrays`` over base64), or ``None``: not stored, or not these options'."""
        float32 = self._float32 and not pooled
        return decode_vector(blob, float32, self.dimensions, arrays and float32)

    def _status_error(self, result: HttpResult) -> EndpointError:
        error = super()._status_error(result)
        if (
            self.asked_dimensions is not None
            and 400 <= error.status_code < 500
            and error.status_code not in (401, 403, 404, 408, 413, 429)
            and "dimension" in f"{error.message} {error.body}".lower()
        ):
            # An endpoint that refuses TEI's `dimensions` (not TEI, an older TEI, a model not
            # trained for it): the option is what to change, so the message names it.
            error.message += (
                f"; the request carried dimensions={self.asked_dimensions} (service_settings.dimensions, sent as "
                "TEI's `dimensions`): leave it unset for this endpoint, or set it to a size the model allows"
            )
        return error

    def error_route(self) -> str | None:
        """The base64 route, which an endpoint that is not TEI lacks: its 404 names it."""
        return urlsplit(self.task_url).path if self._float32 else None
