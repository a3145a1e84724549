"""The configuration parser's limits: nesting, ids, longs, separators Elasticsearch accepts and refuses."""

from __future__ import annotations

import functools

import pytest

from hf_infer_core import (
    ConfigError,
    InferenceEndpoint,
)

from .fakes import TOKEN, es_body

body = functools.partial(es_body, url="http://h/embed", api_key=TOKEN)


# ------------------------------------------------------------------ config parser limits


def test_deeply_nested_json_is_a_config_error() -> None:
    text = '{"service": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(ConfigError, match="nested too deeply"):
        InferenceEndpoint.from_request("text_embedding", "x", text)


@pytest.mark.parametrize("inference_id", ["my-id\n", "my-id\n\n", "\nmy-id"])
def test_inference_id_with_a_newline_is_refused(inference_id: str) -> None:
    with pytest.raises(ConfigError, match="Invalid inference_id"):
        InferenceEndpoint.from_request("text_embedding", inference_id, body())


@pytest.mark.parametrize("rpm", [2**63, 2**64, 10**30])
def test_requests_per_minute_beyond_a_long_is_refused(rpm: int) -> None:
    with pytest.raises(ConfigError, match="requests_per_minute"):
        InferenceEndpoint.from_request("text_embedding", "x", body(rate_limit={"requests_per_minute": rpm}))
    assert InferenceEndpoint.from_request("text_embedding", "x", body(rate_limit={"requests_per_minute": 2**63 - 1}))


@pytest.mark.parametrize("separator", ["(a+)+$", "(a*b?)*", "(x+x+)+y", "((ab)*)+"])
def test_separator_with_nested_quantifiers_is_refused(separator: str) -> None:
    chunking = {"strategy": "recursive", "max_chunk_size": 20, "separators": [separator]}
    with pytest.raises(ConfigError, match="must not nest quantifiers"):
        InferenceEndpoint.from_request("text_embedding", "x", {**body(), "chunking_settings": chunking})


def test_elasticsearch_separator_groups_stay_accepted() -> None:
    for group in ("plaintext", "markdown"):
        chunking = {"strategy": "recursive", "max_chunk_size": 20, "separator_group": group}
        endpoint = InferenceEndpoint.from_request("text_embedding", "x", {**body(), "chunking_settings": chunking})
        # Accepted as Elasticsearch accepts it: the group is kept and shown back, not its expansion.
        assert endpoint.chunking_settings.to_dict()["separator_group"] == group
        assert endpoint.chunking_settings.strategy == "recursive"
