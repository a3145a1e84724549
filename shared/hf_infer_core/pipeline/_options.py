"""The chunked pipeline's options: what every task that chunks texts, fits them and caches results takes.

:class:`ChunkedOptions` adds to :class:`~hf_infer_core.config._options.RequestOptions` the cache
(a file, a Redis URL or a ``ByteStore``), the prefixes the texts are sent with, and how chunks are
made and fitted to the model. A task's own options class (``EmbeddingOptions``) builds on it.
"""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from ..cache._cache import DEFAULT_CACHE_MAX_BYTES, check_cache
from ..cache._stores import ByteStore
from ..config._options import RequestOptionArgs, RequestOptions, TruncationDirection

__all__ = ["ChunkedOptionArgs", "ChunkedOptions"]


class ChunkedOptions(RequestOptions):
    """:class:`RequestOptions`, a cache, the prefixes, and how chunks are made and fitted to the model."""

    cache: str | os.PathLike[str] | ByteStore | None = Field(
        default=None,
        repr=False,  # a Redis URL may hold a password
        description="Chunk-level vector cache: a file path (SQLite), a redis:// URL, or an object with mget and "
        "mset (LangChain's ByteStore); None: no cache.",
    )
    cache_max_bytes: int = Field(
        default=DEFAULT_CACHE_MAX_BYTES,
        ge=1 << 20,
        strict=True,
        description="The most a cache file holds (least recently used entries evicted; default 1 GiB).",
    )
    query_prefix: str = Field(default="", strict=True, description="Prepended to queries (e5: 'query: ').")
    document_prefix: str = Field(default="", strict=True, description="Prepended to documents (e5: 'passage: ').")
    fit_chunks_to_model: bool = Field(
        default=True,
        strict=True,
        description="Split chunks over the model's token limit (max_input_tokens, or /info with discover).",
    )
    keep_trailing_text: bool = Field(
        default=False,
        strict=True,
        description="Word chunking: extend the last chunk over a trailing remainder with no word (not Elasticsearch's).",
    )

    # TEI's request options both chunked routes (/embed, /embed_sparse) take; sent only when set.
    truncate: bool | None = Field(default=None, strict=True, description="TEI request option.")
    truncation_direction: TruncationDirection | None = Field(default=None, description="TEI request option.")
    prompt_name: str | None = Field(
        default=None, strict=True, description="TEI request option: the prompt for queries and documents alike."
    )
    query_prompt_name: str | None = Field(
        default=None, strict=True, description="TEI's prompt_name for queries (default: prompt_name)."
    )
    document_prompt_name: str | None = Field(
        default=None, strict=True, description="TEI's prompt_name for documents (default: prompt_name)."
    )

    @field_validator("cache", mode="before")
    @classmethod
    def _cache(cls, value: object) -> object:
        return check_cache(value)


class ChunkedOptionArgs(RequestOptionArgs, total=False):
    """:class:`ChunkedOptions` as keyword arguments (same names and types)."""

    cache: str | os.PathLike[str] | ByteStore | None
    cache_max_bytes: int
    query_prefix: str
    document_prefix: str
    fit_chunks_to_model: bool
    keep_trailing_text: bool
    truncate: bool | None
    truncation_direction: TruncationDirection | None
    prompt_name: str | None
    query_prompt_name: str | None
    document_prompt_name: str | None
