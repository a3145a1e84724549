"""The endpoint configuration: Elasticsearch's ``hugging_face`` inference service, in pydantic.

Parsing follows Elasticsearch's rules and messages: every problem in a body is
collected and reported together in one :class:`~hf_infer_core.ConfigError`,
each message naming the setting (``[service_settings] does not contain the
required setting [url]``). The models themselves are frozen, ``extra="forbid"``
pydantic v2 models, so a configuration built by hand is checked too.

The ``api_key`` is a :class:`pydantic.SecretStr`: it never appears in a repr, in
``to_dict()`` (which mirrors Elasticsearch's ``GET _inference`` answer) or in an
error message. Unknown settings are reported by name only, so a misspelt
``"apikey": "hf_..."`` does not echo the token back.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ._errors import ConfigError
from ._secret import REDACTED, SealedSecretStr, checked_key, shown_url

__all__ = [
    "DEFAULT_CHUNKING_SETTINGS",
    "DEFAULT_INFERENCE_ID",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "ChunkingSettings",
    "HuggingFaceServiceSettings",
    "InferenceEndpoint",
    "PositiveLong",
    "RateLimitSettings",
    "env_api_key",
    "is_positive_long",
]

SERVICE_NAME = "hugging_face"
SUPPORTED_TASK_TYPES = ("text_embedding",)
# Task types Elasticsearch knows; any other string is an unknown task type, not an unsupported one.
KNOWN_TASK_TYPES = ("text_embedding", "sparse_embedding", "rerank", "completion", "chat_completion")
DEFAULT_REQUESTS_PER_MINUTE = 3000
# The inference_id of endpoints built from a URL rather than an Elasticsearch request.
DEFAULT_INFERENCE_ID = "hf-infer"
# Where the key is looked for when a URL-built endpoint or an adapter is given none, in order.
API_KEY_ENV_VARS = ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN")
STRATEGIES = ("none", "recursive", "sentence", "word")
SEPARATOR_GROUPS = {
    # Elasticsearch's SeparatorGroup regexes, Java and Python regex syntax agree on them.
    "plaintext": ("(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)"),
    "markdown": (
        "\n# ",
        "\n## ",
        "\n### ",
        "\n#### ",
        "\n##### ",
        "\n###### ",
        "\n^(?!\\s*$).*\\n-{1,}\\n",
        "\n^(?!\\s*$).*\\n={1,}\\n",
    ),
}
# The documented limits this project follows (Elasticsearch dropped the 300 ceiling in 2025).
_MAX_CHUNK_UPPER = 300
_MAX_CHUNK_LOWER = {"word": 10, "sentence": 20, "recursive": 10}
_SIMILARITIES = ("cosine", "dot_product", "l2_norm")
# Elasticsearch's inference_id rule.
_INFERENCE_ID = re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?")  # used with fullmatch: "$" admits a final "\n"
# Elasticsearch reads dimensions and max_input_tokens as a Java Integer.
_MAX_INT = 2**31 - 1
# Elasticsearch reads requests_per_minute as a Java long.
_MAX_LONG = 2**63 - 1
# requests_per_minute's rule, declared once: a positive Java long (the models' type, the parser's
# and the rate limiters' check).
PositiveLong = Annotated[int, Field(gt=0, le=_MAX_LONG, strict=True)]


def is_positive_long(value: object) -> bool:
    """True for an ``int`` (not a bool) in 1..2**63-1, what Elasticsearch reads as a positive long."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_LONG


# Longer URLs are refused by most servers and proxies (and make multi-kB error messages).
_MAX_URL_LENGTH = 8192
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONSOLE_LINE = re.compile(r"^\s*PUT\s+/?_inference/(?:(?P<task>[^/\s]+)/)?(?P<id>[^/\s?]+)\S*\s*$", re.IGNORECASE)

# hide_input_in_errors: pydantic would otherwise print the inputs (the api key among them).
# Set while the parser builds the models from values its Elasticsearch rules have checked.
_PARSED: contextvars.ContextVar[bool] = contextvars.ContextVar("hf_infer_parsed", default=False)

_FROZEN = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
_M = TypeVar("_M", bound=BaseModel)


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
        from ._es_rules import _validate_chunking

        errors = _validate_chunking(self.to_dict(), parsed=True)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any] | None) -> ChunkingSettings:
        """Parse Elasticsearch ``chunking_settings``; ``None`` or ``{}`` gives the default.

        Raises:
            ConfigError: listing every rule the settings break.
        """
        from ._es_rules import _build, _normalise_chunking, _type_name, _validate_chunking

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

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as Elasticsearch shows them, only the keys the strategy uses."""
        out: dict[str, Any] = {"strategy": self.strategy}
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

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, shown_url(value) if name == "url" else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from ._es_rules import _url_error

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

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as Elasticsearch's ``GET _inference`` shows them: no ``api_key``."""
        out: dict[str, Any] = {"url": shown_url(self.url)}
        for key in ("similarity", "dimensions", "max_input_tokens"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["rate_limit"] = {"requests_per_minute": self.rate_limit.requests_per_minute}
        return out


class InferenceEndpoint(BaseModel):
    """One ``PUT _inference/text_embedding/<inference_id>`` configuration of the ``hugging_face`` service.

    Example:
        >>> endpoint = InferenceEndpoint.from_request(
        ...     "text_embedding",
        ...     "hugging-face-embeddings",
        ...     {"service": "hugging_face",
        ...      "service_settings": {"api_key": "hf_xxx", "url": "http://127.0.0.1:8080"}},
        ... )
        >>> endpoint.service_settings.rate_limit.requests_per_minute
        3000
    """

    model_config = _FROZEN

    inference_id: str
    task_type: Literal["text_embedding"] = "text_embedding"
    service: Literal["hugging_face"] = "hugging_face"
    service_settings: HuggingFaceServiceSettings
    chunking_settings: ChunkingSettings = Field(default_factory=ChunkingSettings)

    @property
    def url(self) -> str:
        """The endpoint URL requests are POSTed to."""
        return self.service_settings.url

    @property
    def api_key(self) -> SecretStr | None:
        """The access token, as a ``SecretStr`` (``None`` for a keyless URL-built endpoint)."""
        return self.service_settings.api_key

    @property
    def requests_per_minute(self) -> int | None:
        """The client-side request rate limit."""
        return self.service_settings.rate_limit.requests_per_minute

    @classmethod
    def from_request(
        cls, task_type: str, inference_id: str, body: Mapping[str, Any] | str | bytes
    ) -> InferenceEndpoint:
        """Parse an Elasticsearch ``PUT _inference/<task_type>/<inference_id>`` request.

        Args:
            task_type: The path's task type; only ``text_embedding`` is supported.
            inference_id: The path's endpoint id (lowercase letters, digits, ``-``, ``_``).
            body: The request body, as a mapping or as JSON text.

        Raises:
            ConfigError: listing every rule the request breaks, with Elasticsearch's wording.
        """
        from ._es_rules import _parse_request

        return _parse_request(cls, task_type, inference_id, body)

    @classmethod
    def from_console(cls, text: str) -> InferenceEndpoint:
        """Parse the Kibana Dev Tools console form: a ``PUT _inference/...`` line, then the JSON body.

        Raises:
            ConfigError: if the first line is not such a request, or the request is invalid.
        """
        if not isinstance(text, str):
            raise ConfigError([f"console text must be a string, got {type(text).__name__}"])
        first, _, rest = text.strip().partition("\n")
        match = _CONSOLE_LINE.match(first)
        if match is None:
            raise ConfigError(
                [f"expected a first line like [PUT _inference/text_embedding/<inference_id>], got [{first[:80]}]"]
            )
        task = match.group("task")
        if task is None:
            raise ConfigError(
                ["the console request must name the task type: PUT _inference/<task_type>/<inference_id>"]
            )
        from ._es_rules import _parse_request

        return _parse_request(cls, task, match.group("id"), rest.strip() or "{}")

    @classmethod
    def from_url(
        cls,
        url: str,
        api_key: str | SecretStr | None = None,
        *,
        inference_id: str = DEFAULT_INFERENCE_ID,
        requests_per_minute: int | None = DEFAULT_REQUESTS_PER_MINUTE,
        chunking_settings: Mapping[str, Any] | ChunkingSettings | None = None,
        **service_settings: Any,
    ) -> InferenceEndpoint:
        """Build an endpoint from a URL; the api key defaults to ``HF_TOKEN``, then ``HUGGINGFACEHUB_API_TOKEN``.

        With no key given or found the endpoint is keyless: requests carry no ``Authorization``
        header, as a local TEI server expects. ``requests_per_minute=None``: no client-side limit
        (a local server that sheds load itself). :meth:`from_request` stays as strict as
        Elasticsearch: ``api_key`` required, ``requests_per_minute`` a positive long.

        Raises:
            ConfigError: if any setting is invalid.
        """
        if api_key is None:
            api_key = env_api_key()
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        keyless = key is None
        if isinstance(url, str) and "://" not in url and isinstance(key, str) and "://" in key:
            # from_url(key, url): echoing the "url" would print the key.
            raise ConfigError(
                [
                    f"[service_settings] Invalid url [{REDACTED}] received for field [url]: the url and the "
                    "api_key look swapped (from_url(url, api_key))"
                ]
            )
        if isinstance(chunking_settings, ChunkingSettings):
            chunking: Mapping[str, Any] | None = chunking_settings.to_dict()
        else:
            chunking = chunking_settings
        body: dict[str, Any] = {
            "service": SERVICE_NAME,
            "service_settings": {
                "url": url,
                "api_key": key if not keyless else "-",
                "rate_limit": {
                    "requests_per_minute": DEFAULT_REQUESTS_PER_MINUTE
                    if requests_per_minute is None
                    else requests_per_minute
                },
                **service_settings,
            },
        }
        if chunking is not None:
            body["chunking_settings"] = dict(chunking)
        # The body goes through Elasticsearch's checks with a placeholder key, then drops it:
        # one parser, and "no key" stays a choice of the URL path only.
        from ._es_rules import _parse_request

        endpoint = _parse_request(cls, "text_embedding", inference_id, body)
        update: dict[str, Any] = {}
        if keyless:
            update["api_key"] = None
        if requests_per_minute is None:
            update["rate_limit"] = RateLimitSettings(requests_per_minute=None)
        if update:
            settings = endpoint.service_settings.model_copy(update=update)
            endpoint = endpoint.model_copy(update={"service_settings": settings})
        return endpoint

    def to_dict(self) -> dict[str, Any]:
        """Return the endpoint as Elasticsearch's ``GET _inference`` shows it (no ``api_key``)."""
        return {
            "inference_id": self.inference_id,
            "task_type": self.task_type,
            "service": self.service,
            "service_settings": self.service_settings.to_dict(),
            "chunking_settings": self.chunking_settings.to_dict(),
        }


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
