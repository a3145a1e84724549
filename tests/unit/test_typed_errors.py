"""Bad URLs and options fail at construction with typed errors; closing a client during a call is one too."""

from __future__ import annotations

import functools
import math
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    ClientClosedError,
    ConfigError,
    EmbeddingClient,
    InferenceEndpoint,
)
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from .fakes import TOKEN, endpoint, es_body

body = functools.partial(es_body, url="http://h/embed", api_key=TOKEN)


# ------------------------------------------------------------------ only typed errors


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/embed\x00x",
        "http://127.0.0.1/embed\x7f",
        "http://\u202eevil.example/embed",
        "http://h/" + "a" * 70_000,
        "https://xn--/",
        "http://h:99999/embed",
    ],
    ids=["nul", "del", "bidi-host", "70kB", "bad-idna", "bad-port"],
)
def test_urls_are_parsed_fully_at_configuration_time(url: str) -> None:
    with pytest.raises(ConfigError, match="Invalid url"):
        InferenceEndpoint.from_url(url, "k")
    with pytest.raises(ConfigError, match="Invalid url"):
        InferenceEndpoint.from_request("text_embedding", "x", body(url=url))


@pytest.mark.parametrize("cls", [EmbeddingClient, HFInferEmbeddings, HFInferEmbedding])
def test_credentials_in_the_url_are_refused(cls: Any) -> None:
    url = "http://user:pass@127.0.0.1/embed"
    # ConfigError from the clients; the adapters' pydantic ValidationError (a ValueError) carries it.
    with pytest.raises(ValueError, match=r"credentials in the url are not accepted; put the token in \[api_key\]"):
        cls(InferenceEndpoint.from_url(url, "k")) if cls is EmbeddingClient else cls(url=url, api_key="k")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("batch_size", 0),
        ("max_concurrency", 0),
        ("timeout", 0),
        ("timeout", math.nan),
        ("timeout", math.inf),
        ("max_retries", -1),
        ("max_retry_wait", -1.0),
        ("retry_deadline", -5.0),
        ("batch_size", True),
        ("timeout", "30"),
    ],
)
@pytest.mark.parametrize("cls", [EmbeddingClient, AsyncEmbeddingClient, HFInferEmbeddings, HFInferEmbedding])
def test_every_option_is_validated_at_construction(cls: Any, option: str, value: Any) -> None:
    client = cls in (EmbeddingClient, AsyncEmbeddingClient)
    args: tuple[Any, ...] = (endpoint(),) if client else ()
    kwargs: dict[str, Any] = {} if client else {"url": "http://h/embed", "api_key": "k"}
    with pytest.raises(ValueError, match=option):
        cls(*args, **kwargs, **{option: value})


@pytest.mark.parametrize("rpm", [True, "3000", 0, 2**63])
@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_requests_per_minute_takes_an_int_only(cls: Any, rpm: Any) -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        cls(url="http://h/embed", api_key="k", requests_per_minute=rpm)


def test_close_during_an_embed_is_a_typed_error() -> None:
    client: EmbeddingClient

    def handler(request: httpx.Request) -> httpx.Response:
        client.close()  # another thread closing the client while this call is in flight
        return httpx.Response(500, json={"error": "retry me"})

    client = EmbeddingClient(endpoint(), transport=httpx.MockTransport(handler), max_retries=2, sleep=lambda s: None)
    with pytest.raises(ClientClosedError, match="closed while this call"):
        client.embed(["a"])


async def test_close_during_an_async_embed_is_a_typed_error() -> None:
    http = httpx.AsyncClient()

    async def handler(request: httpx.Request) -> httpx.Response:
        await http.aclose()
        return httpx.Response(500, json={"error": "retry me"})

    http._transport = httpx.MockTransport(handler)

    async def no_sleep(seconds: float) -> None:
        return None

    client = AsyncEmbeddingClient(endpoint(), http_client=http, max_retries=2, sleep=no_sleep)
    with pytest.raises(ClientClosedError):
        await client.embed(["a"])
