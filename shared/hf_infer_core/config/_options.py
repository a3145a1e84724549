"""The client options every task shares (:class:`RequestOptions`) and the rerank task's (:class:`RerankOptions`).

Each option is a field, with its default and its validation, so a bad value fails when the client
or adapter is built (a ``ValueError`` naming the option), never at the first request. The clients
take the options as typed keyword arguments (:class:`RequestOptionArgs` and each task's, checked
against the models by a test), so a misspelt option is a type error; the adapters inherit the
fields. The chunked pipeline's options (the cache, prefixes, fitting) are in
``pipeline/_options.py``, the embeddings' in ``embeddings/_options.py``.

Collaborators that are not settings (clock, sleep, random source, rate limiter, HTTP client or
transport) are constructor arguments of the clients, not options.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, Self, TypedDict
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..base._errors import ConfigError

__all__ = [
    "LongPassages",
    "RerankOptionArgs",
    "RerankOptions",
    "RequestOptionArgs",
    "RequestOptions",
    "Pooling",
    "TruncationDirection",
    "WireFormat",
    "config_error",
]

Pooling = Literal["mean", "first"]
TruncationDirection = Literal["left", "right", "Left", "Right"]
WireFormat = Literal["json", "base64"]
LongPassages = Literal["truncate", "best_chunk"]

# Longer than any sane wait, short enough that every timer API accepts it (threading's
# TIMEOUT_MAX, asyncio, socket timeouts): a year-long timeout is a typo, not a setting.
_MAX_SECONDS = 7 * 24 * 3600.0


class RequestOptions(BaseModel):
    """How a client of any task batches, retries and waits; frozen and validated on creation.

    Attributes are documented in the README's option table; in short: ``batch_size`` inputs per
    request, ``max_concurrency`` requests in flight, ``timeout`` seconds per attempt,
    ``max_retries`` retries per batch, ``max_retry_wait`` longest single wait,
    ``retry_deadline`` longest time per batch (waits included), a progress bar, ``discover``
    (read TEI's ``/info`` once), the rate limit's backend, proxies from the environment and
    ``max_response_bytes`` (the largest body read, counted decompressed; by default 1 MiB +
    256 KiB per input).
    """

    # hide_input_in_errors: a rate_limit_backend URL may hold a password.
    # arbitrary_types_allowed: a task's options may hold an object (the pipeline's cache: any
    # object with mget and mset, checked by type).
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, arbitrary_types_allowed=True)

    batch_size: int = Field(default=32, ge=1, le=100_000, strict=True, description="Inputs per request.")
    max_concurrency: int | Literal["auto"] = Field(
        default="auto",
        description='Requests in flight at once, or "auto" (the default): found from latency and overload answers, and followed.',
    )
    max_concurrency_limit: int = Field(
        default=64, ge=1, le=1024, strict=True, description='The most requests in flight with max_concurrency="auto".'
    )
    timeout: float = Field(
        default=30.0, gt=0, le=_MAX_SECONDS, allow_inf_nan=False, strict=True, description="Seconds per attempt."
    )
    max_retries: int = Field(default=5, ge=0, le=1000, strict=True, description="Retries after the first attempt.")
    max_retry_wait: float = Field(
        default=30.0, ge=0, le=_MAX_SECONDS, allow_inf_nan=False, strict=True, description="Longest single wait."
    )
    retry_deadline: float = Field(
        default=120.0, gt=0, le=_MAX_SECONDS, allow_inf_nan=False, strict=True, description="Longest time per batch."
    )
    connect_retry_deadline: float = Field(
        default=3.0,
        gt=0,
        le=_MAX_SECONDS,
        allow_inf_nan=False,
        strict=True,
        description="Longest time a refused connection is retried (nothing listening: report it soon).",
    )
    show_progress: bool = Field(default=False, strict=True, description="Show a tqdm bar of texts done.")
    discover: bool = Field(
        default=True, strict=True, description="Read TEI's /info once, lazily, before the first request."
    )
    rate_limit_backend: str = Field(
        default="local",
        repr=False,  # a Redis URL may hold a password
        description="'local' (a budget per process) or a redis://, rediss:// or unix:// URL (one shared budget).",
    )
    trust_env: bool = Field(
        default=True,
        strict=True,
        description="Honour HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, as httpx does by default.",
    )
    max_response_bytes: int | None = Field(
        default=None,
        ge=1024,
        strict=True,
        description="Largest response body, decompressed (default: 1 MiB + 256 KiB per input).",
    )

    # Options of other tasks this task's clients refuse, each with why (in the error's message).
    refusals: ClassVar[Mapping[str, str]] = {}

    @field_validator("max_concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: object) -> object:
        # Strict, as the other integers: no "4", no 4.0, no True (a union cannot be marked strict).
        if value == "auto" and isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
            raise ValueError('must be an integer from 1 to 1024, or "auto"')
        return value

    @field_validator("rate_limit_backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        # Never echoed: a Redis URL may hold a password.
        if value == "local":
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be 'local' or a redis://, rediss:// or unix:// URL")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - parsing the port is the check (a bad one raises)
        except ValueError:
            raise ValueError("is not a valid Redis URL (its host or port cannot be read)") from None
        if (parts.scheme == "unix" and not parts.path) or (parts.scheme != "unix" and not parts.hostname):
            raise ValueError(
                f"is not a valid Redis URL: a {parts.scheme}:// URL needs a "
                + ("path" if parts.scheme == "unix" else "host")
            )
        return value

    @classmethod
    def build(cls, base: Self | None = None, overrides: Mapping[str, Any] | None = None) -> Self:
        """Return ``base`` (default options when ``None``) with ``overrides`` applied and validated.

        Raises:
            ConfigError: an option is unknown or its value is invalid (every problem, by name).
        """
        if not overrides:
            return base if base is not None else cls()
        values = base.model_dump() if base is not None else {}
        try:
            return cls.model_validate({**values, **overrides})
        except ValidationError as err:
            raise config_error(err, cls.model_fields, cls.refusals) from None

    @property
    def window(self) -> int:
        """The most requests one call keeps in flight: ``max_concurrency``, or its limit when adaptive."""
        return self.max_concurrency_limit if self.max_concurrency == "auto" else self.max_concurrency

    @classmethod
    def pick(cls, source: Any) -> Self:
        """Return the options held by ``source``'s attributes of the same names (an adapter)."""
        return cls.model_validate({name: getattr(source, name) for name in cls.model_fields})


class RerankOptions(RequestOptions):
    """The rerank clients' options: :class:`RequestOptions`, and how a passage over the model's limit is scored.

    ``long_passages="truncate"`` (default): TEI cuts the pair to the model's input limit
    (``truncate``); ``"best_chunk"``: the passage is split with Elasticsearch's rerank chunking
    (sentences, sized to the limit left by the query) and scored as its best chunk. ``raw_scores``
    and ``truncation_direction`` are TEI's request options. The rerank clients keep no cache: a
    score belongs to a query and a passage, which a re-ingestion does not repeat.
    """

    long_passages: LongPassages = Field(
        default="truncate",
        description="'truncate' (TEI cuts a pair over the model's limit) or 'best_chunk' (scored as its best chunk).",
    )
    raw_scores: bool = Field(default=False, strict=True, description="TEI request option: logits, not sigmoid.")
    truncation_direction: TruncationDirection | None = Field(default=None, description="TEI request option.")

    refusals: ClassVar[Mapping[str, str]] = {
        **dict.fromkeys(
            ("cache", "cache_max_bytes"),
            "the rerank clients keep no cache (a score belongs to one query and one passage); leave it unset",
        ),
        "tokenizer": "the rerank clients take no tokenizer: the endpoint truncates or the passages are chunked",
    }


# The peers' names for hf-infer's settings (langchain-huggingface, llama-index's
# TextEmbeddingsInference, huggingface_hub), for the message of an unknown argument.
PEER_NAMES = {
    "base_url": ("url", "llama-index's TextEmbeddingsInference"),
    "endpoint_url": ("url", "llama-index's HuggingFaceInferenceAPIEmbedding"),
    "model_url": ("url", "an older adapter"),
    "api_url": ("url", "huggingface_hub"),
    "auth_token": ("api_key", "llama-index's TextEmbeddingsInference"),
    "huggingfacehub_api_token": ("api_key", "langchain-huggingface"),
    "token": ("api_key", "huggingface_hub"),
    "hf_token": ("api_key", "the environment variable"),
    "api_token": ("api_key", "an older adapter"),
}
# A model's repo id is not an endpoint: what to give instead.
_REPO_ID = (
    "hf-infer calls an endpoint, not a model by name: give url= (a TEI server or an Inference Endpoint serving "
    "the model; docs/migration.md, 'From Hugging Face's serverless API')"
)


def config_error(
    err: ValidationError, fields: Iterable[str] = (), refusals: Mapping[str, str] | None = None
) -> ConfigError:
    """The :class:`ConfigError` for a pydantic validation failure: each problem named by its field.

    ``fields``: the model's fields, so an unknown argument is answered with the closest one (and
    the peers' names for ours, ``base_url``, ``huggingfacehub_api_token``, ..., with ours).
    ``refusals``: another task's options, each with why this one refuses it. Inputs are never
    echoed (a key may be among them); pydantic's messages hold none.
    """
    problems: list[str] = []
    known = list(fields)
    for problem in err.errors(include_input=False, include_url=False):
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):  # raised by a validator: its own problems, as they are
            problems += cause.errors
            continue
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden" and len(problem["loc"]) == 1:
            name = str(problem["loc"][0])
            refused = (refusals or {}).get(name)
            message = refused if refused is not None else f"not an option here{_suggestion(name, known)}"
        problems.append(f"[{where}] {message}" if where else message)
    return ConfigError(problems)


def _suggestion(name: str, known: list[str]) -> str:
    if name in ("model_name", "repo_id", "model_id"):
        return f": {_REPO_ID}"
    if name in PEER_NAMES:
        ours, peer = PEER_NAMES[name]
        return f"; did you mean `{ours}`? (`{name}` is {peer}'s name for it)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


class RequestOptionArgs(TypedDict, total=False):
    """The options every task's client takes as keyword arguments (same names and types as :class:`RequestOptions`)."""

    batch_size: int
    max_concurrency: int | Literal["auto"]
    max_concurrency_limit: int
    timeout: float
    max_retries: int
    max_retry_wait: float
    retry_deadline: float
    connect_retry_deadline: float
    show_progress: bool
    discover: bool
    rate_limit_backend: str
    trust_env: bool
    max_response_bytes: int | None


class RerankOptionArgs(RequestOptionArgs, total=False):
    """The options as keyword arguments of the rerank clients (same names and types as :class:`RerankOptions`)."""

    long_passages: LongPassages
    raw_scores: bool
    truncation_direction: TruncationDirection | None
