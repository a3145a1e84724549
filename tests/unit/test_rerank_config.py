"""A rerank endpoint's configuration: Elasticsearch's rules and messages for the task (issue #30)."""

from __future__ import annotations

from typing import Any

import pytest

from hf_infer_core import ConfigError, InferenceEndpoint
from hf_infer_core.config import RerankTaskSettings

KEY = "hf_rerankkey0123456789"


def body(task_settings: Any = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "service": "hugging_face",
        "service_settings": {"api_key": KEY, "url": "https://x.endpoints.huggingface.cloud/rerank"},
    }
    if task_settings is not None:
        out["task_settings"] = task_settings
    out.update(extra)
    return out


def errors_of(payload: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        InferenceEndpoint.from_request("rerank", "my-reranker", payload)
    assert KEY not in str(info.value)
    return info.value.errors


def test_a_rerank_endpoint_parses_with_its_task_settings() -> None:
    endpoint = InferenceEndpoint.from_request(
        "rerank", "my-reranker", body({"top_n": 3, "return_documents": True}, **{})
    )
    assert endpoint.task_type == "rerank"
    assert endpoint.task_settings == RerankTaskSettings(top_n=3, return_documents=True)
    assert endpoint.service_settings.rate_limit.requests_per_minute == 3000
    assert endpoint.to_dict() == {
        "inference_id": "my-reranker",
        "task_type": "rerank",
        "service": "hugging_face",
        "service_settings": {
            "url": "https://x.endpoints.huggingface.cloud/rerank",
            "rate_limit": {"requests_per_minute": 3000},
        },
        "task_settings": {"top_n": 3, "return_documents": True},
    }


def test_task_settings_are_optional_and_empty_by_default() -> None:
    for payload in (body(), body({})):
        endpoint = InferenceEndpoint.from_request("rerank", "r", payload)
        assert endpoint.task_settings == RerankTaskSettings()
        assert endpoint.to_dict()["task_settings"] == {}
    assert "task_settings" not in InferenceEndpoint.from_url("http://h/embed").to_dict()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"top_n": 0}, "[task_settings] Invalid value [0]. [top_n] must be a positive integer"),
        ({"top_n": -2}, "[task_settings] Invalid value [-2]. [top_n] must be a positive integer"),
        (
            {"top_n": "3"},
            "[task_settings] field [top_n] is not of the expected type. The value [3] cannot be converted to a [Integer]",
        ),
        (
            {"top_n": 2.5},
            "[task_settings] field [top_n] is not of the expected type. The value [2.5] cannot be converted to a "
            "[Integer]",
        ),
        (
            {"top_n": True},
            "[task_settings] field [top_n] is not of the expected type. The value [true] cannot be converted to a "
            "[Integer]",
        ),
        (
            {"return_documents": "yes"},
            "[task_settings] field [return_documents] is not of the expected type. The value [yes] cannot be "
            "converted to a [Boolean]",
        ),
        ({"top_k": 3}, "Model configuration contains settings [top_k] unknown to the [hugging_face] service"),
        ([1], "[task_settings] must be an object, got list"),
    ],
)
def test_task_settings_rules(settings: Any, message: str) -> None:
    assert errors_of(body(settings)) == [message]


def test_every_problem_is_reported_together() -> None:
    errors = errors_of(body({"top_n": 0, "return_documents": 1, "extra": 2}))
    assert len(errors) == 3


def test_chunking_settings_are_unknown_to_a_rerank_endpoint() -> None:
    # Elasticsearch reads chunking_settings for the embedding tasks only.
    (error,) = errors_of(body(chunking_settings={"strategy": "word", "max_chunk_size": 100, "overlap": 10}))
    assert error == "Model configuration contains settings [chunking_settings] unknown to the [hugging_face] service"


@pytest.mark.parametrize("name", ["similarity", "dimensions", "max_input_tokens"])
def test_vector_settings_are_unknown_to_a_rerank_endpoint(name: str) -> None:
    payload = body()
    payload["service_settings"][name] = 8 if name != "similarity" else "cosine"
    assert errors_of(payload) == [
        f"Model configuration contains settings [{name}] unknown to the [hugging_face] service"
    ]


def test_service_settings_keep_elasticsearch_rules() -> None:
    payload = body()
    del payload["service_settings"]["url"]
    payload["service_settings"]["rate_limit"] = {"requests_per_minute": 0}
    assert errors_of(payload) == [
        "[service_settings] does not contain the required setting [url]",
        "[rate_limit] Invalid value [0]. [requests_per_minute] must be a positive long",
    ]
    payload = body()
    del payload["service_settings"]["api_key"]
    assert errors_of(payload) == ["[secret_settings] does not contain the required setting [api_key]"]


def test_an_embedding_endpoint_still_refuses_task_settings() -> None:
    with pytest.raises(ConfigError, match=r"settings \[top_n\] unknown"):
        InferenceEndpoint.from_request("text_embedding", "e", body({"top_n": 3}))


def test_from_url_and_console_build_rerank_endpoints() -> None:
    endpoint = InferenceEndpoint.from_url("http://127.0.0.1:8080", task_type="rerank", task_settings={"top_n": 2})
    assert endpoint.task_type == "rerank"
    assert endpoint.task_settings == RerankTaskSettings(top_n=2)
    assert endpoint.api_key is None
    with pytest.raises(ConfigError, match=r"\[top_n\] must be a positive integer"):
        InferenceEndpoint.from_url("http://h", task_type="rerank", task_settings={"top_n": 0})
    with pytest.raises(ConfigError, match="unknown to the"):
        InferenceEndpoint.from_url("http://h", task_type="rerank", dimensions=8)
    console = InferenceEndpoint.from_console(
        'PUT _inference/rerank/r\n{"service": "hugging_face", "service_settings": '
        f'{{"api_key": "{KEY}", "url": "http://h/rerank"}}, "task_settings": {{"return_documents": false}}}}'
    )
    assert console.task_settings == RerankTaskSettings(return_documents=False)


def test_task_settings_belong_to_rerank_endpoints_only() -> None:
    endpoint = InferenceEndpoint.from_url("http://h")
    with pytest.raises(ValueError, match="task_settings are for rerank endpoints"):
        InferenceEndpoint.model_validate({**endpoint.model_dump(), "task_settings": {"top_n": 1}})
