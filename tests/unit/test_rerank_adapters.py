"""The rerank adapters without a network: fields, environment, copies, pickles, the key, and their calls on a mock."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
from typing import Any

import httpx
import pytest
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, TextNode

from hf_infer_core import ConfigError, RerankOptions
from langchain_hf_infer import HFInferRerank as LangChainRerank
from llama_index_hf_infer import HFInferRerank as LlamaIndexRerank

from .fakes import SECRET

ADAPTERS = [LangChainRerank, LlamaIndexRerank]


def by_length(request: httpx.Request) -> httpx.Response:
    """A ``/rerank`` that scores by text length (longest first); 404 for ``/info``."""
    if request.url.path.endswith("/info"):
        return httpx.Response(404)
    payload = json.loads(request.content)
    ranks = [{"index": i, "score": len(t) / 1000} for i, t in enumerate(payload["texts"])]
    return httpx.Response(200, json=sorted(ranks, key=lambda r: -r["score"]))


def mocked(kind: type[Any], **fields: Any) -> Any:
    return kind(
        url="http://reranker.test",
        api_key=SECRET,
        http_client=httpx.Client(transport=httpx.MockTransport(by_length)),
        http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(by_length)),
        **fields,
    )


@pytest.mark.parametrize("kind", ADAPTERS)
def test_fields_build_a_rerank_endpoint_and_options(kind: type[Any]) -> None:
    reranker = kind(url="http://127.0.0.1:8080", api_key=SECRET, top_n=3, batch_size=8, long_passages="best_chunk")
    assert reranker.endpoint.task_type == "rerank"
    assert reranker.endpoint.task_settings.top_n == 3
    assert isinstance(reranker.client_options, RerankOptions)
    assert reranker.client_options.batch_size == 8 and reranker.client_options.long_passages == "best_chunk"
    assert reranker.model == "hf-infer@http://127.0.0.1:8080"


@pytest.mark.parametrize("kind", ADAPTERS)
def test_bad_settings_are_config_errors_that_never_show_the_key(kind: type[Any]) -> None:
    for fields in ({"top_n": 0}, {"top_n": "3"}, {"url": "not a url"}, {"batch_size": 0}, {"cache": "/tmp/c.db"}):
        with pytest.raises(ConfigError) as info:
            kind(**{"url": "http://h", "api_key": SECRET, **fields})
        assert SECRET not in str(info.value)
    with pytest.raises(ConfigError, match=r"\[url\]"):
        kind(url=None, api_key=SECRET)


@pytest.mark.parametrize("kind", ADAPTERS)
def test_the_environment_is_the_fallback(kind: type[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_INFER_URL", "http://from-env:8080")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    reranker = kind()
    assert reranker.endpoint.url == "http://from-env:8080"
    assert reranker.endpoint.api_key.get_secret_value() == SECRET


@pytest.mark.parametrize("kind", ADAPTERS)
def test_copies_and_pickles_hold_no_key_and_still_work(kind: type[Any]) -> None:
    reranker = kind(url="http://h:1", api_key=SECRET, top_n=2)
    assert SECRET not in repr(reranker)
    assert SECRET.encode() not in pickle.dumps(reranker)
    assert SECRET not in json.dumps(reranker.model_dump(mode="json"))
    for twin in (pickle.loads(pickle.dumps(reranker)), copy.deepcopy(reranker), reranker.model_copy()):
        assert twin.top_n == 2 and twin.endpoint.url == "http://h:1"
        assert twin._session is not reranker._session


def test_langchain_compressor_ranks_on_a_mock() -> None:
    reranker = mocked(LangChainRerank, top_n=2)
    documents = [Document(page_content="x" * n, metadata={"n": n}) for n in (5, 30, 10, 20)]
    ranked = reranker.compress_documents(documents, "q")
    assert [(d.metadata["n"], d.metadata["relevance_score"]) for d in ranked] == [(30, 0.03), (20, 0.02)]
    assert asyncio.run(reranker.acompress_documents(documents, "q")) == ranked
    assert "relevance_score" not in documents[1].metadata


def test_llama_index_postprocessor_ranks_on_a_mock() -> None:
    reranker = mocked(LlamaIndexRerank, top_n=3)
    nodes = [NodeWithScore(node=TextNode(text="y" * n), score=0.9) for n in (5, 30, 10, 20)]
    ranked = reranker.postprocess_nodes(nodes, query_str="q")
    assert [(len(n.node.get_content()), n.score) for n in ranked] == [(30, 0.03), (20, 0.02), (10, 0.01)]
    assert [n.score for n in asyncio.run(reranker.apostprocess_nodes(nodes, query_str="q"))] == [0.03, 0.02, 0.01]
    assert all(n.score == 0.9 for n in nodes)
