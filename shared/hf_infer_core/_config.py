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

import json
import os
import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from ._errors import ConfigError
from ._secret import REDACTED, SealedSecretStr, key_problem, redact, shown_url

__all__ = [
    "DEFAULT_CHUNKING_SETTINGS",
    "DEFAULT_INFERENCE_ID",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "ChunkingSettings",
    "HuggingFaceServiceSettings",
    "InferenceEndpoint",
    "RateLimitSettings",
    "env_api_key",
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
# Longer URLs are refused by most servers and proxies (and make multi-kB error messages).
_MAX_URL_LENGTH = 8192
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONSOLE_LINE = re.compile(r"^\s*PUT\s+/?_inference/(?:(?P<task>[^/\s]+)/)?(?P<id>[^/\s?]+)\S*\s*$", re.IGNORECASE)

# hide_input_in_errors: pydantic would otherwise print the inputs (the api key among them).
_FROZEN = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
_M = TypeVar("_M", bound=BaseModel)


class RateLimitSettings(BaseModel):
    """Client-side request rate limit, as in Elasticsearch's ``rate_limit`` object.

    ``None`` (only from :meth:`InferenceEndpoint.from_url` and the adapters, never from an
    Elasticsearch body): no client-side limit, for a keyless local TEI server.
    """

    model_config = _FROZEN

    requests_per_minute: int | None = Field(default=DEFAULT_REQUESTS_PER_MINUTE, gt=0, strict=True)


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
        error = _url_error(value)
        if error:
            raise ValueError(error)
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        # Surrounding whitespace (a key read from a file ends with a newline) is not part of a token.
        key = value.get_secret_value().strip()
        if (problem := key_problem(key)) is not None:
            raise ValueError(problem)
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
        return _parse_request(cls, task_type, inference_id, body)

    @classmethod
    def from_console(cls, text: str) -> InferenceEndpoint:
        """Parse the Kibana Dev Tools console form: a ``PUT _inference/...`` line, then the JSON body.

        Raises:
            ConfigError: if the first line is not such a request, or the request is invalid.
        """
        if not isinstance(text, str):
            raise ConfigError([f"console text must be a string, got {_type_name(text)}"])
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


# --------------------------------------------------------------------------- parsing


def _parse_request(cls: type[InferenceEndpoint], task_type: Any, inference_id: Any, body: Any) -> InferenceEndpoint:
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError([f"request body is not valid UTF-8: {err}"]) from None
    if isinstance(body, str):
        try:
            body = json.loads(body, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as err:
            raise ConfigError(
                [f"request body is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"]
            ) from None
        except RecursionError:
            raise ConfigError(["request body is nested too deeply to be an inference endpoint"]) from None
        except ValueError as err:  # a duplicate key, or an integer of over 4,300 digits
            raise ConfigError([f"request body is not valid JSON: {str(err)[:200]}"]) from None
    if not isinstance(body, Mapping):
        raise ConfigError([f"request body must be a JSON object, got {_type_name(body)}"])

    errors: list[str] = []
    if not isinstance(task_type, str) or task_type not in KNOWN_TASK_TYPES:
        errors.append(f"Unknown task_type [{_show(task_type)}]; the [hugging_face] service supports [text_embedding]")
    elif task_type not in SUPPORTED_TASK_TYPES:
        errors.append(
            f"The [{SERVICE_NAME}] service does not support task type [{task_type}]; supported task types: [text_embedding]"
        )
    if not isinstance(inference_id, str) or not _INFERENCE_ID.fullmatch(inference_id):
        errors.append(
            f"Invalid inference_id [{_show(inference_id)}]; it must contain only lowercase alphanumeric "
            "(a-z and 0-9), hyphens or underscores, and must start and end with an alphanumeric character"
        )

    body = dict(body)
    service = body.pop("service", None)
    if service is None:
        errors.append("Model configuration is missing the required setting [service]")
    elif service != SERVICE_NAME:
        errors.append(f"Unknown service [{_show(service)}]; hf-infer implements only the [{SERVICE_NAME}] service")

    raw_service = body.pop("service_settings", None)
    service_settings: dict[str, Any] = {}
    if raw_service is None:
        errors.append("Model configuration is missing [service_settings]")
    elif not isinstance(raw_service, Mapping):
        errors.append(f"[service_settings] must be an object, got {_type_name(raw_service)}")
    else:
        service_settings = _parse_service_settings(raw_service, errors)

    task_settings = body.pop("task_settings", None)
    if task_settings not in (None, {}):
        errors.append(
            f"Model configuration contains settings {_keys(task_settings)} unknown to the [{SERVICE_NAME}] service"
        )

    chunking: ChunkingSettings | None = None
    raw_chunking = body.pop("chunking_settings", None)
    try:
        chunking = ChunkingSettings.from_dict(raw_chunking)
    except ConfigError as err:
        errors.extend(err.errors)

    if body:
        errors.append(f"Model configuration contains settings {_keys(body)} unknown to the [{SERVICE_NAME}] service")
    if errors:
        # The body's own key, wherever else it was echoed (a user may paste it in any field).
        key = raw_service.get("api_key") if isinstance(raw_service, Mapping) else None
        raise ConfigError([redact(e, [key if isinstance(key, str) else None]) for e in errors])
    settings = _build(HuggingFaceServiceSettings, service_settings)
    return _build(
        cls,
        {
            "inference_id": inference_id,
            "task_type": task_type,
            "service": SERVICE_NAME,
            "service_settings": settings,
            "chunking_settings": chunking,
        },
    )


def _parse_service_settings(raw: Mapping[str, Any], errors: list[str]) -> dict[str, Any]:
    settings = dict(raw)
    out: dict[str, Any] = {}

    url = settings.pop("url", None)
    if url is None:
        errors.append("[service_settings] does not contain the required setting [url]")
    elif not isinstance(url, str):
        errors.append(_wrong_type("service_settings", "url", url, "String"))
    elif url == "":
        errors.append("[service_settings] Invalid value empty string. [url] must be a non-empty string")
    elif (url_error := _url_error(url)) is not None:
        errors.append(url_error)
    else:
        out["url"] = url

    # Elasticsearch reads the key out of service_settings but reports it as a secret setting.
    api_key = settings.pop("api_key", None)
    if api_key is None:
        errors.append("[secret_settings] does not contain the required setting [api_key]")
    elif not isinstance(api_key, str):
        errors.append(
            f"[secret_settings] field [api_key] is not of the expected type: expected a string, got {_type_name(api_key)}"
        )
    elif (problem := key_problem(api_key.strip())) is not None:
        errors.append(problem)
    else:
        out["api_key"] = SecretStr(api_key.strip())

    rate_limit = settings.pop("rate_limit", None)
    if rate_limit is not None:
        if not isinstance(rate_limit, Mapping):
            errors.append(f"[rate_limit] must be an object, got {_type_name(rate_limit)}")
        else:
            rate_limit = dict(rate_limit)
            rpm = rate_limit.pop("requests_per_minute", None)
            if rpm is not None:
                if not _is_int(rpm) or rpm <= 0 or rpm > _MAX_LONG:
                    errors.append(
                        f"[rate_limit] Invalid value [{_show(rpm)}]. [requests_per_minute] must be a positive long"
                    )
                else:
                    out["rate_limit"] = RateLimitSettings(requests_per_minute=rpm)
            if rate_limit:
                errors.append(
                    f"[rate_limit] contains settings {_keys(rate_limit)} unknown to the [{SERVICE_NAME}] service"
                )

    similarity = settings.pop("similarity", None)
    if similarity is not None:
        if isinstance(similarity, str) and similarity.lower() in _SIMILARITIES:
            out["similarity"] = similarity.lower()
        else:
            errors.append(
                f"[service_settings] Invalid value [{_show(similarity)}] received. "
                f"[similarity] must be one of [{', '.join(_SIMILARITIES)}]"
            )

    for key in ("dimensions", "max_input_tokens"):
        value = settings.pop(key, None)
        if value is None:
            continue
        if not _is_int(value):
            errors.append(_wrong_type("service_settings", key, value, "Integer"))
        elif value <= 0:
            errors.append(f"[service_settings] Invalid value [{_show(value)}]. [{key}] must be a positive integer")
        elif value > _MAX_INT:  # Elasticsearch reads both as a Java Integer
            errors.append(
                f"[service_settings] Invalid value [{_show(value)}]. [{key}] must be a positive integer "
                f"no larger than {_MAX_INT}"
            )
        else:
            out[key] = value

    if settings:
        errors.append(
            f"Model configuration contains settings {_keys(settings)} unknown to the [{SERVICE_NAME}] service"
        )
    return out


def _validate_chunking(settings: Mapping[str, Any], *, parsed: bool) -> list[str]:
    """Return Elasticsearch's messages for every rule ``settings`` breaks (empty when valid).

    ``parsed`` is True when checking a built model, whose absent keys are ``None``.
    """
    errors: list[str] = []
    if "strategy" not in settings:
        return ["Can't generate Chunker without ChunkingStrategy provided"]
    strategy = settings["strategy"]
    name = strategy.strip().lower() if isinstance(strategy, str) else strategy
    if name not in STRATEGIES:
        return [
            f"[chunking_settings] Invalid value [{_show(strategy)}] received. "
            f"[strategy] must be one of [{', '.join(STRATEGIES)}]"
        ]
    allowed = {
        "none": {"strategy"},
        "word": {"strategy", "max_chunk_size", "overlap"},
        "sentence": {"strategy", "max_chunk_size", "sentence_overlap"},
        "recursive": {"strategy", "max_chunk_size", "separator_group", "separators"},
    }[name]
    extra = [k for k in settings if k not in allowed]
    if extra:
        listed = "[" + ", ".join(map(str, extra)) + "]"
        errors.append(
            {
                "none": f"When chunking is disabled (none), settings can not have the following: {listed}",
                "word": f"Word based chunking settings can not have the following settings: {listed}",
                "sentence": f"Sentence based chunking settings can not have the following settings: {listed}",
                "recursive": f"Recursive chunking settings can not have the following settings: {listed}",
            }[name]
        )
    if name == "none":
        return errors

    size = settings.get("max_chunk_size")
    size_ok = False
    if size is None:
        errors.append("[chunking_settings] does not contain the required setting [max_chunk_size]")
    elif not _is_int(size):
        errors.append(_wrong_type("chunking_settings", "max_chunk_size", size, "Integer"))
    elif size < _MAX_CHUNK_LOWER[name]:
        errors.append(
            f"[chunking_settings] Invalid value [{size}]. [max_chunk_size] must be greater than or equal to "
            f"[{_MAX_CHUNK_LOWER[name]}]"
        )
    elif size > _MAX_CHUNK_UPPER:
        errors.append(
            f"[chunking_settings] Invalid value [{size}]. [max_chunk_size] must be less than or equal to [{_MAX_CHUNK_UPPER}]"
        )
    else:
        size_ok = True

    if name == "word":
        overlap = settings.get("overlap")
        if overlap is None:
            errors.append("[chunking_settings] does not contain the required setting [overlap]")
        elif not _is_int(overlap):
            errors.append(_wrong_type("chunking_settings", "overlap", overlap, "Integer"))
        elif overlap < 0:
            # Elasticsearch wants a positive overlap; 0 (no overlap) is a documented hf-infer extension.
            errors.append(f"[chunking_settings] Invalid value [{overlap}]. [overlap] must be a non-negative integer")
        elif size_ok and isinstance(size, int) and overlap > size // 2:
            errors.append(
                f"[chunking_settings] Invalid value [{overlap}]. [overlap] must be less than or equal to [{int(size) // 2}]"
            )
    elif name == "sentence":
        sentence_overlap = settings.get("sentence_overlap")
        if sentence_overlap is not None and (not _is_int(sentence_overlap) or sentence_overlap not in (0, 1)):
            errors.append(f"[chunking_settings] sentence_overlap[{_show(sentence_overlap)}] must be either 0 or 1")
    else:
        group = settings.get("separator_group")
        separators = settings.get("separators")
        if group is not None and separators is not None and not parsed:
            errors.append("Recursive chunking settings can not have both separators and separator_group")
        if group is not None:
            if not isinstance(group, str) or group.strip().lower() not in SEPARATOR_GROUPS:
                errors.append(
                    f"[chunking_settings] Invalid value [{_show(group)}] received. "
                    f"[separator_group] must be one of [{', '.join(SEPARATOR_GROUPS)}]"
                )
        elif separators is not None:
            if isinstance(separators, str) or not isinstance(separators, list | tuple):
                errors.append(_wrong_type("chunking_settings", "separators", separators, "List"))
            elif not separators:
                errors.append("Recursive chunking settings can not have an empty list of separators")
            else:
                for sep in separators:
                    if not isinstance(sep, str) or sep == "":
                        errors.append(f"[chunking_settings] [separators] must be non-empty strings, got [{_show(sep)}]")
                        continue
                    try:
                        re.compile(sep)
                    except re.error as err:
                        errors.append(
                            f"[chunking_settings] Invalid value [{_show(sep)}]. [separators] must be regular expressions: {err}"
                        )
                        continue
                    if _nested_quantifier(sep):
                        errors.append(
                            f"[chunking_settings] Invalid value [{_show(sep)}]. [separators] must not nest quantifiers "
                            "(such as (a+)+): they can take exponential time on crafted text"
                        )
    return errors


def _normalise_chunking(settings: Mapping[str, Any]) -> dict[str, Any]:
    name = str(settings["strategy"]).strip().lower()
    out: dict[str, Any] = {"strategy": name, "max_chunk_size": settings.get("max_chunk_size")}
    if name == "none":
        out.update(max_chunk_size=None, sentence_overlap=None)
    elif name == "word":
        out.update(overlap=settings["overlap"], sentence_overlap=None)
    elif name == "sentence":
        out["sentence_overlap"] = settings.get("sentence_overlap", 1)
    else:
        out["sentence_overlap"] = None
        group = settings.get("separator_group")
        if group is not None:
            out["separator_group"] = group.strip().lower()
        else:
            # Elasticsearch stores the plaintext group's regexes when neither key is given.
            out["separators"] = tuple(settings.get("separators") or SEPARATOR_GROUPS["plaintext"])
    return out


def _build(model: type[_M], values: dict[str, Any]) -> _M:
    # The hand-written checks above run first and speak Elasticsearch's language; pydantic's
    # own check is a second line that should never fire, but if it does it must still be a
    # ConfigError and must not echo values (the api key is among them).
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise ConfigError(
            [f"[{'.'.join(map(str, e['loc'])) or model.__name__}] {e['msg']}" for e in err.errors(include_input=False)]
        ) from None


def _url_error(url: str) -> str | None:
    """Elasticsearch's message for a URL that is not one httpx can send to; ``None`` when it is fine.

    The URL is parsed here fully, as the client will parse it, so that no URL passes the
    configuration and then fails at the first request (control characters, a host that is not
    valid IDNA, an over-long URL). Credentials in the URL are refused with their own message.
    """
    invalid = f"[service_settings] Invalid url [{_show(url)}] received for field [url]"
    if len(url) > _MAX_URL_LENGTH or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return invalid
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
        parsed = httpx.URL(url)
        host = parsed.host  # decodes the IDNA host: "xn--" with nothing after fails here
    except Exception:  # httpx.InvalidURL, idna errors, ValueError: all mean "not sendable"
        return invalid
    if parts.scheme not in ("http", "https") or not host:
        return invalid
    if parts.username is not None or parts.password is not None:
        return (
            "[service_settings] Invalid url: credentials in the url are not accepted; "
            "put the token in [api_key] (sent as a Bearer token)"
        )
    try:
        parsed.raw_host.decode("ascii")
    except UnicodeDecodeError:
        return invalid
    return None


def _is_int(value: Any) -> bool:
    # JSON has no int/bool distinction problem, but Python does: True is an int.
    return isinstance(value, int) and not isinstance(value, bool)


def _wrong_type(scope: str, field: str, value: Any, expected: str) -> str:
    return (
        f"[{scope}] field [{field}] is not of the expected type. "
        f"The value [{_show(value)}] cannot be converted to a [{expected}]"
    )


def _keys(mapping: Any) -> str:
    if isinstance(mapping, Mapping):
        return "[" + ", ".join(_show(str(k)) for k in mapping) + "]"
    return f"[{_type_name(mapping)}]"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, refusing a key given twice (Elasticsearch's parser refuses it too)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"Duplicate field '{_show(key)}'")
        out[key] = value
    return out


def _show(value: Any) -> str:
    # Values are echoed in messages; one shaped like a Hugging Face token never is (a key put in
    # the wrong field, or a url and a key swapped).
    if _is_int(value) and abs(value) >= 10**80:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"  # str() refuses 4,300+
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # Control and bidi characters are shown escaped: a message must read as what it is.
    text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", redact(text))
    return text if len(text) <= 80 else text[:77] + "..."


def _nested_quantifier(pattern: str) -> bool:
    """True when a repeated group holds a repeat (``(a+)+``, ``(a*b?)*``): catastrophic backtracking."""
    import re._parser as parser  # type: ignore[import-not-found]  # the parser re itself uses

    repeats = {parser.MAX_REPEAT, parser.MIN_REPEAT, parser.POSSESSIVE_REPEAT}

    def children(op: Any, arg: Any) -> list[Any]:
        if op is parser.SUBPATTERN:
            return [arg[-1]]
        if op is parser.BRANCH:
            return list(arg[1])
        if op in (parser.ASSERT, parser.ASSERT_NOT):
            return [arg[1]]
        return []

    def walk(items: Any, inside_repeat: bool) -> bool:
        for op, arg in items:
            if op in repeats:
                high, sub = arg[1], arg[2]
                repeated = high == parser.MAXREPEAT or high > 1
                if (repeated and inside_repeat) or walk(sub, inside_repeat or repeated):
                    return True
            elif any(walk(child, inside_repeat) for child in children(op, arg)):
                return True
        return False

    return bool(walk(parser.parse(pattern), False))


def _type_name(value: Any) -> str:
    return type(value).__name__


# Elasticsearch's default when chunking_settings is omitted or {}.
DEFAULT_CHUNKING_SETTINGS = ChunkingSettings(strategy="sentence", max_chunk_size=250, sentence_overlap=1)
