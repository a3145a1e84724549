from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from pydantic import SecretStr

from hf_infer_core import ChunkingSettings, ConfigError, HFInferError, InferenceEndpoint

SECRET = "hf_SECRET_canary_123"
SEED_BODY = """
{
  "service": "hugging_face",
  "service_settings": {
    "api_key": "hf_SECRET_canary_123",
    "url": "https://my-endpoint.eu-west-1.aws.endpoints.huggingface.cloud"
  }
}
"""


def body(**service_settings: Any) -> dict[str, Any]:
    settings = {"api_key": SECRET, "url": "http://127.0.0.1:8080/embed", **service_settings}
    return {"service": "hugging_face", "service_settings": {k: v for k, v in settings.items() if v is not ...}}


def errors_of(task_type: str = "text_embedding", inference_id: str = "my-id", payload: Any = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        InferenceEndpoint.from_request(task_type, inference_id, payload if payload is not None else body())
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    return info.value.errors


def test_seed_body_parses_with_defaults() -> None:
    endpoint = InferenceEndpoint.from_request("text_embedding", "hugging-face-embeddings", SEED_BODY)
    assert endpoint.inference_id == "hugging-face-embeddings"
    assert endpoint.task_type == "text_embedding"
    assert endpoint.service == "hugging_face"
    assert endpoint.url == "https://my-endpoint.eu-west-1.aws.endpoints.huggingface.cloud"
    assert endpoint.api_key.get_secret_value() == SECRET
    assert endpoint.service_settings.rate_limit.requests_per_minute == 3000
    assert endpoint.chunking_settings.to_dict() == {
        "strategy": "sentence",
        "max_chunk_size": 250,
        "sentence_overlap": 1,
    }


def test_body_as_dict_bytes_and_json_agree() -> None:
    as_json = InferenceEndpoint.from_request("text_embedding", "a", SEED_BODY)
    assert InferenceEndpoint.from_request("text_embedding", "a", json.loads(SEED_BODY)) == as_json
    assert InferenceEndpoint.from_request("text_embedding", "a", SEED_BODY.encode()) == as_json


def test_empty_chunking_settings_is_the_default() -> None:
    payload = body()
    payload["chunking_settings"] = {}
    endpoint = InferenceEndpoint.from_request("text_embedding", "a", payload)
    assert endpoint.chunking_settings == ChunkingSettings()


def test_to_dict_is_the_es_get_shape_without_the_key() -> None:
    payload = body(
        similarity="DOT_PRODUCT", dimensions=384, max_input_tokens=512, rate_limit={"requests_per_minute": 60}
    )
    payload["chunking_settings"] = {"strategy": "word", "max_chunk_size": 100, "overlap": 50}
    endpoint = InferenceEndpoint.from_request("text_embedding", "my-endpoint_1", payload)
    assert endpoint.to_dict() == {
        "inference_id": "my-endpoint_1",
        "task_type": "text_embedding",
        "service": "hugging_face",
        "service_settings": {
            "url": "http://127.0.0.1:8080/embed",
            "similarity": "dot_product",
            "dimensions": 384,
            "max_input_tokens": 512,
            "rate_limit": {"requests_per_minute": 60},
        },
        "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 50},
    }


def test_secret_never_shown() -> None:
    endpoint = InferenceEndpoint.from_request("text_embedding", "a", SEED_BODY)
    assert isinstance(endpoint.api_key, SecretStr)
    for text in (repr(endpoint), str(endpoint), json.dumps(endpoint.to_dict()), endpoint.model_dump_json()):
        assert SECRET not in text
    assert SECRET not in repr(endpoint.model_dump())


def test_console_form() -> None:
    endpoint = InferenceEndpoint.from_console("PUT _inference/text_embedding/hugging-face-embeddings\n" + SEED_BODY)
    assert endpoint.inference_id == "hugging-face-embeddings"
    assert endpoint == InferenceEndpoint.from_request("text_embedding", "hugging-face-embeddings", SEED_BODY)
    assert (
        InferenceEndpoint.from_console("PUT /_inference/text_embedding/x-1?timeout=30s\n" + SEED_BODY).inference_id
        == "x-1"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GET _inference/text_embedding/x\n{}", "expected a first line like"),
        ("PUT _inference/x\n{}", "must name the task type"),
        ("PUT _inference/completion/x\n" + SEED_BODY, "does not support task type [completion]"),
    ],
)
def test_console_form_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        InferenceEndpoint.from_console(text)


@pytest.mark.parametrize("task_type", ["completion", "chat_completion"])
def test_other_task_types_name_the_supported_ones(task_type: str) -> None:
    (error,) = errors_of(task_type=task_type)
    assert error == (
        f"The [hugging_face] service does not support task type [{task_type}]; "
        "supported task types: [text_embedding, rerank, sparse_embedding]"
    )


def test_unknown_task_type() -> None:
    (error,) = errors_of(task_type="embeddings")
    assert "Unknown task_type [embeddings]" in error
    assert "[text_embedding, rerank, sparse_embedding]" in error


@pytest.mark.parametrize("inference_id", ["", "Upper", "-dash", "dash-", "sp ace", "a/b"])
def test_bad_inference_id(inference_id: str) -> None:
    (error,) = errors_of(inference_id=inference_id)
    assert error.startswith(f"Invalid inference_id [{inference_id}]")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": ...}, "[service_settings] does not contain the required setting [url]"),
        ({"url": ""}, "[service_settings] Invalid value empty string. [url] must be a non-empty string"),
        ({"url": "not a url"}, "[service_settings] Invalid url [not a url] received for field [url]"),
        ({"url": "ftp://host/x"}, "[service_settings] Invalid url [ftp://host/x] received for field [url]"),
        ({"url": "http://host:99999/"}, "[service_settings] Invalid url [http://host:99999/] received for field [url]"),
        (
            {"url": 5},
            "[service_settings] field [url] is not of the expected type. The value [5] cannot be converted to a [String]",
        ),
        ({"api_key": ...}, "[secret_settings] does not contain the required setting [api_key]"),
        ({"api_key": ""}, "[secret_settings] Invalid value empty string. [api_key] must be a non-empty string"),
        (
            {"rate_limit": {"requests_per_minute": 0}},
            "[rate_limit] Invalid value [0]. [requests_per_minute] must be a positive long",
        ),
        (
            {"rate_limit": {"requests_per_minute": -5}},
            "[rate_limit] Invalid value [-5]. [requests_per_minute] must be a positive long",
        ),
        (
            {"rate_limit": {"requests_per_minute": 1.5}},
            "[rate_limit] Invalid value [1.5]. [requests_per_minute] must be a positive long",
        ),
        (
            {"rate_limit": {"requests_per_minute": True}},
            "[rate_limit] Invalid value [true]. [requests_per_minute] must be a positive long",
        ),
        (
            {"rate_limit": {"requests_per_minute": "10"}},
            "[rate_limit] Invalid value [10]. [requests_per_minute] must be a positive long",
        ),
        ({"rate_limit": {"rpm": 10}}, "[rate_limit] contains settings [rpm] unknown to the [hugging_face] service"),
        (
            {"similarity": "euclid"},
            "[service_settings] Invalid value [euclid] received. [similarity] must be one of [cosine, dot_product, l2_norm]",
        ),
        ({"dimensions": 0}, "[service_settings] Invalid value [0]. [dimensions] must be a positive integer"),
        (
            {"max_input_tokens": -1},
            "[service_settings] Invalid value [-1]. [max_input_tokens] must be a positive integer",
        ),
        (
            {"dimensions": "384"},
            "[service_settings] field [dimensions] is not of the expected type. The value [384] cannot be converted to a [Integer]",
        ),
        ({"model_id": "x"}, "Model configuration contains settings [model_id] unknown to the [hugging_face] service"),
    ],
)
def test_service_settings_rules(settings: dict[str, Any], message: str) -> None:
    assert errors_of(payload=body(**settings)) == [message]


def test_misspelt_key_is_reported_without_its_value() -> None:
    payload = body(api_key=...)
    payload["service_settings"]["apikey"] = SECRET
    errors = errors_of(payload=payload)
    assert "Model configuration contains settings [apikey] unknown to the [hugging_face] service" in errors


def test_similarity_is_case_insensitive() -> None:
    endpoint = InferenceEndpoint.from_request("text_embedding", "a", body(similarity="L2_Norm"))
    assert endpoint.service_settings.similarity == "l2_norm"


def test_all_errors_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        InferenceEndpoint.from_request(
            "completion",
            "Bad",
            {
                "service": "openai",
                "service_settings": {"url": "", "rate_limit": {"requests_per_minute": 0}},
                "chunking_settings": {"strategy": "word", "max_chunk_size": 5},
                "extra": 1,
            },
        )
    errors = info.value.errors
    assert len(errors) == 9
    assert str(info.value).startswith("Validation Failed: 1: The [hugging_face] service does not support")
    assert "Unknown service [openai]; hf-infer implements only the [hugging_face] service" in errors
    assert "Model configuration contains settings [extra] unknown to the [hugging_face] service" in errors


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "Model configuration is missing the required setting [service]"),
        ({"service": "hugging_face"}, "Model configuration is missing [service_settings]"),
        ({"service": "hugging_face", "service_settings": []}, "[service_settings] must be an object, got list"),
        (
            {
                "service": "hugging_face",
                "service_settings": {"url": "http://h", "api_key": "k"},
                "task_settings": {"a": 1},
            },
            "Model configuration contains settings [a] unknown to the [hugging_face] service",
        ),
    ],
)
def test_top_level_rules(payload: dict[str, Any], message: str) -> None:
    assert message in errors_of(payload=payload)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "request body is not valid JSON"),
        ("[1, 2]", "request body must be a JSON object, got list"),
        (b"\xff", "request body is not valid UTF-8"),
    ],
)
def test_bad_body_text(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InferenceEndpoint.from_request("text_embedding", "a", raw)


# ------------------------------------------------------------------ chunking settings


def chunking_errors(settings: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        ChunkingSettings.from_dict(settings)
    return info.value.errors


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (None, {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}),
        ({}, {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}),
        (
            {"strategy": "word", "max_chunk_size": 10, "overlap": 5},
            {"strategy": "word", "max_chunk_size": 10, "overlap": 5},
        ),
        (
            {"strategy": "word", "max_chunk_size": 300, "overlap": 0},
            {"strategy": "word", "max_chunk_size": 300, "overlap": 0},
        ),
        (
            {"strategy": "WORD", "max_chunk_size": 11, "overlap": 5},
            {"strategy": "word", "max_chunk_size": 11, "overlap": 5},
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 20},
            {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 1},
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 300, "sentence_overlap": 0},
            {"strategy": "sentence", "max_chunk_size": 300, "sentence_overlap": 0},
        ),
        ({"strategy": "none"}, {"strategy": "none"}),
        (
            {"strategy": "recursive", "max_chunk_size": 10},
            {
                "strategy": "recursive",
                "max_chunk_size": 10,
                "separators": ["(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)"],
            },
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 50, "separator_group": "Markdown"},
            {"strategy": "recursive", "max_chunk_size": 50, "separator_group": "markdown"},
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 50, "separators": ["\n\n", "#"]},
            {"strategy": "recursive", "max_chunk_size": 50, "separators": ["\n\n", "#"]},
        ),
    ],
)
def test_valid_chunking_settings(settings: Any, expected: dict[str, Any]) -> None:
    parsed = ChunkingSettings.from_dict(settings)
    assert parsed.to_dict() == expected
    assert ChunkingSettings.from_dict(parsed.to_dict()) == parsed


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_chunk_size": 100}, "Can't generate Chunker without ChunkingStrategy provided"),
        (
            {"strategy": "paragraph"},
            "[chunking_settings] Invalid value [paragraph] received. [strategy] must be one of [none, recursive, sentence, word]",
        ),
        (
            {"strategy": "word", "overlap": 1},
            "[chunking_settings] does not contain the required setting [max_chunk_size]",
        ),
        (
            {"strategy": "word", "max_chunk_size": 20},
            "[chunking_settings] does not contain the required setting [overlap]",
        ),
        (
            {"strategy": "word", "max_chunk_size": 9, "overlap": 1},
            "[chunking_settings] Invalid value [9]. [max_chunk_size] must be greater than or equal to [10]",
        ),
        (
            {"strategy": "word", "max_chunk_size": 301, "overlap": 1},
            "[chunking_settings] Invalid value [301]. [max_chunk_size] must be less than or equal to [300]",
        ),
        (
            {"strategy": "word", "max_chunk_size": 21, "overlap": 11},
            "[chunking_settings] Invalid value [11]. [overlap] must be less than or equal to [10]",
        ),
        (
            {"strategy": "word", "max_chunk_size": 20, "overlap": -1},
            "[chunking_settings] Invalid value [-1]. [overlap] must be a non-negative integer",
        ),
        (
            {"strategy": "word", "max_chunk_size": "20", "overlap": 1},
            "[chunking_settings] field [max_chunk_size] is not of the expected type. The value [20] cannot be converted to a [Integer]",
        ),
        (
            {"strategy": "word", "max_chunk_size": 20, "overlap": 2.5},
            "[chunking_settings] field [overlap] is not of the expected type. The value [2.5] cannot be converted to a [Integer]",
        ),
        (
            {"strategy": "word", "max_chunk_size": 20, "overlap": 2, "sentence_overlap": 1},
            "Word based chunking settings can not have the following settings: [sentence_overlap]",
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 19},
            "[chunking_settings] Invalid value [19]. [max_chunk_size] must be greater than or equal to [20]",
        ),
        ({"strategy": "sentence"}, "[chunking_settings] does not contain the required setting [max_chunk_size]"),
        (
            {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 2},
            "[chunking_settings] sentence_overlap[2] must be either 0 or 1",
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 20, "overlap": 2},
            "Sentence based chunking settings can not have the following settings: [overlap]",
        ),
        (
            {"strategy": "none", "max_chunk_size": 20},
            "When chunking is disabled (none), settings can not have the following: [max_chunk_size]",
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 9},
            "[chunking_settings] Invalid value [9]. [max_chunk_size] must be greater than or equal to [10]",
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 20, "separators": []},
            "Recursive chunking settings can not have an empty list of separators",
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 20, "separators": ["\n"], "separator_group": "markdown"},
            "Recursive chunking settings can not have both separators and separator_group",
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 20, "separator_group": "html"},
            "[chunking_settings] Invalid value [html] received. [separator_group] must be one of [plaintext, markdown]",
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 20, "overlap": 3},
            "Recursive chunking settings can not have the following settings: [overlap]",
        ),
    ],
)
def test_chunking_rules(settings: dict[str, Any], message: str) -> None:
    assert message in chunking_errors(settings)


def test_invalid_separator_regex() -> None:
    (error,) = chunking_errors({"strategy": "recursive", "max_chunk_size": 20, "separators": ["("]})
    assert error.startswith("[chunking_settings] Invalid value [(]. [separators] must be regular expressions")


def test_chunking_settings_constructed_directly_are_checked() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ChunkingSettings(strategy="word", max_chunk_size=10)


# ------------------------------------------------------------------ from_url and the environment


def test_from_url_reads_hf_token_then_hub_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HUGGINGFACEHUB_API_TOKEN", "hub-token")
    assert InferenceEndpoint.from_url("http://127.0.0.1:1").api_key.get_secret_value() == "hub-token"
    monkeypatch.setenv("HF_TOKEN", "hf-token")
    endpoint = InferenceEndpoint.from_url("http://127.0.0.1:1", requests_per_minute=60)
    assert endpoint.api_key.get_secret_value() == "hf-token"
    assert endpoint.requests_per_minute == 60
    assert InferenceEndpoint.from_url("http://127.0.0.1:1", "explicit").api_key.get_secret_value() == "explicit"


def test_from_url_without_any_key_is_keyless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACEHUB_API_TOKEN", raising=False)
    endpoint = InferenceEndpoint.from_url("http://127.0.0.1:1")
    assert endpoint.api_key is None
    assert "api_key" not in endpoint.to_dict()["service_settings"]
    assert pickle.loads(pickle.dumps(endpoint)) == endpoint


def test_from_request_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "from-env")
    assert errors_of(payload=body(api_key=...)) == ["[secret_settings] does not contain the required setting [api_key]"]


def test_config_error_is_a_value_error_and_hf_infer_error() -> None:
    with pytest.raises(ValueError, match="url") as info:
        InferenceEndpoint.from_request("text_embedding", "a", body(url=""))
    assert isinstance(info.value, HFInferError)


def test_endpoint_is_frozen_and_picklable() -> None:
    endpoint = InferenceEndpoint.from_request("text_embedding", "a", SEED_BODY)
    with pytest.raises(ValueError, match="frozen"):
        endpoint.inference_id = "b"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(endpoint)) == endpoint


@pytest.mark.parametrize("build", ["from_request", "from_url"])
def test_each_elasticsearch_rule_runs_once_per_parse(build: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #19: the URL rule ran twice and the chunking rules three times (the models re-ran them)."""
    import hf_infer_core.config._endpoint as endpoint
    import hf_infer_core.config._settings as settings

    counts: dict[str, int] = {}
    # Each rule counted wherever it is called from: the parser (_endpoint) and the models (_settings).
    for module, name in (
        (endpoint, "_url_error"),
        (settings, "_url_error"),
        (settings, "_validate_chunking"),
        (endpoint, "key_problem"),
        (settings, "checked_key"),  # the model's check, which a parse must not run again
    ):
        original = getattr(module, name)

        def counting(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            counts[_name] = counts.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    chunking = {"strategy": "word", "max_chunk_size": 50, "overlap": 5}
    if build == "from_request":
        body = {"service": "hugging_face", "service_settings": {"url": "http://h/embed", "api_key": "k"}}
        InferenceEndpoint.from_request("text_embedding", "x", {**body, "chunking_settings": chunking})
    else:
        InferenceEndpoint.from_url("http://h/embed", "k", chunking_settings=chunking)
    assert counts == {"_url_error": 1, "key_problem": 1, "_validate_chunking": 1}
    # A model built directly still runs the rules, once.
    counts.clear()
    settings.ChunkingSettings(strategy="word", max_chunk_size=50, overlap=5)
    assert counts == {"_validate_chunking": 1}
