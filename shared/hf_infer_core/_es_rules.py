"""Elasticsearch's rules for an inference endpoint, in its words, run once per parse.

Every problem is collected (no value echoed that could be a key) before the models, which skip the
rules then (``_PARSED``), are built; a model built directly runs them through these functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr, ValidationError

from ._config import (
    _INFERENCE_ID,
    _M,
    _MAX_CHUNK_LOWER,
    _MAX_CHUNK_UPPER,
    _MAX_INT,
    _MAX_URL_LENGTH,
    _PARSED,
    _SIMILARITIES,
    _UNPRINTABLE,
    KNOWN_TASK_TYPES,
    SEPARATOR_GROUPS,
    SERVICE_NAME,
    STRATEGIES,
    SUPPORTED_TASK_TYPES,
    ChunkingSettings,
    HuggingFaceServiceSettings,
    InferenceEndpoint,
    RateLimitSettings,
    is_positive_long,
)
from ._errors import ConfigError
from ._secret import key_problem, redact

__all__: list[str] = []


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
    elif (problem := key_problem(key := api_key.strip())) is not None:
        errors.append(problem)
    else:
        out["api_key"] = SecretStr(key)

    rate_limit = settings.pop("rate_limit", None)
    if rate_limit is not None:
        if not isinstance(rate_limit, Mapping):
            errors.append(f"[rate_limit] must be an object, got {_type_name(rate_limit)}")
        else:
            rate_limit = dict(rate_limit)
            rpm = rate_limit.pop("requests_per_minute", None)
            if rpm is not None:
                if not is_positive_long(rpm):
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
    # The hand-written checks above ran once and speak Elasticsearch's language; the models'
    # validators (for models built directly) do not run them again (_PARSED). pydantic's type
    # checks still run: should one fire, it is a ConfigError that echoes no value (the key).
    token = _PARSED.set(True)
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise ConfigError(
            [f"[{'.'.join(map(str, e['loc'])) or model.__name__}] {e['msg']}" for e in err.errors(include_input=False)]
        ) from None
    finally:
        _PARSED.reset(token)


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
