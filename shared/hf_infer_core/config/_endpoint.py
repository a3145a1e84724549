"""The endpoint configuration: Elasticsearch's ``hugging_face`` inference service, parsed.

Parsing follows Elasticsearch's rules and messages (:mod:`._es_rules`): every problem in a body is
collected and reported together in one :class:`~hf_infer_core.ConfigError`, each message naming
the setting (``[service_settings] does not contain the required setting [url]``). Unknown
settings are reported by name only, so a misspelt ``"apikey": "hf_..."`` does not echo the token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from ..base._errors import ConfigError
from ..base._secret import REDACTED, key_problem, redact
from ._es_rules import (
    _CONSOLE_LINE,
    _FROZEN,
    _INFERENCE_ID,
    _MAX_INT,
    _SIMILARITIES,
    DEFAULT_INFERENCE_ID,
    DEFAULT_REQUESTS_PER_MINUTE,
    KNOWN_TASK_TYPES,
    SERVICE_NAME,
    _build,
    _is_int,
    _keys,
    _show,
    _type_name,
    _unique_keys,
    _url_error,
    _wrong_type,
    is_positive_long,
)
from ._settings import (
    ChunkingSettings,
    HuggingFaceServiceSettings,
    RateLimitSettings,
    RerankTaskSettings,
    env_api_key,
)
from ._tasks import TASKS

__all__ = ["InferenceEndpoint"]


class InferenceEndpoint(BaseModel):
    """One ``PUT _inference/<task_type>/<inference_id>`` configuration of the ``hugging_face`` service.

    ``task_type`` is ``text_embedding`` (chunking settings, vector settings) or ``rerank``
    (``task_settings``: ``top_n``, ``return_documents``; no chunking, as in Elasticsearch).

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
    # A row of the task table (config/_tasks.py); the parser refuses any other.
    task_type: str = "text_embedding"
    service: Literal["hugging_face"] = "hugging_face"
    service_settings: HuggingFaceServiceSettings
    chunking_settings: ChunkingSettings = Field(default_factory=ChunkingSettings)
    # The task settings of a task that has them (rerank's; always set for one, never for another).
    task_settings: RerankTaskSettings | None = None

    @model_validator(mode="after")
    def _task_settings_of_task(self) -> InferenceEndpoint:
        if self.task_type not in TASKS:
            raise ValueError(f"task_type [{self.task_type}] is not one of [{', '.join(TASKS)}]")
        model = TASKS[self.task_type].task_settings
        if model is not None and self.task_settings is None:
            object.__setattr__(self, "task_settings", model[0]())
        elif model is None and self.task_settings is not None:
            having = ", ".join(name for name, task in TASKS.items() if task.task_settings is not None)
            raise ValueError(f"task_settings are for {having} endpoints, not [{self.task_type}]")
        return self

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
        cls, task_type: str, inference_id: str, body: Mapping[str, object] | str | bytes
    ) -> InferenceEndpoint:
        """Parse an Elasticsearch ``PUT _inference/<task_type>/<inference_id>`` request.

        Args:
            task_type: The path's task type: ``text_embedding`` or ``rerank``.
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
        return _parse_request(cls, task, match.group("id"), rest.strip() or "{}")

    @classmethod
    def from_url(
        cls,
        url: str,
        api_key: str | SecretStr | None = None,
        *,
        inference_id: str = DEFAULT_INFERENCE_ID,
        requests_per_minute: int | None = DEFAULT_REQUESTS_PER_MINUTE,
        chunking_settings: Mapping[str, object] | ChunkingSettings | None = None,
        task_type: str = "text_embedding",
        task_settings: Mapping[str, object] | None = None,
        **service_settings: object,
    ) -> InferenceEndpoint:
        """Build an endpoint from a URL; the api key defaults to ``HF_TOKEN``, then ``HUGGINGFACEHUB_API_TOKEN``.

        With no key given or found the endpoint is keyless: requests carry no ``Authorization``
        header, as a local TEI server expects. ``requests_per_minute=None``: no client-side limit
        (a local server that sheds load itself). :meth:`from_request` stays as strict as
        Elasticsearch: ``api_key`` required, ``requests_per_minute`` a positive long.
        ``task_type="rerank"`` builds a rerank endpoint (``task_settings``: ``top_n``,
        ``return_documents``); the task's rules are Elasticsearch's, as for :meth:`from_request`.

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
            chunking: Mapping[str, object] | None = chunking_settings.to_dict()
        else:
            chunking = chunking_settings
        body: dict[str, object] = {
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
        if task_settings is not None:
            body["task_settings"] = task_settings
        # The body goes through Elasticsearch's checks with a placeholder key, then drops it:
        # one parser, and "no key" stays a choice of the URL path only.
        endpoint = _parse_request(cls, task_type, inference_id, body)
        update: dict[str, object] = {}
        if keyless:
            update["api_key"] = None
        if requests_per_minute is None:
            update["rate_limit"] = RateLimitSettings(requests_per_minute=None)
        if update:
            settings = endpoint.service_settings.model_copy(update=update)
            endpoint = endpoint.model_copy(update={"service_settings": settings})
        return endpoint

    def to_dict(self) -> dict[str, object]:
        """Return the endpoint as Elasticsearch's ``GET _inference`` shows it (no ``api_key``)."""
        out: dict[str, object] = {
            "inference_id": self.inference_id,
            "task_type": self.task_type,
            "service": self.service,
            "service_settings": self.service_settings.to_dict(),
        }
        if self.task_settings is not None:
            out["task_settings"] = self.task_settings.to_dict()
        if TASKS[self.task_type].chunking:
            out["chunking_settings"] = self.chunking_settings.to_dict()
        return out


def _parse_request(
    cls: type[InferenceEndpoint], task_type: object, inference_id: object, body: object
) -> InferenceEndpoint:
    body = _load_body(body)
    errors: list[str] = []
    supported = ", ".join(TASKS)
    if not isinstance(task_type, str) or task_type not in KNOWN_TASK_TYPES:
        errors.append(f"Unknown task_type [{_show(task_type)}]; the [hugging_face] service supports [{supported}]")
    elif task_type not in TASKS:
        errors.append(
            f"The [{SERVICE_NAME}] service does not support task type [{task_type}]; supported task types: [{supported}]"
        )
    # An unserved task type is reported above; its body is still read, by the first task's rules.
    task = TASKS.get(task_type if isinstance(task_type, str) else "", TASKS["text_embedding"])
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
    service_settings: dict[str, object] = {}
    if raw_service is None:
        errors.append("Model configuration is missing [service_settings]")
    elif not isinstance(raw_service, Mapping):
        errors.append(f"[service_settings] must be an object, got {_type_name(raw_service)}")
    else:
        service_settings = _parse_service_settings(raw_service, errors, vector_settings=task.vector_settings)

    task_settings = body.pop("task_settings", None)
    parsed_task_settings: dict[str, object] = {}
    if task.task_settings is not None and task_settings is not None:
        parsed_task_settings = task.task_settings[1](task_settings, errors)
    elif task_settings not in (None, {}):
        errors.append(
            f"Model configuration contains settings {_keys(task_settings)} unknown to the [{SERVICE_NAME}] service"
        )

    chunking: ChunkingSettings | None = None
    if task.chunking:
        # Elasticsearch reads chunking_settings for the embedding tasks only: on a rerank
        # endpoint it stays in the body and is reported below as an unknown setting.
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
    fields: dict[str, object] = {
        "inference_id": inference_id,
        "task_type": task_type,
        "service": SERVICE_NAME,
        "service_settings": settings,
    }
    if task.task_settings is not None:
        fields["task_settings"] = _build(task.task_settings[0], parsed_task_settings)
    if chunking is not None:
        fields["chunking_settings"] = chunking
    return _build(cls, fields)


def _parse_service_settings(
    raw: Mapping[str, object], errors: list[str], *, vector_settings: bool
) -> dict[str, object]:
    settings = dict(raw)
    out: dict[str, object] = {}

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
    elif (problem := key_problem(key := api_key.strip())) is not None:
        errors.append(problem)
    else:
        out["api_key"] = SecretStr(key)

    rate_limit = settings.pop("rate_limit", None)
    if rate_limit is not None and (parsed := _parse_rate_limit(rate_limit, errors)) is not None:
        out["rate_limit"] = parsed

    if not vector_settings:
        # A task without the dense-vector settings (rerank: the url and the rate limit only):
        # those below are unknown settings there.
        if settings:
            errors.append(
                f"Model configuration contains settings {_keys(settings)} unknown to the [{SERVICE_NAME}] service"
            )
        return out

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


def _load_body(body: object) -> Mapping[str, object]:
    """The request body as a mapping: JSON text decoded (duplicate keys refused), anything else refused."""
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
    return body


def _parse_rate_limit(raw: object, errors: list[str]) -> RateLimitSettings | None:
    """``rate_limit``: ``requests_per_minute`` a positive long, nothing else."""
    if not isinstance(raw, Mapping):
        errors.append(f"[rate_limit] must be an object, got {_type_name(raw)}")
        return None
    rate_limit = dict(raw)
    parsed = None
    rpm = rate_limit.pop("requests_per_minute", None)
    if rpm is not None:
        if not is_positive_long(rpm):
            errors.append(f"[rate_limit] Invalid value [{_show(rpm)}]. [requests_per_minute] must be a positive long")
        else:
            parsed = RateLimitSettings(requests_per_minute=rpm)
    if rate_limit:
        errors.append(f"[rate_limit] contains settings {_keys(rate_limit)} unknown to the [{SERVICE_NAME}] service")
    return parsed
