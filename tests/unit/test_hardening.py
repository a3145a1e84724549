"""The attacker's cases that need no server: config parser limits, URLs, options, echoed secrets."""

from __future__ import annotations

import json
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
    InvalidRequestError,
)
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from .fakes import endpoint

TOKEN = "hf_" + "Ab1" * 12  # shaped like a Hugging Face token (hf_ and 36 letters and digits)


def body(**service: Any) -> dict[str, Any]:
    return {"service": "hugging_face", "service_settings": {"url": "http://h/embed", "api_key": TOKEN, **service}}


# ------------------------------------------------------------------ 9. config parser limits


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
        InferenceEndpoint.from_request("text_embedding", "x", {**body(), "chunking_settings": chunking})


# ------------------------------------------------------------------ 6. only typed errors


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


# ------------------------------------------------------------------ 7. no echoed secrets


@pytest.mark.parametrize(
    "attempt",
    [
        lambda: InferenceEndpoint.from_url(TOKEN, "http://h/embed"),  # arguments swapped
        lambda: InferenceEndpoint.from_request("text_embedding", "x", body(similarity=TOKEN)),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", {**body(), "service": TOKEN}),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", {**body(), "task_settings": {TOKEN: 1}}),
        lambda: InferenceEndpoint.from_request("text_embedding", "x", body(**{TOKEN: "x"})),
        lambda: InferenceEndpoint.from_request("text_embedding", TOKEN, body()),
    ],
    ids=["swapped", "similarity", "service", "task_settings-key", "unknown-key", "inference_id"],
)
def test_config_errors_never_echo_a_token(attempt: Any) -> None:
    with pytest.raises(ConfigError) as info:
        attempt()
    text = str(info.value) + repr(info.value) + json.dumps(info.value.errors)
    assert TOKEN not in text
    assert "[REDACTED]" in text


def test_a_server_echoing_the_authorization_header_does_not_leak_the_key() -> None:
    key = "plain-key-without-token-shape"

    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["authorization"]
        return httpx.Response(400, json={"error": f"bad request, header was {echoed} (also {TOKEN})"})

    ep = InferenceEndpoint.from_url("http://h/embed", key, requests_per_minute=10**6)
    client = EmbeddingClient(ep, transport=httpx.MockTransport(handler))
    with pytest.raises(InvalidRequestError) as info:
        client.embed(["a"])
    for text in (str(info.value), repr(info.value), info.value.body, info.value.message):
        assert key not in text
        assert TOKEN not in text
        assert "[REDACTED]" in text


def test_the_key_lives_only_in_a_redacting_auth_object() -> None:
    client = EmbeddingClient(endpoint())
    assert "SECRET" not in repr(client._auth)
    assert all("SECRET" not in str(v) for v in vars(client._core).values())
    assert "authorization" not in {k.lower() for k in client._core.headers}


# ------------------------------------------------------------------ errors travel and name texts


def test_every_error_pickles_with_its_attributes() -> None:
    import pickle

    import hf_infer_core
    from hf_infer_core import EndpointError, HFInferError

    for name in hf_infer_core.base._errors.__all__:
        cls = getattr(hf_infer_core, name)
        if cls is hf_infer_core.ConfigError:
            error: HFInferError = cls(["one", "two"])
        elif issubclass(cls, EndpointError):
            error = cls("message", status_code=500, body="body")
        else:
            error = cls("message")
        error.with_context(attempts=3, indices=[4, 5])
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is cls and str(again) == str(error) and vars(again) == vars(error), name


def test_embed_documents_errors_name_texts_not_chunks() -> None:
    from hf_infer_core import AuthenticationError

    from .fakes import FakeEndpoint
    from .test_client import sync_client

    long = " ".join(f"w{i}" for i in range(30))  # three chunks of 10 words
    fake = FakeEndpoint(
        script=lambda n, inputs: httpx.Response(401, json={"error": "no"}) if "last" in inputs else None
    )
    ep = endpoint(chunking={"strategy": "word", "max_chunk_size": 10, "overlap": 0})
    with sync_client(fake, endpoint=ep, batch_size=100) as client, pytest.raises(AuthenticationError) as info:
        client.embed_documents([long, long, "last"])
    assert info.value.indices == (0, 1, 2)  # three texts, although the batch held seven chunks
