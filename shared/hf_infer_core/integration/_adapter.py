"""What every framework adapter shares, declared once: the endpoint fields, key handling and session.

:class:`EndpointAdapter` is the pydantic mixin of any task's adapters: the endpoint fields
(``url``, ``api_key``, ``inference_id``, ``requests_per_minute``, the HTTP clients) and the
building of the endpoint and its :class:`~._session.Session` when the adapter is created or a
field changes, so a bad setting fails there and calls in flight finish on the old clients. A
task says its options class, session class and task fields (the ``ClassVar`` hooks below).

:class:`EmbeddingAdapter` is the embedding task's: its client options are inherited from
:class:`EmbeddingOptions` (one declaration, one set of defaults and checks). ``HFInferEmbeddings``
(LangChain) and ``HFInferEmbedding`` (LlamaIndex) add only their framework's base class and
methods; the embedding methods both share are :class:`~._embedding.EmbeddingMethods`.
Elasticsearch's ``similarity`` is not here: LlamaIndex's ``BaseEmbedding.similarity`` is a
method, so each adapter names that field itself. The rerank task's is in :mod:`._rerank`.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..base._errors import ConfigError
from ..base._secret import checked_key, seal_secret, shown_url
from ..config import DEFAULT_INFERENCE_ID, DEFAULT_REQUESTS_PER_MINUTE, InferenceEndpoint, PositiveLong, env_api_key
from ..config._options import RequestOptions, config_error
from ..config._tasks import TASKS
from ..drivers._httpx import AsyncHttpClient, HttpClient
from ..embeddings._options import EmbeddingOptions
from ..text._fit import open_tokenizer
from ._embedding import EmbeddingMethods
from ._session import EmbeddingSession, Session, same_args

__all__ = ["ADAPTER_CONFIG", "EmbeddingAdapter", "EndpointAdapter"]

# The endpoint from_endpoint was given, for the validation it runs (pydantic hands a custom
# __init__ no validation context).
_GIVEN: contextvars.ContextVar[InferenceEndpoint | None] = contextvars.ContextVar("hf_infer_endpoint", default=None)

# hide_input_in_errors: a validation error must never print the inputs, the key among them.
# validate_assignment: a setting assigned after construction is checked and takes effect on the
# next call (the session is rebuilt), never silently ignored. Declared again by each task's
# adapter class: pydantic lets the last base's config win, and the options' is frozen.
ADAPTER_CONFIG = ConfigDict(
    frozen=False, hide_input_in_errors=True, arbitrary_types_allowed=True, validate_assignment=True
)

# Fields that hold live objects: shared by copies, never dumped or pickled.
_LIVE_FIELDS = ("http_client", "http_async_client")


def default_model(endpoint: InferenceEndpoint) -> str:
    """An adapter's ``model`` when none is given: known at construction, and one per endpoint.

    The inference id alone is ``hf-infer`` for every endpoint left at the default, so a cache
    namespaced on it would mix two endpoints' vectors; the URL (no credentials, no query) tells
    them apart. It never changes with discovery: ``discovered_model`` says what ``/info`` said.
    """
    return f"{endpoint.inference_id}@{shown_url(endpoint.url)}"


class EndpointAdapter(BaseModel):
    """The endpoint fields and session of a task's framework adapters (see the README for each)."""

    # The task type: its row of the task table (config/_tasks.py) names the options class (whose
    # fields are the adapter's too) and the session class. Each task's adapter base sets it.
    task_type: ClassVar[str]

    model_config = ADAPTER_CONFIG

    url: str | None = Field(default_factory=lambda: os.environ.get("HF_INFER_URL"), description="Endpoint URL.")
    api_key: SecretStr | None = Field(
        default_factory=env_api_key, description="Access token (none: no Authorization header)."
    )
    inference_id: str = DEFAULT_INFERENCE_ID
    # Strict: True is not 1/min and "3000" is not 3000 (Elasticsearch reads a JSON long).
    # None: no client-side limit (a keyless local TEI server).
    requests_per_minute: PositiveLong | None = DEFAULT_REQUESTS_PER_MINUTE
    model: str | None = Field(
        default=None,
        description="What the vectors come from, for cache namespaces and tracing: given, else "
        "'<inference_id>@<url>' (known at construction, never changed by a call; /info's model_id is discovered_model).",
    )
    http_client: HttpClient | None = Field(
        default=None, exclude=True, repr=False, description="An httpx.Client for sync calls (not closed here)."
    )
    http_async_client: AsyncHttpClient | None = Field(
        default=None, exclude=True, repr=False, description="An httpx.AsyncClient for async calls (not closed here)."
    )

    _session: Session[Any, Any] = PrivateAttr()

    @field_validator("api_key")
    @classmethod
    def _seal(cls, value: SecretStr | None) -> SecretStr | None:
        # An explicit None (e.g. from a dump, which never holds the key) means "from the environment".
        return env_api_key() if value is None else seal_secret(checked_key(value.get_secret_value()))

    def __repr_args__(self) -> Iterator[tuple[str | None, object]]:
        for name, value in super().__repr_args__():
            yield name, shown_url(value) if name == "url" and isinstance(value, str) else value

    def __init__(self, **data: object) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise config_error(err, type(self).model_fields) from None

    def __setattr__(self, name: str, value: object) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise config_error(err, type(self).model_fields) from None

    @classmethod
    def model_validate(cls, obj: object, *args: Any, **kwargs: Any) -> Self:  # pydantic's keywords, as given
        """Pydantic's ``model_validate``, failing with :class:`ConfigError` like the constructor."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as err:
            raise config_error(err, cls.model_fields) from None

    @model_validator(mode="after")
    def _build_session(self) -> Self:
        # Runs at construction and after every assignment (validate_assignment): the session, and
        # so every later call, always follows the fields.
        given = _GIVEN.get()
        if isinstance(given, InferenceEndpoint) and all(
            getattr(self, name) == value for name, value in self._fields_of(given).items()
        ):
            endpoint = given  # from_endpoint, no setting of the endpoint overridden: used as it is
        else:
            endpoint = self._endpoint_from_fields()
        old: Session[Any, Any] | None = getattr(self, "_session", None)
        client_args = self._client_args(old)
        task = TASKS[self.task_type]
        options = task.load(task.options).pick(self)
        if (
            old is not None
            and same_args(old.client_args, client_args)
            and old.same_as(endpoint, options, self.http_client, self.http_async_client)
        ):
            # Nothing a request depends on changed (LlamaIndex assigns callback_manager on every
            # read of Settings.embed_model): the session, its clients and calls in flight stay.
            return self
        session = task.load(task.session)(
            endpoint,
            options,
            http_client=self.http_client,
            http_async_client=self.http_async_client,
            client_args=client_args,
        )
        if old is not None:
            session.follow(old)  # calls in flight finish on the old clients, which close after them
        self._session = session
        self._opened()
        if "model" not in self.model_fields_set:  # not given (pydantic tracks what was): derived
            self.__dict__["model"] = default_model(endpoint)
        return self

    def _client_args(self, old: Session[Any, Any] | None) -> dict[str, object]:
        """The task's own client arguments the session is built with (``old``: the session it replaces); none here."""
        return {}

    def _opened(self) -> None:
        """The session was built (a task that opened something for it remembers from what)."""

    def _task_settings(self) -> dict[str, Any]:  # InferenceEndpoint.from_url's keywords
        """The task's settings from the fields, for :meth:`InferenceEndpoint.from_url` (unset ones left out)."""
        return {}

    def _endpoint_from_fields(self) -> InferenceEndpoint:
        """Check the fields with Elasticsearch's rules; unset optional settings are left out."""
        if not self.url:
            raise ConfigError(
                ["[service_settings] does not contain the required setting [url] (pass url= or set HF_INFER_URL)"]
            )
        return InferenceEndpoint.from_url(
            self.url,
            self.api_key,
            inference_id=self.inference_id,
            requests_per_minute=self.requests_per_minute,
            task_type=self.task_type,
            **{k: v for k, v in self._task_settings().items() if v is not None},
        )

    @classmethod
    def from_inference_endpoint(
        cls,
        body: Mapping[str, object] | str,
        *,
        inference_id: str,
        task_type: str | None = None,
        **options: object,
    ) -> Self:
        """Build from an Elasticsearch ``PUT _inference/<task_type>/<inference_id>`` body (dict or JSON).

        The body is parsed once, with Elasticsearch's rules (``api_key`` required); ``options``
        are the client options (``batch_size``, ``max_concurrency``, prefixes, ...).
        """
        endpoint = InferenceEndpoint.from_request(task_type or cls.task_type, inference_id, body)
        return cls.from_endpoint(endpoint, **options)

    @classmethod
    def _fields_of(cls, endpoint: InferenceEndpoint) -> dict[str, object]:
        settings = endpoint.service_settings
        return {
            "url": settings.url,
            "api_key": settings.api_key,
            "inference_id": endpoint.inference_id,
            "requests_per_minute": settings.rate_limit.requests_per_minute,
            **cls._task_fields(endpoint),
        }

    @classmethod
    def _task_fields(cls, endpoint: InferenceEndpoint) -> dict[str, object]:
        """The task's adapter fields that ``endpoint`` sets."""
        return {}

    @classmethod
    def from_endpoint(cls, endpoint: InferenceEndpoint, **options: object) -> Self:
        """Build from a validated :class:`InferenceEndpoint`; ``options`` as above.

        The endpoint is used as it is, unless ``options`` override one of its settings (``url``,
        ``requests_per_minute``, ...): then the overrides apply and are checked as any setting is.
        """
        token = _GIVEN.set(endpoint)
        try:
            return cls.model_validate({**cls._fields_of(endpoint), **options})
        finally:
            _GIVEN.reset(token)

    @property
    def endpoint(self) -> InferenceEndpoint:
        """The validated endpoint configuration."""
        return self._session.endpoint

    @property
    def cache_namespace(self) -> str:
        """``model`` as a key every LangChain store accepts (letters, digits, ``_``, ``-``), and distinct per ``model``.

        ``model`` (``<inference_id>@<url>``) holds ``@``, ``:`` and ``/``, which LangChain's
        ``LocalFileStore`` refuses in a key; this keeps it readable and adds a digest of it, so two
        endpoints that read alike never share a namespace.
        """
        model = self.model or ""
        readable = re.sub(r"[^A-Za-z0-9_-]+", "-", model).strip("-")[:80]
        return f"{readable}-{hashlib.blake2b(model.encode(), digest_size=6).hexdigest()}"

    @property
    def discovered_model(self) -> str | None:
        """``/info``'s ``model_id`` once a call has read it (``None`` before, or from an endpoint that is not TEI)."""
        model_id = (self._session.server_info or {}).get("model_id")
        return model_id if isinstance(model_id, str) else None

    @property
    def client_options(self) -> RequestOptions:
        """The client options, as the clients use them."""
        return self._session.options

    def close(self) -> None:
        """Close pooled connections (the object stays usable)."""
        self._session.close()

    async def aclose(self) -> None:
        """Close the async client's pooled connections for the running event loop."""
        await self._session.aclose()

    def __getstate__(self) -> dict[Any, Any]:  # BaseModel's and LlamaIndex's BaseComponent's type
        state = super().__getstate__()
        state["__dict__"] = {**state["__dict__"], **dict.fromkeys(_LIVE_FIELDS)}
        return state

    def model_copy(self, *, update: Mapping[str, object] | None = None, deep: bool = False) -> Self:
        """A copy with clients of its own, ``update`` checked as constructor arguments are.

        pydantic's own ``model_copy`` neither validates ``update`` (a key would stay unsealed) nor
        rebuilds the private session (the copy would send to the old URL with the old key).
        """
        source = self.__deepcopy__() if deep else self
        data = {name: getattr(source, name) for name in source.model_fields_set}
        return type(self).model_validate({**data, **(update or {})})

    def __copy__(self) -> Self:
        return self.model_copy()

    def copy(self, *, update: Mapping[str, object] | None = None, deep: bool = False, **kwargs: object) -> Self:
        """Pydantic v1's ``copy``, as :meth:`model_copy` (``include``/``exclude`` are not supported)."""
        if kwargs:
            raise TypeError(f"copy() takes only update= and deep=, not {', '.join(sorted(kwargs))}")
        return self.model_copy(update=update, deep=deep)

    def __deepcopy__(self, memo: dict[int, object] | None = None) -> Self:
        # pydantic would deep-copy the injected httpx clients (locks, sockets): the memo makes
        # copies share them. The session's own __deepcopy__ gives the copy new lazy clients.
        memo = {} if memo is None else memo
        for name in _LIVE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                memo[id(value)] = value
        return super().__deepcopy__(memo)


class EmbeddingAdapter(EmbeddingMethods, EndpointAdapter, EmbeddingOptions):
    """Endpoint and client options of the embedding adapters (see the README for each)."""

    model_config = ADAPTER_CONFIG
    task_type: ClassVar[str] = "text_embedding"

    chunking_settings: dict[str, object] | None = None
    dimensions: int | None = None
    max_input_tokens: int | None = None
    tokenizer: object = Field(
        default=None,
        exclude=True,
        repr=False,
        description="A tokenizers.Tokenizer or tokenizer.json path to count tokens locally when fitting chunks.",
    )

    _session: EmbeddingSession = PrivateAttr()
    # The tokenizer field the session's tokenizer was opened from.
    _tokenizer_source: object = PrivateAttr(default=None)

    # The adapter field that carries Elasticsearch's service_settings.similarity.
    similarity_field: ClassVar[str] = "similarity"

    def _client_args(self, old: Session[Any, Any] | None) -> dict[str, object]:
        if old is not None and self.tokenizer is self._tokenizer_source:
            return dict(old.client_args)  # opened once: a path is not read again on every assignment
        return {"tokenizer": open_tokenizer(self.tokenizer)} if self.tokenizer is not None else {}

    def _opened(self) -> None:
        self._tokenizer_source = self.tokenizer

    def _task_settings(self) -> dict[str, Any]:  # InferenceEndpoint.from_url's keywords
        return {
            "chunking_settings": self.chunking_settings,
            "similarity": getattr(self, self.similarity_field),
            "dimensions": self.dimensions,
            "max_input_tokens": self.max_input_tokens,
        }

    @classmethod
    def _task_fields(cls, endpoint: InferenceEndpoint) -> dict[str, object]:
        settings = endpoint.service_settings
        return {
            "chunking_settings": endpoint.chunking_settings.to_dict(),
            "dimensions": settings.dimensions,
            "max_input_tokens": settings.max_input_tokens,
            cls.similarity_field: settings.similarity,
        }

    @property
    def client_options(self) -> EmbeddingOptions:
        """The client options, as the clients use them."""
        return self._session.options
