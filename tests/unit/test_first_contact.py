"""What a new user meets first: ConfigError for every bad setting, settings that take effect when
changed, errors that say what to do, per-kind prompts, the adapters' model, no client-side limit."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from hf_infer_core import (
    AuthenticationError,
    ConfigError,
    EmbeddingClient,
    InferenceEndpoint,
    TransportError,
)
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from .fakes import SECRET, vector_for

URL = "http://endpoint.test/embed"
ADAPTERS = [HFInferEmbeddings, HFInferEmbedding]


class Recorder:
    """Answers /info (a model id) and /embed; keeps each request's URL and JSON body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json={"model_id": "sentence-transformers/all-MiniLM-L6-v2"})
        body = json.loads(request.content)
        self.requests.append((str(request.url), body))
        return httpx.Response(200, json=[vector_for(t) for t in body["inputs"]])

    @property
    def batch_sizes(self) -> list[int]:
        return [len(body["inputs"]) for _, body in self.requests]


def adapter(cls: Any, recorder: Recorder, **options: Any) -> Any:
    transport = httpx.MockTransport(recorder)
    options.setdefault("url", URL)
    return cls(
        api_key=SECRET,
        requests_per_minute=10**6,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        **options,
    )


def embed(model: Any, texts: list[str]) -> list[list[float]]:
    if isinstance(model, HFInferEmbeddings):
        return model.embed_documents(texts)
    return model.get_text_embedding_batch(texts)


@pytest.mark.parametrize("cls", ADAPTERS)
@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_concurrency": "4"}, "max_concurrency"),
        ({"wire_format": "base64", "normalize": True}, "wire_format='base64'"),
        ({"wire_format": "base64", "query_prompt_name": "query"}, "query_prompt_name"),
        ({"tokenizer": "/no/such/tokenizer.json"}, "cannot load a tokenizer.json"),
        ({"rate_limit_backend": "redis://host:notaport/0"}, "not a valid Redis URL"),
        ({"rate_limit_backend": "redis:///0"}, "needs a host"),
        ({"url": ""}, "[url]"),
        ({"unknown_option": 1}, "unknown_option"),
    ],
)
def test_adapter_constructors_raise_config_error(cls: Any, options: dict[str, Any], names: str) -> None:
    if "tokenizer" in options:
        pytest.importorskip("tokenizers", reason="without the tokenizers extra, tokenizer= is an ImportError naming it")
    options.setdefault("url", URL)
    with pytest.raises(ConfigError) as info:
        cls(api_key=SECRET, **options)
    assert isinstance(info.value, ValueError)
    assert names in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("cls", ADAPTERS)
def test_a_setting_assigned_after_construction_takes_effect_on_the_next_call(cls: Any) -> None:
    recorder = Recorder()
    model = adapter(cls, recorder, batch_size=4)
    embed(model, [f"text {i}" for i in range(8)])
    model.batch_size = 1
    embed(model, ["a", "b"])
    assert recorder.batch_sizes == [4, 4, 1, 1]
    model.url = "http://other.test/embed"
    embed(model, ["c"])
    assert recorder.requests[-1][0] == "http://other.test/embed"
    with pytest.raises(ConfigError, match="batch_size"):
        model.batch_size = 0
    assert model.batch_size == 1  # a refused value leaves the setting as it was


@pytest.mark.parametrize("cls", ADAPTERS)
def test_from_endpoint_overrides_apply(cls: Any) -> None:
    endpoint = InferenceEndpoint.from_url(URL, SECRET, requests_per_minute=120)
    model = cls.from_endpoint(endpoint, url="http://other.test/embed", requests_per_minute=5)
    assert model.endpoint.url == "http://other.test/embed"
    assert model.endpoint.requests_per_minute == 5
    same = cls.from_endpoint(endpoint, batch_size=3)
    assert same.endpoint is endpoint  # nothing of the endpoint overridden: used as it is


@pytest.mark.parametrize("cls", ADAPTERS)
def test_model_is_known_at_construction_and_never_changes(cls: Any) -> None:
    """Issue #29: a cache namespaced on ``model`` must not change after a first call, nor be shared by endpoints."""
    recorder = Recorder()
    model = adapter(cls, recorder, inference_id="my-embeddings")
    before = model.model
    assert before == f"my-embeddings@{URL}" and model.discovered_model is None
    embed(model, ["x"])
    assert model.model == before  # discovery does not touch it
    assert model.discovered_model == "sentence-transformers/all-MiniLM-L6-v2"
    other = adapter(cls, Recorder(), url="http://other.test/embed")
    assert other.model != adapter(cls, Recorder()).model  # the default inference id, two endpoints
    pinned = adapter(cls, Recorder(), model="my-namespace")
    embed(pinned, ["x"])
    assert pinned.model == "my-namespace"
    assigned = adapter(cls, Recorder())
    assigned.model = "set-later"
    embed(assigned, ["x"])
    assert assigned.model == "set-later"


def test_query_and_document_prompt_names_are_sent_per_kind() -> None:
    recorder = Recorder()
    model = adapter(HFInferEmbeddings, recorder, query_prompt_name="query", document_prompt_name="passage")
    model.embed_query("q")
    model.embed_documents(["d"])
    assert [body.get("prompt_name") for _, body in recorder.requests] == ["query", "passage"]
    both = Recorder()
    adapter(HFInferEmbeddings, both, prompt_name="retrieval").embed_query("q")
    assert both.requests[0][1]["prompt_name"] == "retrieval"


def test_no_client_side_limit_with_requests_per_minute_none() -> None:
    recorder = Recorder()
    model = HFInferEmbeddings(
        url=URL,
        api_key=SECRET,
        requests_per_minute=None,
        batch_size=1,
        max_concurrency=1,
        http_client=httpx.Client(transport=httpx.MockTransport(recorder)),
    )
    assert model.endpoint.requests_per_minute is None
    model.embed_documents([f"t{i}" for i in range(50)])  # at 3000/min this would take a second
    assert len(recorder.requests) == 50
    assert repr(model._session.client.rate_limiter) == "<NoLimit>"
    body = {"service": "hugging_face", "service_settings": {"url": URL, "api_key": "k"}}
    for rpm in (0, -1, "60"):  # the Elasticsearch body keeps Elasticsearch's rule
        body["service_settings"]["rate_limit"] = {"requests_per_minute": rpm}  # type: ignore[index]
        with pytest.raises(ConfigError, match="requests_per_minute"):
            InferenceEndpoint.from_request("text_embedding", "x", body)


@pytest.mark.parametrize("status", [401, 403])
def test_an_auth_failure_says_to_check_api_key_and_hf_token(status: int) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status)  # TEI's bare 401: no body at all

    endpoint = InferenceEndpoint.from_url(URL, SECRET)
    with (
        EmbeddingClient(endpoint, transport=httpx.MockTransport(refuse), discover=False) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.embed(["x"])
    message = str(info.value)
    assert "api_key" in message and "HF_TOKEN" in message
    assert "Error message: []" not in message
    assert SECRET not in message


def test_a_refused_connection_is_reported_within_three_seconds() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    endpoint = InferenceEndpoint.from_url(f"http://127.0.0.1:{port}/embed", None, requests_per_minute=None)
    started = time.monotonic()
    with EmbeddingClient(endpoint) as client, pytest.raises(TransportError) as info:
        client.embed(["x"])
    assert time.monotonic() - started < 3.5
    assert f"http://127.0.0.1:{port}/info" in str(info.value) or f"http://127.0.0.1:{port}/embed" in str(info.value)
    assert "is the endpoint running" in str(info.value)
    assert info.value.refused


def test_a_url_without_a_port_is_shown_without_a_stray_colon() -> None:
    from hf_infer_core.drivers._httpx import shown as _shown

    assert _shown(httpx.URL("https://my-endpoint.endpoints.huggingface.cloud/")) == (
        "https://my-endpoint.endpoints.huggingface.cloud/"
    )
    assert _shown(httpx.URL("http://[::1]:8080/embed?token=x")) == "http://[::1]:8080/embed"


@pytest.mark.parametrize(
    "method",
    [
        HFInferEmbeddings.embed_documents,
        HFInferEmbeddings.aembed_documents,
        HFInferEmbeddings.embed_iter,
        HFInferEmbedding.embed_iter,
        HFInferEmbeddings.aembed_iter,
    ],
)
def test_as_numpy_is_typed_with_overloads(method: Any) -> None:
    import typing

    assert len(typing.get_overloads(method)) == 2
    annotations = [o.__annotations__["return"] for o in typing.get_overloads(method)]
    assert any("list[float]" in a for a in annotations) and any("NDArray" in a for a in annotations)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("base_url", "did you mean `url`? (`base_url` is llama-index's TextEmbeddingsInference's name for it)"),
        ("huggingfacehub_api_token", "did you mean `api_key`? (`huggingfacehub_api_token` is langchain-huggingface"),
        ("auth_token", "did you mean `api_key`?"),
        ("endpoint_url", "did you mean `url`?"),
        ("batchsize", "did you mean `batch_size`?"),
        ("repo_id", "hf-infer calls an endpoint, not a model by name: give url="),
    ],
)
def test_an_unknown_argument_is_answered_with_the_setting_meant(adapter: Any, given: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        adapter(url=URL, api_key=SECRET, **{given: "x"})
    assert f"[{given}] not an option here" in str(caught.value) and said in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_404_says_which_routes_a_tei_server_has() -> None:
    client = EmbeddingClient(
        InferenceEndpoint.from_url("http://endpoint.test/embedd", SECRET),
        transport=httpx.MockTransport(lambda request: httpx.Response(404, text="Not Found")),
    )
    with pytest.raises(Exception, match=r"\[404\].*check the URL's path: a TEI server answers embeddings at /embed"):
        client.embed(["a"])


def test_a_query_over_the_limit_names_embed_query() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(404)
        message = "Input validation error: `inputs` must have less than 256 tokens. Given: 300"
        return httpx.Response(422, json={"error": message, "error_type": "validation"})

    client = EmbeddingClient(InferenceEndpoint.from_url(URL, SECRET), transport=httpx.MockTransport(refuse))
    with pytest.raises(Exception, match="embed_query\\(\\) sends the query as it is") as caught:
        client.embed_query("a very long query " * 100)
    assert "embed()" not in str(caught.value)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_cache_namespace_is_a_key_langchains_file_store_takes(adapter: Any, tmp_path: Any) -> None:
    pytest.importorskip("langchain_classic")  # the dev group's; the lowest-versions run has none
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_classic.storage import LocalFileStore

    model = adapter(url="http://127.0.0.1:8080/embed?x=1", api_key=SECRET)
    other = adapter(url="http://127.0.0.1:8081/embed", api_key=SECRET)
    assert model.cache_namespace != other.cache_namespace and "@" in model.model
    store = LocalFileStore(tmp_path)
    key = f"{model.cache_namespace}{'0' * 40}"  # what CacheBackedEmbeddings keys a text by: namespace + hash
    store.mset([(key, b"vector")])
    assert store.mget([key]) == [b"vector"]
    if adapter is HFInferEmbeddings:
        CacheBackedEmbeddings.from_bytes_store(model, store, namespace=model.cache_namespace)
