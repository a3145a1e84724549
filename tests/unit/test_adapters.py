"""Adapter behaviour without a server: construction, copies, pickles, dumps, and the standard unit suite."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import httpx
import pytest
from langchain_tests.unit_tests import EmbeddingsUnitTests

from hf_infer_core import ConfigError
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from .fakes import SECRET

URL = "http://127.0.0.1:9/embed"


def query(model: Any, text: str) -> list[float]:
    """The framework's one-query method: LangChain's embed_query, LlamaIndex's get_query_embedding."""
    method = getattr(model, "embed_query", None) or model.get_query_embedding
    result: list[float] = method(text)
    return result  # nothing listens there: construction must not connect


BODY = {
    "service": "hugging_face",
    "service_settings": {
        "api_key": SECRET,
        "url": URL,
        "rate_limit": {"requests_per_minute": 120},
        "similarity": "dot_product",
    },
    "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 10},
}


class TestHFInferEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[HFInferEmbeddings]:
        return HFInferEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"url": URL, "api_key": SECRET}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return ({"HF_TOKEN": "env-token", "HF_INFER_URL": URL}, {}, {"api_key": "env-token", "url": URL})


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_from_inference_endpoint(cls: Any) -> None:
    model = cls.from_inference_endpoint(BODY, inference_id="my-endpoint", batch_size=8)
    assert model.endpoint.to_dict()["service_settings"] == {
        "url": URL,
        "similarity": "dot_product",
        "rate_limit": {"requests_per_minute": 120},
    }
    assert model.endpoint.chunking_settings.to_dict() == BODY["chunking_settings"]
    assert model.batch_size == 8
    assert model.api_key.get_secret_value() == SECRET


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_hub_token_fallback(cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HUGGINGFACEHUB_API_TOKEN", "hub-token")
    assert cls(url=URL).api_key.get_secret_value() == "hub-token"


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_invalid_config_raises_at_construction(cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACEHUB_API_TOKEN", raising=False)
    monkeypatch.delenv("HF_INFER_URL", raising=False)
    with pytest.raises(ValueError, match=r"\[url\]"):
        cls(api_key="k")
    with pytest.raises(ValueError, match=r"max_chunk_size"):
        cls(url=URL, api_key="k", chunking_settings={"strategy": "word", "max_chunk_size": 5, "overlap": 0})
    with pytest.raises(ConfigError):
        cls.from_inference_endpoint(BODY, inference_id="Bad Id")


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_pickle_and_deepcopy_survive_and_hold_no_secret(cls: Any) -> None:
    model = cls(url=URL, api_key=SECRET, batch_size=7)
    _ = model._session.client  # a live client (sockets, locks) must not break copies
    data = pickle.dumps(model)
    assert SECRET.encode() not in data
    clone = pickle.loads(data)
    assert clone.api_key.get_secret_value() == SECRET
    assert clone.batch_size == 7
    deep = copy.deepcopy(model)
    assert deep.api_key.get_secret_value() == SECRET
    assert deep._session is not model._session
    assert deep.endpoint == model.endpoint


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_reprs_and_dumps_hold_no_secret(cls: Any) -> None:
    model = cls(url=URL, api_key=SECRET)
    for text in (repr(model), str(model), model.model_dump_json(), repr(model.model_dump()), repr(model.endpoint)):
        assert SECRET not in text


def test_llama_index_dump_round_trip_without_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    model = HFInferEmbedding(url=URL, api_key=SECRET, batch_size=5, query_prefix="query: ")
    dumped = model.to_dict()
    assert dumped["api_key"] is None
    assert SECRET not in model.to_json()
    monkeypatch.setenv("HF_TOKEN", "from-env")
    again = HFInferEmbedding.from_dict(dumped)
    assert again.batch_size == 5
    assert again.query_prefix == "query: "
    assert again.api_key.get_secret_value() == "from-env"
    assert HFInferEmbedding.class_name() == "HFInferEmbedding"


def llama_over(handler: Any, **options: Any) -> HFInferEmbedding:
    """An HFInferEmbedding whose sync and async clients both answer through ``handler``."""
    transport = httpx.MockTransport(handler)
    return HFInferEmbedding(
        url=URL,
        api_key=SECRET,
        requests_per_minute=10**6,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        **{"discover": False, **options},
    )


def llama_batch(model: HFInferEmbedding, texts: list[str], use_async: bool, **kwargs: Any) -> list[list[float]]:
    """``get_text_embedding_batch`` or its async twin."""
    import asyncio

    if use_async:
        return asyncio.run(model.aget_text_embedding_batch(texts, **kwargs))
    return model.get_text_embedding_batch(texts, **kwargs)


def numbered(sizes: list[int]) -> Any:
    """A handler answering text ``t<i>`` with ``[i, 1.0]`` and recording each request's size."""

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        inputs = json.loads(request.content)["inputs"]
        sizes.append(len(inputs))
        return httpx.Response(200, json=[[float(t[1:]), 1.0] for t in inputs])

    return handler


def test_llama_index_uses_real_batching(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        inputs = json.loads(request.content)["inputs"]
        seen.append(len(inputs))
        return httpx.Response(200, json=[[0.5, 0.5]] * len(inputs))

    model = llama_over(handler, batch_size=10, max_concurrency=1)
    assert len(model.get_text_embedding_batch([f"t{i}" for i in range(25)])) == 25
    assert seen == [10, 10, 5]


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_keyless_url_sends_no_authorization_header(cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACEHUB_API_TOKEN", raising=False)
    headers: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers)
        return httpx.Response(200, json=[[0.5, 0.5]])

    model = cls(url=URL, http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert model.endpoint.api_key is None
    assert query(model, "q") == [0.5, 0.5]
    assert "authorization" not in headers[0]
    # The Elasticsearch path keeps Elasticsearch's rule: a request body must carry the key.
    body = {"service": "hugging_face", "service_settings": {"url": URL}}
    with pytest.raises(ConfigError, match=r"\[api_key\]"):
        cls.from_inference_endpoint(body, inference_id="no-key")


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_injected_http_clients_survive_copies_and_leave_pickles(cls: Any) -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=[[1.0]])))
    model = cls(url=URL, api_key=SECRET, http_client=http)
    deep = copy.deepcopy(model)
    assert deep.http_client is http
    assert query(deep, "q") == [1.0]
    clone = pickle.loads(pickle.dumps(model))
    assert clone.http_client is None
    assert "http_client" not in model.model_dump()


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_unknown_and_bad_options_fail_at_construction(cls: Any) -> None:
    with pytest.raises(ValueError, match="bacth_size"):
        cls(url=URL, bacth_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        cls(url=URL, batch_size=0)


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_dimensions_known_without_a_probe_call(cls: Any) -> None:
    assert cls(url=URL, dimensions=384).embedding_dimensions == 384
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=[[1.0, 0.0, 0.0]])))
    model = cls(url=URL, http_client=http)
    assert model.embedding_dimensions is None  # unknown until the endpoint has answered once
    query(model, "q")
    assert model.embedding_dimensions == 3


@pytest.mark.parametrize("cls", [HFInferEmbeddings, HFInferEmbedding])
def test_from_inference_endpoint_parses_the_body_once(cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hf_infer_core import InferenceEndpoint

    calls: list[str] = []
    original = InferenceEndpoint.from_url.__func__  # type: ignore[attr-defined]

    def counting(klass: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append("from_url")
        return original(klass, *args, **kwargs)

    monkeypatch.setattr(InferenceEndpoint, "from_url", classmethod(counting))
    model = cls.from_inference_endpoint(BODY, inference_id="my-endpoint")
    assert calls == []
    assert model.endpoint.inference_id == "my-endpoint"


class _Events:
    """Every LlamaIndex instrumentation event and callback payload of the embedding calls made inside."""

    def __enter__(self) -> _Events:
        from llama_index.core.callbacks import CallbackManager, LlamaDebugHandler
        from llama_index.core.instrumentation import get_dispatcher
        from llama_index.core.instrumentation.event_handlers import BaseEventHandler

        events: list[Any] = []

        class Collect(BaseEventHandler):
            @classmethod
            def class_name(cls) -> str:
                return "Collect"

            def handle(self, event: Any, **kwargs: Any) -> None:
                events.append(event)

        self.events = events
        self.handler = Collect()
        self.debug = LlamaDebugHandler()
        self.callbacks = CallbackManager([self.debug])
        get_dispatcher().add_event_handler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        from llama_index.core.instrumentation import get_dispatcher

        get_dispatcher().event_handlers.remove(self.handler)

    def named(self, name: str) -> list[Any]:
        return [e for e in self.events if e.class_name() == name]


@pytest.mark.parametrize("use_async", [False, True])
def test_llama_index_batch_streams_across_groups_and_reports_each_group(use_async: bool) -> None:
    from llama_index.core.callbacks.schema import CBEventType, EventPayload

    sizes: list[int] = []
    texts = [f"t{i}" for i in range(25)]
    with _Events() as seen:
        model = llama_over(
            numbered(sizes), batch_size=4, max_concurrency=2, embed_batch_size=10, callback_manager=seen.callbacks
        )
        vectors = llama_batch(model, texts, use_async)
    assert vectors == [[float(i), 1.0] for i in range(25)]
    # One pipeline: requests of batch_size run across the groups of embed_batch_size (BaseEmbedding's
    # loop would send 4, 4, 2 for each group of 10).
    assert sizes == [4, 4, 4, 4, 4, 4, 1]
    groups = [texts[0:10], texts[10:20], texts[20:25]]
    assert len(seen.named("EmbeddingStartEvent")) == 3
    ends = seen.named("EmbeddingEndEvent")
    assert [e.chunks for e in ends] == groups
    assert [e.embeddings for e in ends] == [vectors[0:10], vectors[10:20], vectors[20:25]]
    assert all(e.span_id for e in ends)  # inside the method's span, as BaseEmbedding's are
    pairs = seen.debug.get_event_pairs(CBEventType.EMBEDDING)
    assert [p[1].payload[EventPayload.CHUNKS] for p in pairs] == groups
    assert [p[1].payload[EventPayload.EMBEDDINGS] for p in pairs] == [vectors[0:10], vectors[10:20], vectors[20:25]]
    assert all(SECRET not in repr(p[0].payload) for p in pairs)


@pytest.mark.parametrize("use_async", [False, True])
def test_llama_index_batch_failure_stops_the_stream(use_async: bool) -> None:
    import json

    from hf_infer_core import InvalidRequestError

    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        sizes.append(len(inputs))
        if "t12" in inputs:
            return httpx.Response(400, json={"error": "bad input", "error_type": "validation"})
        return httpx.Response(200, json=[[1.0, 0.0]] * len(inputs))

    model = llama_over(handler, batch_size=4, max_concurrency=1, embed_batch_size=10)
    with pytest.raises(InvalidRequestError) as info:
        llama_batch(model, [f"t{i}" for i in range(40)], use_async)
    assert list(info.value.indices) == [12, 13, 14, 15]
    assert len(sizes) == 4  # nothing was sent after the failed batch


def test_llama_index_cache_takes_base_embeddings_loop() -> None:
    if "embeddings_cache" not in HFInferEmbedding.model_fields:
        pytest.skip("this llama-index-core has no embeddings_cache")
    from llama_index.core.storage.kvstore import SimpleKVStore

    sizes: list[int] = []
    model = llama_over(numbered(sizes), batch_size=4, embed_batch_size=10, embeddings_cache=SimpleKVStore())
    texts = [f"t{i}" for i in range(12)]
    assert model.get_text_embedding_batch(texts) == [[float(i), 1.0] for i in range(12)]
    sent = sum(sizes)
    assert model.get_text_embedding_batch(texts) == [[float(i), 1.0] for i in range(12)]
    assert sum(sizes) == sent == 12  # the second call came from LlamaIndex's cache


@pytest.mark.parametrize("use_async", [False, True])
def test_llama_index_batch_progress_bar_counts_texts(use_async: bool, capsys: pytest.CaptureFixture[str]) -> None:
    model = llama_over(numbered([]), batch_size=4, embed_batch_size=8)
    vectors = llama_batch(model, [f"t{i}" for i in range(16)], use_async, show_progress=True)
    assert len(vectors) == 16
    err = capsys.readouterr().err
    assert "Embedding" in err and "16/16" in err
    assert "chunks=16" in err and "rate_limit_wait=" in err  # chunks sent and rate-limit waits beside the texts


@pytest.mark.parametrize("use_async", [False, True])
def test_llama_index_show_progress_field_shows_a_bar_for_a_batch_and_none_for_one_text(
    use_async: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    model = llama_over(numbered([]), batch_size=4, show_progress=True)
    llama_batch(model, [f"t{i}" for i in range(200)], use_async)
    err = capsys.readouterr().err
    assert "200/200" in err  # one bar, counting every text as its vector arrives
    model.get_text_embedding("t1")
    model.get_query_embedding("t2")
    assert capsys.readouterr().err == ""  # no bar for a single text
