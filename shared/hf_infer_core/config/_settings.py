"""The settings models of an endpoint: rate limit, chunking, service settings, in pydantic.

The models are frozen, ``extra="forbid"`` pydantic v2 models, so a configuration built by hand is
checked with Elasticsearch's rules (:mod:`._es_rules`) too. The ``api_key`` is a
:class:`pydantic.SecretStr`: it never appears in a repr, in ``to_dict()`` (which mirrors
Elasticsearch's ``GET _inference`` answer) or in an error message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from ..base._errors import ConfigError
from ..base._secret import SealedSecretStr, checked_key, shown_url
from ._es_rules import (
    _FROZEN,
    _MAX_INT,
    _PARSED,
    API_KEY_ENV_VARS,
    DEFAULT_REQUESTS_PER_MINUTE,
    SEPARATOR_GROUPS,
    SERVICE_NAME,
    PositiveLong,
    _build,
    _is_int,
    _keys,
    _normalise_chunking,
    _show,
    _type_name,
    _url_error,
    _validate_chunking,
    _wrong_type,
)

__all__ = [
    "DEFAULT_CHUNKING_SETTINGS",
    "ChunkingSettings",
    "HuggingFaceServiceSettings",
    "RateLimitSettings",
    "RerankTaskSettings",
    "env_api_key",
    "parse_rerank_task_settings",
]


class RateLimitSettings(BaseModel):
    """Client-side request rate limit, as in Elasticsearch's ``rate_limit`` object.

    ``None`` (only from :meth:`InferenceEndpoint.from_url` and the adapters, never from an
    Elasticsearch body): no client-side limit, for a keyless local TEI server.
    """

    model_config = _FROZEN

    requests_per_minute: PositiveLong | None = DEFAULT_REQUESTS_PER_MINUTE


class ChunkingSettings(BaseModel):
    """How long texts are split before embedding (Elasticsearch ``chunking_settings``).

    Use :meth:`from_dict` to parse user JSON with Elasticsearch's messages;
    constructing the model directly runs the same checks.
    """

    model_config = _FROZEN

    strategy: Literal["none", "recursive", "sentence", "word"] = "sentence"
    max_chunk_size: int | None = 250
    overlap: int | None = None
    sentence_overlap: int | None = 1
    separator_group: Literal["plaintext", "markdown"] | None = None
    separators: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> ChunkingSettings:
        if _PARSED.get():
            return self  # built by the parser, which ran Elasticsearch's rules already

        errors = _validate_chunking(self.to_dict(), parsed=True)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @classmethod
    def from_dict(cls, settings: object) -> ChunkingSettings:
        """Parse Elasticsearch ``chunking_settings``; ``None`` or ``{}`` gives the default.

        Raises:
            ConfigError: listing every rule the settings break.
        """
        if settings is None:
            return DEFAULT_CHUNKING_SETTINGS
        if not isinstance(settings, Mapping):
            raise ConfigError([f"[chunking_settings] must be an object, got {_type_name(settings)}"])
        if not settings:
            return DEFAULT_CHUNKING_SETTINGS
        errors = _validate_chunking(settings, parsed=False)
        if errors:
            raise ConfigError(errors)
        return _build(cls, _normalise_chunking(settings))

    @property
    def effective_separators(self) -> tuple[str, ...]:
        """The recursive strategy's separator regexes (the group's, or ``plaintext``'s by default)."""
        if self.separators is not None:
            return self.separators
        return SEPARATOR_GROUPS[self.separator_group or "plaintext"]

    def to_dict(self) -> dict[str, object]:
        """Return the settings as Elasticsearch shows them, only the keys the strategy uses."""
        out: dict[str, object] = {"strategy": self.strategy}
        if self.strategy == "none":
            return out
        out["max_chunk_size"] = self.max_chunk_size
        if self.strategy == "word":
            out["overlap"] = self.overlap
        elif self.strategy == "sentence":
            out["sentence_overlap"] = self.sentence_overlap
        elif self.strategy == "recursive":
            if self.separator_group is not None:
                out["separator_group"] = self.separator_group
            else:
                out["separators"] = list(self.effective_separators)
        return out


class HuggingFaceServiceSettings(BaseModel):
    """``service_settings`` of the ``hugging_face`` service."""

    model_config = _FROZEN

    url: str
    # None only for endpoints built from a URL without a key (a local TEI server); the
    # Elasticsearch request path (from_request) requires a key, as Elasticsearch does.
    api_key: SecretStr | None = None
    rate_limit: RateLimitSettings = RateLimitSettings()
    similarity: Literal["cosine", "dot_product", "l2_norm"] | None = None
    dimensions: int | None = Field(default=None, gt=0)
    max_input_tokens: int | None = Field(default=None, gt=0)

    def __repr_args__(self) -> Iterator[tuple[str | None, object]]:
        for name, value in super().__repr_args__():
            yield name, shown_url(value) if name == "url" else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:

        error = None if _PARSED.get() else _url_error(value)
        if error:
            raise ValueError(error)
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        # The parser has stripped and checked it already; a model built directly is checked here.
        key = value.get_secret_value() if _PARSED.get() else checked_key(value.get_secret_value())
        # Sealed: pickles and copies of the endpoint never hold the key verbatim.
        return SealedSecretStr(key)

    def to_dict(self) -> dict[str, object]:
        """Return the settings as Elasticsearch's ``GET _inference`` shows them: no ``api_key``."""
        out: dict[str, object] = {"url": shown_url(self.url)}
        for key in ("similarity", "dimensions", "max_input_tokens"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["rate_limit"] = {"requests_per_minute": self.rate_limit.requests_per_minute}
        return out


class RerankTaskSettings(BaseModel):
    """``task_settings`` of a ``rerank`` endpoint: how many results, and whether they carry their text.

    ``top_n``: the most results a call returns (``None``: every text); ``return_documents``:
    whether each result carries its text. A call's own arguments take precedence, as in
    Elasticsearch's ``POST _inference/rerank/<id>``.
    """

    model_config = _FROZEN

    top_n: int | None = Field(default=None, gt=0, le=2**31 - 1, strict=True)
    return_documents: bool | None = Field(default=None, strict=True)

    def to_dict(self) -> dict[str, object]:
        """The settings as Elasticsearch shows them: only those set."""
        return {k: v for k, v in (("top_n", self.top_n), ("return_documents", self.return_documents)) if v is not None}


def parse_rerank_task_settings(raw: object, errors: list[str]) -> dict[str, object]:
    """A rerank endpoint's ``task_settings``: ``top_n`` a positive integer, ``return_documents`` a boolean."""
    if not isinstance(raw, Mapping):
        errors.append(f"[task_settings] must be an object, got {_type_name(raw)}")
        return {}
    settings = dict(raw)
    out: dict[str, object] = {}
    top_n = settings.pop("top_n", None)
    if top_n is not None:
        if not _is_int(top_n) or top_n > _MAX_INT:
            errors.append(_wrong_type("task_settings", "top_n", top_n, "Integer"))
        elif top_n <= 0:
            errors.append(f"[task_settings] Invalid value [{_show(top_n)}]. [top_n] must be a positive integer")
        else:
            out["top_n"] = top_n
    return_documents = settings.pop("return_documents", None)
    if return_documents is not None:
        if not isinstance(return_documents, bool):
            errors.append(_wrong_type("task_settings", "return_documents", return_documents, "Boolean"))
        else:
            out["return_documents"] = return_documents
    if settings:
        errors.append(
            f"Model configuration contains settings {_keys(settings)} unknown to the [{SERVICE_NAME}] service"
        )
    return out


def env_api_key() -> SealedSecretStr | None:
    """The key from ``HF_TOKEN``, then ``HUGGINGFACEHUB_API_TOKEN``; ``None`` when neither is set.

    The one place the environment is read for a key (URL-built endpoints and the adapters).
    """
    for name in API_KEY_ENV_VARS:
        value = (os.environ.get(name) or "").strip()
        if value:
            return SealedSecretStr(value)
    return None


# Elasticsearch's default when chunking_settings is omitted or {}.
DEFAULT_CHUNKING_SETTINGS = ChunkingSettings(strategy="sentence", max_chunk_size=250, sentence_overlap=1)
