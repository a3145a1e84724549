"""The embedding task's options: :class:`EmbeddingOptions`, the chunked pipeline's and the vectors' own.

Every option of :class:`~hf_infer_core.EmbeddingClient`, :class:`~hf_infer_core.AsyncEmbeddingClient`
and the two framework adapters is a field here or in a base, with its default and its check, so
a bad value fails when the client or adapter is built, never at the first request.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from ..config._options import Pooling, WireFormat
from ..pipeline._options import ChunkedOptionArgs, ChunkedOptions

__all__ = ["EmbeddingOptionArgs", "EmbeddingOptions"]

# TEI's request options that its OpenAI route (wire_format="base64") does not take.
_JSON_ONLY = (
    "normalize",
    "truncate",
    "truncation_direction",
    "prompt_name",
    "query_prompt_name",
    "document_prompt_name",
)


class EmbeddingOptions(ChunkedOptions):
    """The embedding clients' options: :class:`ChunkedOptions` and how vectors are asked for and pooled.

    ``pooling`` of chunk vectors, TEI's request options (sent only when set) and the wire format.
    """

    pooling: Pooling = Field(default="mean", description="How a document's chunk vectors are combined.")
    normalize: bool | None = Field(default=None, strict=True, description="TEI request option.")
    wire_format: WireFormat = Field(
        default="json",
        description="'json' (any Hugging Face endpoint) or 'base64' (TEI's /v1/embeddings: float32 bytes).",
    )

    @model_validator(mode="after")
    def _base64_takes_no_tei_options(self) -> Self:
        if self.wire_format == "base64":
            given = [name for name in _JSON_ONLY if getattr(self, name) is not None]
            if given:
                raise ValueError(
                    f"wire_format='base64' uses TEI's OpenAI route, which takes no {', '.join(given)}: "
                    "use wire_format='json' for them"
                )
        return self


class EmbeddingOptionArgs(ChunkedOptionArgs, total=False):
    """The options as keyword arguments of the embedding clients (same names and types as :class:`EmbeddingOptions`)."""

    pooling: Pooling
    normalize: bool | None
    wire_format: WireFormat
