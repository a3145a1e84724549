"""Hardening II (issue #21), without a network: the smaller cases, and only typed errors escape."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    ConfigError,
    EmbeddingClient,
    HFInferError,
    InferenceEndpoint,
    ResponseFormatError,
    chunk_text,
)
from hf_infer_core.limits._ratelimit import bucket_key
from langchain_hf_infer import HFInferEmbeddings, HFInferTextSplitter
from llama_index_hf_infer import HFInferEmbedding, HFInferNodeParser

from .fakes import FakeClock, endpoint, limiter, vector_for

URL = "http://endpoint.test/embed"


def body(**service_settings: Any) -> dict[str, Any]:
    return {"service": "hugging_face", "service_settings": {"url": URL, "api_key": "k", **service_settings}}


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


# ------------------------------------------------------------------ only typed errors escape

BAD_SETTINGS: list[dict[str, Any]] = [
    {"api_key": "hf_key\n\x00"},
    {"api_key": "\ud800"},
    {"url": "http://[::1:8080"},
    {"dimensions": 10**30},
    {"max_input_tokens": 0},
    {"requests_per_minute": -1},
    {"batch_size": 0},
    {"rate_limit_backend": "redis://host:99999/0"},
    {"rate_limit_backend": "ftp://x"},
    {"tokenizer": "/nonexistent/tokenizer.json"},
    {"wire_format": "base64", "prompt_name": "q"},
    {"chunking_settings": {"strategy": "word", "max_chunk_size": 5}},
]


def _entry_points() -> list[tuple[str, Callable[[dict[str, Any]], object]]]:
    def from_request(bad: dict[str, Any]) -> object:
        settings = {k: v for k, v in bad.items() if k in ("api_key", "url", "dimensions", "max_input_tokens")}
        b = body(**settings)
        if "requests_per_minute" in bad:
            b["service_settings"]["rate_limit"] = {"requests_per_minute": bad["requests_per_minute"]}
        if "chunking_settings" in bad:
            b["chunking_settings"] = bad["chunking_settings"]
        return InferenceEndpoint.from_request("text_embedding", "x", b)

    def from_url(bad: dict[str, Any]) -> object:
        options = {k: v for k, v in bad.items() if k in ("dimensions", "max_input_tokens", "chunking_settings")}
        rpm = bad.get("requests_per_minute", 3000)
        return InferenceEndpoint.from_url(
            bad.get("url", URL), bad.get("api_key", "k"), requests_per_minute=rpm, **options
        )

    def client(bad: dict[str, Any]) -> object:
        ep = from_url(
            {
                k: v
                for k, v in bad.items()
                if k not in ("batch_size", "rate_limit_backend", "tokenizer", "wire_format", "prompt_name")
            }
        )
        options = {
            k: v for k, v in bad.items() if k in ("batch_size", "rate_limit_backend", "wire_format", "prompt_name")
        }
        return EmbeddingClient(ep, tokenizer=bad.get("tokenizer"), **options)

    def adapter(cls: Any) -> Callable[[dict[str, Any]], object]:
        return lambda bad: cls(**{"url": URL, "api_key": "k", **bad})

    def splitter(cls: Any) -> Callable[[dict[str, Any]], object]:
        return lambda bad: cls(
            bad.get("chunking_settings"), tokenizer=bad.get("tokenizer"), max_input_tokens=bad.get("max_input_tokens")
        )

    return [
        ("InferenceEndpoint.from_request", from_request),
        ("InferenceEndpoint.from_url", from_url),
        ("EmbeddingClient", client),
        ("HFInferEmbeddings", adapter(HFInferEmbeddings)),
        ("HFInferEmbedding", adapter(HFInferEmbedding)),
        ("HFInferTextSplitter", splitter(HFInferTextSplitter)),
        ("HFInferNodeParser", splitter(HFInferNodeParser)),
        ("chunk_text", lambda bad: chunk_text("some text " * 50, bad.get("chunking_settings"))),
    ]


@pytest.mark.parametrize(("name", "build"), _entry_points(), ids=[n for n, _ in _entry_points()])
def test_every_public_entry_point_raises_only_typed_errors(
    name: str, build: Callable[[dict[str, Any]], object]
) -> None:
    for bad in BAD_SETTINGS:
        try:
            build(bad)
        except (HFInferError, TypeError) as err:  # TypeError: a wrong Python type passed by the caller
            message = str(err)
        except ImportError as err:  # an optional extra that is not installed, named (the lowest-versions run)
            message = str(err)
            if "pip install" not in message or "hf-infer[" not in message:
                pytest.fail(f"{name} raised an ImportError that names no extra: {message}")
        except Exception as err:
            pytest.fail(f"{name} with {list(bad)} raised {type(err).__name__}: {err}")
        else:
            continue
        assert "hf_key" not in message and "\ud800" not in message


def test_a_local_protocol_error_is_not_retried_and_does_not_carry_the_header() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {request.headers.get('authorization')}'")

    with (
        EmbeddingClient(endpoint(), transport=httpx.MockTransport(handler), discover=False, max_retries=5) as client,
        pytest.raises(HFInferError) as info,
    ):
        client.embed(["x"])
    assert calls == 1  # not retried: nothing was sent, and sending again cannot help
    assert info.value.attempts == 1
    assert "SECRET" not in str(info.value) and info.value.__cause__ is None
