"""Inputs at the edges: bucket keys, secrets in queries, JSON Elasticsearch refuses, odd answers, bad items."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    ConfigError,
    EmbeddingClient,
    InferenceEndpoint,
    ResponseFormatError,
)
from hf_infer_core.limits._ratelimit import bucket_key
from langchain_hf_infer import HFInferEmbeddings

from .fakes import FakeClock, endpoint, limiter, vector_for
from .fakes import es_body as body


def test_ipv6_hosts_keep_their_brackets_in_bucket_keys() -> None:
    assert bucket_key("http://[::1]:8080/embed") != bucket_key("http://[::1:8080]/embed")
    assert bucket_key("http://[::1]:8080/embed").startswith("http://[::1]:8080/embed#")


def test_a_token_in_the_query_string_shows_nowhere() -> None:
    url = "https://gateway.test/embed?api_key=sk-live-0123456789&region=eu"
    ep = InferenceEndpoint.from_url(url, "k")
    model = HFInferEmbeddings(url=url, api_key="k")
    client = EmbeddingClient(ep)
    for text in (repr(ep), json.dumps(ep.to_dict()), repr(model), repr(client), bucket_key(url)):
        assert "sk-live-0123456789" not in text, text
    assert ep.to_dict()["service_settings"]["url"] == "https://gateway.test/embed?api_key=[REDACTED]&region=[REDACTED]"
    assert ep.url == url  # the requests still go where they should


def test_duplicate_json_keys_are_refused_as_elasticsearch_refuses_them() -> None:
    text = '{"service": "hugging_face", "service": "openai", "service_settings": {"url": "http://h/e", "api_key": "k"}}'
    with pytest.raises(ConfigError, match="Duplicate field 'service'"):
        InferenceEndpoint.from_request("text_embedding", "x", text)


@pytest.mark.parametrize("key", ["dimensions", "max_input_tokens"])
@pytest.mark.parametrize("value", [2**31, 10**30, 10**5000], ids=["2**31", "10**30", "10**5000"])
def test_integers_out_of_elasticsearchs_range_are_refused(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"\\[{key}\\] must be a positive integer no larger than 2147483647"):
        InferenceEndpoint.from_request("text_embedding", "x", body(**{key: value}))


def test_a_4301_digit_integer_in_json_text_is_a_config_error() -> None:
    text = json.dumps(body()).replace('"k"}', '"k", "dimensions": ' + "9" * 4301 + "}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        InferenceEndpoint.from_request("text_embedding", "x", text)


def test_a_deeply_nested_info_answer_is_ignored_not_a_recursion_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(200, content=b"[" * 200_000 + b"]" * 200_000)
        inputs = json.loads(request.content)["inputs"]
        return httpx.Response(200, json=[vector_for(t) for t in inputs])

    with EmbeddingClient(endpoint(), transport=httpx.MockTransport(handler)) as client:
        assert client.embed(["x"]) == [vector_for("x")]
    assert client.server_info is None


def test_a_base64_answer_with_a_duplicate_index_is_refused() -> None:
    def b64(vector: list[float]) -> str:
        return base64.b64encode(struct.pack("<4f", *vector)).decode()

    def handler(request: httpx.Request) -> httpx.Response:
        data = [{"object": "embedding", "embedding": b64([1.0, 2.0, 3.0, 4.0]), "index": i} for i in (1, 1)]
        return httpx.Response(200, json={"object": "list", "data": data, "model": "m"})

    clock = FakeClock()
    client = EmbeddingClient(
        endpoint(url="http://tei.test/embed"),
        transport=httpx.MockTransport(handler),
        rate_limiter=limiter(clock),
        sleep=clock.sleep,
        clock=clock,
        wire_format="base64",
        discover=False,
    )
    with pytest.raises(ResponseFormatError):
        client.embed(["a", "b"])


def test_embed_iter_names_the_position_of_the_bad_item() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        return httpx.Response(200, json=[vector_for(t) for t in inputs])

    texts: list[Any] = [f"t{i}" for i in range(7)] + [None]
    with (
        EmbeddingClient(endpoint(), transport=httpx.MockTransport(handler), discover=False) as client,
        pytest.raises(TypeError, match=r"texts\[7\] must be a str"),
    ):
        list(client.embed_iter(texts))


def test_a_token_limit_with_no_room_for_a_word_piece_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        if request.url.path.endswith("/tokenize"):
            return httpx.Response(
                200,
                json=[
                    [
                        {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None},
                        {"id": 7, "text": t, "special": False, "start": 0, "stop": len(t)},
                        {"id": 102, "text": "[SEP]", "special": True, "start": None, "stop": None},
                    ]
                    for t in inputs
                ],
            )
        return httpx.Response(200, json=[vector_for(t) for t in inputs])

    ep = endpoint(max_input_tokens=1)
    with (
        EmbeddingClient(ep, transport=httpx.MockTransport(handler), discover=False) as client,
        pytest.raises(ConfigError, match="max_input_tokens=1 leaves no room"),
    ):
        client.embed_documents(["a sentence of several words that needs counting"])
