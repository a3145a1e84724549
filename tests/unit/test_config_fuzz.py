"""Hypothesis fuzzing of endpoint bodies: only ConfigError ever escapes, and no invalid body is accepted."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_infer_core import ConfigError, InferenceEndpoint

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(["service", "service_settings", "chunking_settings", "task_settings", "url", "api_key", "x"])
bodies = st.dictionaries(keys, json_values, max_size=5) | json_values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task=st.text(max_size=20) | st.sampled_from(["text_embedding", "rerank"]),
    inference_id=st.text(max_size=20),
    body=bodies,
)
def test_anything_gives_an_endpoint_or_a_config_error(task: str, inference_id: str, body: Any) -> None:
    try:
        endpoint = InferenceEndpoint.from_request(task, inference_id, body)
    except ConfigError as err:
        errors = err.errors
    else:
        # Accepted: then it really is a valid text_embedding endpoint.
        assert endpoint.task_type == "text_embedding"
        assert endpoint.service_settings.url
        return
    assert errors


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    settings_: dict[str, Any] = {
        # A token is printable ASCII (surrounding whitespace is stripped, anything else refused).
        "api_key": draw(
            st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
        ),
        "url": draw(
            st.sampled_from(["http://127.0.0.1:8080/embed", "https://x.endpoints.huggingface.cloud", "http://h:1/"])
        ),
    }
    if draw(st.booleans()):
        settings_["rate_limit"] = {"requests_per_minute": draw(st.integers(1, 10**6))}
    if draw(st.booleans()):
        settings_["similarity"] = draw(st.sampled_from(["cosine", "DOT_PRODUCT", "l2_norm"]))
    if draw(st.booleans()):
        settings_["dimensions"] = draw(st.integers(1, 4096))
    body: dict[str, Any] = {"service": "hugging_face", "service_settings": settings_}
    strategy = draw(st.sampled_from([None, "empty", "word", "sentence", "none", "recursive"]))
    if strategy == "empty":
        body["chunking_settings"] = {}
    elif strategy == "word":
        size = draw(st.integers(10, 300))
        body["chunking_settings"] = {
            "strategy": "word",
            "max_chunk_size": size,
            "overlap": draw(st.integers(0, size // 2)),
        }
    elif strategy == "sentence":
        chunking = {"strategy": "sentence", "max_chunk_size": draw(st.integers(20, 300))}
        if draw(st.booleans()):
            chunking["sentence_overlap"] = draw(st.sampled_from([0, 1]))
        body["chunking_settings"] = chunking
    elif strategy == "none":
        body["chunking_settings"] = {"strategy": "none"}
    elif strategy == "recursive":
        chunking = {"strategy": "recursive", "max_chunk_size": draw(st.integers(10, 300))}
        if draw(st.booleans()):
            chunking["separator_group"] = draw(st.sampled_from(["plaintext", "markdown"]))
        body["chunking_settings"] = chunking
    return body


def _chunking(body: dict[str, Any]) -> dict[str, Any]:
    body.setdefault("chunking_settings", {"strategy": "word", "max_chunk_size": 50, "overlap": 5})
    if not body["chunking_settings"]:
        body["chunking_settings"] = {"strategy": "word", "max_chunk_size": 50, "overlap": 5}
    return body["chunking_settings"]


def _set(path: str, value: Any):  # type: ignore[no-untyped-def]
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return mutate


def _delete(path: str):  # type: ignore[no-untyped-def]
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for p in parents:
            node = node[p]
        node.pop(last, None)

    return mutate


def _chunk_set(key: str, value: Any):  # type: ignore[no-untyped-def]
    def mutate(body: dict[str, Any]) -> None:
        _chunking(body)[key] = value

    return mutate


def _sentence(**values: Any):  # type: ignore[no-untyped-def]
    def mutate(body: dict[str, Any]) -> None:
        body["chunking_settings"] = {"strategy": "sentence", "max_chunk_size": 100, **values}

    return mutate


INVALIDATE = {
    "no url": _delete("service_settings.url"),
    "empty url": _set("service_settings.url", ""),
    "bad url": _set("service_settings.url", "not a url"),
    "url not a string": _set("service_settings.url", 5),
    "no api_key": _delete("service_settings.api_key"),
    "empty api_key": _set("service_settings.api_key", ""),
    "blank api_key": _set("service_settings.api_key", " \n"),
    "api_key with a newline inside": _set("service_settings.api_key", "hf_a\nb"),
    "rpm zero": _set("service_settings.rate_limit", {"requests_per_minute": 0}),
    "rpm float": _set("service_settings.rate_limit", {"requests_per_minute": 1.5}),
    "rpm bool": _set("service_settings.rate_limit", {"requests_per_minute": True}),
    "similarity": _set("service_settings.similarity", "manhattan"),
    "dimensions": _set("service_settings.dimensions", 0),
    "unknown service setting": _set("service_settings.model", "x"),
    "unknown top-level key": _set("extra", 1),
    "service": _set("service", "openai"),
    "no service": _delete("service"),
    "task settings": _set("task_settings", {"a": 1}),
    "no strategy": _set("chunking_settings", {"max_chunk_size": 100}),
    "bad strategy": _chunk_set("strategy", "paragraph"),
    "word size small": _set("chunking_settings", {"strategy": "word", "max_chunk_size": 9, "overlap": 0}),
    "word size big": _set("chunking_settings", {"strategy": "word", "max_chunk_size": 301, "overlap": 0}),
    "word overlap": _set("chunking_settings", {"strategy": "word", "max_chunk_size": 40, "overlap": 21}),
    "word no overlap": _set("chunking_settings", {"strategy": "word", "max_chunk_size": 40}),
    "word extra": _set(
        "chunking_settings", {"strategy": "word", "max_chunk_size": 40, "overlap": 2, "sentence_overlap": 1}
    ),
    "sentence small": _sentence(max_chunk_size=19),
    "sentence overlap 2": _sentence(sentence_overlap=2),
    "sentence with overlap": _sentence(overlap=3),
    "none with size": _set("chunking_settings", {"strategy": "none", "max_chunk_size": 10}),
    "recursive both": _set(
        "chunking_settings",
        {"strategy": "recursive", "max_chunk_size": 50, "separators": ["\n"], "separator_group": "markdown"},
    ),
    "recursive empty": _set("chunking_settings", {"strategy": "recursive", "max_chunk_size": 50, "separators": []}),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=valid_bodies(), mutation=st.sampled_from([None, *INVALIDATE]), bad_id=st.booleans(), bad_task=st.booleans())
def test_valid_bodies_pass_and_each_mutation_is_caught(
    body: dict[str, Any], mutation: str | None, bad_id: bool, bad_task: bool
) -> None:
    original = copy.deepcopy(body)
    if mutation is not None:
        INVALIDATE[mutation](body)
    task = "chat_completion" if bad_task else "text_embedding"  # a task type hf-infer does not serve
    inference_id = "Not Valid" if bad_id else "my-endpoint"
    should_pass = mutation is None and not bad_id and not bad_task
    try:
        endpoint = InferenceEndpoint.from_request(task, inference_id, body)
    except ConfigError as err:
        errors = err.errors
    else:
        assert should_pass, (mutation, body)
        assert endpoint.api_key.get_secret_value() == original["service_settings"]["api_key"]
        return
    assert not should_pass, (errors, body)
