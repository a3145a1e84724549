"""The rerank adapters through LangChain's and LlamaIndex's own interfaces, against the real local server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from langchain_core.documents import Document

from hf_infer_core import ConfigError, InvalidInputError
from hf_infer_server import LocalServer
from langchain_hf_infer import HFInferEmbeddings
from langchain_hf_infer import HFInferRerank as LangChainRerank
from llama_index_hf_infer import HFInferEmbedding
from llama_index_hf_infer import HFInferRerank as LlamaIndexRerank

DOCS = [
    "Walk an adult dog at least twice a day, for half an hour each time.",
    "The central bank raised interest rates by a quarter point.",
    "Puppies need short walks several times a day.",
    "Bake the bread at 220 degrees for thirty minutes.",
    "Cats rarely need to be walked, but some enjoy a harness.",
    "Dogs that are not walked enough often chew furniture.",
]
QUERY = "how often should I walk my dog?"


def server_scores(server: LocalServer, texts: list[str]) -> dict[int, float]:
    answer = httpx.post(
        server.url + "/rerank",
        json={"query": QUERY, "texts": texts, "truncate": True},
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    return {rank["index"]: rank["score"] for rank in answer.json()}


# ------------------------------------------------------------------ LangChain


def test_langchain_compressor_in_a_contextual_compression_retriever(local_server: LocalServer) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.vectorstores import InMemoryVectorStore

    embeddings = HFInferEmbeddings(url=local_server.url + "/embed", api_key=local_server.api_key)
    store = InMemoryVectorStore.from_texts(DOCS, embeddings, metadatas=[{"n": i} for i in range(len(DOCS))])
    reranker = LangChainRerank(url=local_server.url, api_key=local_server.api_key, top_n=2)
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=store.as_retriever(search_kwargs={"k": 4})
    )
    found = retriever.invoke(QUERY)
    retrieved = store.as_retriever(search_kwargs={"k": 4}).invoke(QUERY)
    scores = server_scores(local_server, [d.page_content for d in retrieved])
    best = sorted(scores, key=lambda i: (-scores[i], i))[:2]
    assert [d.page_content for d in found] == [retrieved[i].page_content for i in best]
    assert [d.metadata["relevance_score"] for d in found] == pytest.approx([scores[i] for i in best], rel=1e-5)
    assert all("n" in d.metadata for d in found)  # the document's own metadata kept
    assert all("relevance_score" not in d.metadata for d in retrieved)  # copies: the store's are untouched
    asynchronous = asyncio.run(retriever.ainvoke(QUERY))
    assert [d.page_content for d in asynchronous] == [d.page_content for d in found]


def test_langchain_compressor_direct_calls(local_server: LocalServer) -> None:
    reranker = LangChainRerank(url=local_server.url, api_key=local_server.api_key)
    documents = [Document(page_content=text, metadata={"i": i}) for i, text in enumerate(DOCS)]
    ranked = reranker.compress_documents(documents, QUERY)
    assert len(ranked) == len(DOCS)  # top_n None: all of them
    scores = [d.metadata["relevance_score"] for d in ranked]
    assert scores == sorted(scores, reverse=True)
    assert reranker.compress_documents([], QUERY) == []
    with pytest.raises(InvalidInputError, match="query is empty"):
        reranker.compress_documents(documents, "")
    assert asyncio.run(reranker.acompress_documents(documents[:2], QUERY))[0].metadata["i"] in (0, 1)


def test_langchain_compressor_from_an_elasticsearch_body_and_the_environment(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {
        "service": "hugging_face",
        "service_settings": {"url": local_server.url + "/rerank", "api_key": local_server.api_key},
        "task_settings": {"top_n": 1},
    }
    reranker = LangChainRerank.from_inference_endpoint(json.dumps(body), inference_id="my-reranker", max_concurrency=2)
    assert reranker.top_n == 1 and reranker.endpoint.inference_id == "my-reranker"
    assert len(reranker.compress_documents([Document(page_content=t) for t in DOCS], QUERY)) == 1
    monkeypatch.setenv("HF_INFER_URL", local_server.url)
    monkeypatch.setenv("HF_TOKEN", local_server.api_key or "")
    from_env = LangChainRerank(top_n=3)
    assert len(from_env.compress_documents([Document(page_content=t) for t in DOCS], QUERY)) == 3
    with pytest.raises(ConfigError, match=r"\[top_n\]"):
        LangChainRerank(url=local_server.url, top_n=0)
    with pytest.raises(ConfigError, match="unknown to the"):
        LangChainRerank.from_inference_endpoint({**body, "chunking_settings": {"strategy": "none"}}, inference_id="x")


def test_changing_a_setting_applies_to_the_next_call(local_server: LocalServer) -> None:
    reranker = LangChainRerank(url=local_server.url, api_key=local_server.api_key, top_n=1)
    documents = [Document(page_content=t) for t in DOCS]
    assert len(reranker.compress_documents(documents, QUERY)) == 1
    reranker.top_n = 4
    assert len(reranker.compress_documents(documents, QUERY)) == 4


# ------------------------------------------------------------------ LlamaIndex


def test_llama_index_postprocessor_in_a_query_engine(local_server: LocalServer) -> None:
    from llama_index.core import Document as LlamaDocument
    from llama_index.core import VectorStoreIndex
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.llms import MockLLM

    events: list[str] = []

    class Recorder(BaseEventHandler):
        def handle(self, event: Any, **kwargs: Any) -> None:
            if "ReRank" in event.class_name():
                events.append(event.class_name())

    recorder = Recorder()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        embed_model = HFInferEmbedding(url=local_server.url + "/embed", api_key=local_server.api_key)
        index = VectorStoreIndex.from_documents([LlamaDocument(text=t) for t in DOCS], embed_model=embed_model)
        reranker = LlamaIndexRerank(url=local_server.url, api_key=local_server.api_key, top_n=2)
        engine = index.as_query_engine(similarity_top_k=4, node_postprocessors=[reranker], llm=MockLLM())
        response = engine.query(QUERY)
        retrieved = index.as_retriever(similarity_top_k=4).retrieve(QUERY)
    finally:
        root.event_handlers.remove(recorder)
    scores = server_scores(local_server, [n.node.get_content(metadata_mode="embed") for n in retrieved])  # type: ignore[arg-type]
    best = sorted(scores, key=lambda i: (-scores[i], i))[:2]
    assert [n.node.node_id for n in response.source_nodes] == [retrieved[i].node.node_id for i in best]
    assert [n.score for n in response.source_nodes] == pytest.approx([scores[i] for i in best], rel=1e-5)
    assert events == ["ReRankStartEvent", "ReRankEndEvent"]


def test_llama_index_postprocessor_calls_and_async(local_server: LocalServer) -> None:
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    nodes = [NodeWithScore(node=TextNode(text=t), score=0.1 * i) for i, t in enumerate(DOCS)]
    reranker = LlamaIndexRerank(url=local_server.url, api_key=local_server.api_key, top_n=3)
    ranked = reranker.postprocess_nodes(nodes, query_str=QUERY)
    assert len(ranked) == 3 and [n.score for n in ranked] == sorted((n.score for n in ranked), reverse=True)
    assert [n.score for n in nodes] == [0.1 * i for i in range(len(DOCS))]  # the retriever's scores kept
    bundled = reranker.postprocess_nodes(nodes, QueryBundle(QUERY))
    assert [n.node.node_id for n in bundled] == [n.node.node_id for n in ranked]
    asynchronous = asyncio.run(reranker.apostprocess_nodes(nodes, query_str=QUERY))
    assert [n.node.node_id for n in asynchronous] == [n.node.node_id for n in ranked]
    assert reranker.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(ValueError, match="Missing query bundle"):
        reranker.postprocess_nodes(nodes)
    assert reranker.to_dict()["api_key"] is None
