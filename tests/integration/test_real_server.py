"""End to end over real HTTP with the real all-MiniLM-L6-v2 model: server protocol, retrieval, adapters."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import Document, VectorStoreIndex

from hf_infer_core import AuthenticationError, EmbeddingClient, InferenceEndpoint, PayloadTooLargeError
from hf_infer_server import LocalServer
from langchain_hf_infer import HFInferEmbeddings, HFInferTextSplitter
from llama_index_hf_infer import HFInferEmbedding, HFInferNodeParser

TOPICS = {
    "volcano": "Volcanoes erupt when magma rises through the crust; lava flows and ash clouds follow the eruption.",
    "bread": "Sourdough bread rises slowly: a starter of wild yeast ferments the dough before it is baked in a hot oven.",
    "network": "TCP congestion control shrinks the sending window when packets are lost, then grows it again.",
    "bees": "Honeybees dance to tell the hive where flowers are; the waggle dance encodes distance and direction.",
    "chess": "The Sicilian Defence answers 1.e4 with c5, fighting for the centre from the side of the board.",
    "tides": "Tides follow the pull of the moon and the sun, so the sea rises and falls twice a day on most coasts.",
}
QUERIES = {
    "Why does the ocean level change during the day?": "tides",
    "How do I make bread with natural yeast?": "bread",
    "What happens inside a mountain before lava comes out?": "volcano",
    "How do insects communicate the location of food?": "bees",
}


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture
def embeddings(local_server: LocalServer) -> HFInferEmbeddings:
    return HFInferEmbeddings(url=local_server.embed_url, api_key=local_server.api_key, max_concurrency=2)


# ------------------------------------------------------------------ the server speaks TEI


def test_server_protocol(local_server: LocalServer) -> None:
    auth = {"Authorization": f"Bearer {local_server.api_key}"}
    info = httpx.get(local_server.url + "/info", headers=auth).json()
    assert info["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["max_input_length"] == 256
    assert info["max_client_batch_size"] == 32
    assert httpx.get(local_server.url + "/health", headers=auth).status_code == 200
    single = httpx.post(local_server.url + "/", json={"inputs": "hello"}, headers=auth)
    assert single.status_code == 200
    assert len(single.json()) == 1
    assert len(single.json()[0]) == 384
    too_many = httpx.post(local_server.url + "/embed", json={"inputs": ["x"] * 33}, headers=auth)
    assert too_many.status_code == 422  # TEI 1.9: validation errors are 422 (413 up to 1.8)
    assert too_many.json()["error_type"] == "validation"
    too_long = httpx.post(
        local_server.url + "/embed", json={"inputs": ["word " * 400], "truncate": False}, headers=auth
    )
    assert too_long.status_code == 422
    huge = httpx.post(local_server.url + "/embed", content=b"x" * 2_100_000, headers=auth)
    assert huge.status_code == 413
    assert huge.text.startswith("Failed to buffer")


def test_client_splits_batches_the_server_refuses(local_server: LocalServer) -> None:
    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key)
    texts = [f"sentence number {i}" for i in range(100)]
    with EmbeddingClient(endpoint, batch_size=64, max_concurrency=2) as client:
        vectors = client.embed(texts)
    with EmbeddingClient(endpoint, batch_size=8) as client:
        expected = client.embed(texts)
    assert len(vectors) == 100
    for got, want in zip(vectors, expected, strict=True):
        assert cosine(got, want) > 0.9999


def test_single_input_over_the_token_limit_names_its_index(local_server: LocalServer) -> None:
    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key)
    with EmbeddingClient(endpoint, truncate=False) as client, pytest.raises(PayloadTooLargeError) as info:
        client.embed(["short", "word " * 400, "short too"])
    assert info.value.index == 1


def test_wrong_key(local_server: LocalServer) -> None:
    endpoint = InferenceEndpoint.from_url(local_server.embed_url, "not-the-key")
    with EmbeddingClient(endpoint) as client, pytest.raises(AuthenticationError):
        client.embed(["x"])


def test_discovery_reads_tei_info(local_server: LocalServer) -> None:
    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key)
    with EmbeddingClient(endpoint, batch_size=100, discover=True) as client:
        client.embed(["a"])
        assert client.batch_size == 32
        assert client.server_info is not None
        assert client.server_info["max_input_length"] == 256


# ------------------------------------------------------------------ retrieval with the real model


@pytest.mark.parametrize(("query", "topic"), list(QUERIES.items()))
def test_query_ranks_its_topic_first(embeddings: HFInferEmbeddings, query: str, topic: str) -> None:
    names = list(TOPICS)
    docs = embeddings.embed_documents([TOPICS[n] for n in names])
    q = embeddings.embed_query(query)
    scores = [cosine(q, d) for d in docs]
    assert names[scores.index(max(scores))] == topic


def test_langchain_vector_store_with_chunking(local_server: LocalServer) -> None:
    settings = {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0}
    embeddings = HFInferEmbeddings(url=local_server.embed_url, api_key=local_server.api_key, chunking_settings=settings)
    splitter = HFInferTextSplitter(embeddings.endpoint)
    text = " ".join(TOPICS.values())
    chunks = splitter.split_documents([LCDocument(page_content=text, metadata={"source": "topics"})])
    assert len(chunks) >= 3
    store = InMemoryVectorStore.from_documents(chunks, embeddings)
    (best, score), *_ = store.similarity_search_with_score("moon and sea level", k=3)
    assert "Tides" in best.page_content
    assert text[best.metadata["start_index"] : best.metadata["end_index"]] == best.page_content
    assert score > 0.3


def test_sync_and_async_agree(embeddings: HFInferEmbeddings) -> None:
    texts = list(TOPICS.values())
    sync = embeddings.embed_documents(texts)
    both = asyncio.run(embeddings.aembed_documents(texts))
    for a, b in zip(sync, both, strict=True):
        assert cosine(a, b) > 0.99999


def test_long_document_is_chunked_and_pooled(local_server: LocalServer) -> None:
    settings = {"strategy": "word", "max_chunk_size": 50, "overlap": 0}
    embeddings = HFInferEmbeddings(url=local_server.embed_url, api_key=local_server.api_key, chunking_settings=settings)
    long_text = " ".join([TOPICS["bees"]] * 8)
    (chunks,) = embeddings.embed_chunks([long_text])
    assert len(chunks) > 2
    (pooled,) = embeddings.embed_documents([long_text])
    assert abs(math.sqrt(sum(x * x for x in pooled)) - 1) < 1e-6
    assert cosine(pooled, chunks[0].embedding) > 0.9


# ------------------------------------------------------------------ LlamaIndex checklist


def test_llama_index_sync_async_parity_and_batching(local_server: LocalServer) -> None:
    model = HFInferEmbedding(url=local_server.embed_url, api_key=local_server.api_key, batch_size=4, max_concurrency=2)
    texts = [f"{v} ({i})" for i, v in enumerate(list(TOPICS.values()) * 3)]
    sync = model.get_text_embedding_batch(texts)
    asynchronous = asyncio.run(model.aget_text_embedding_batch(texts))
    assert len(sync) == len(asynchronous) == 18
    for a, b in zip(sync, asynchronous, strict=True):
        assert cosine(a, b) > 0.99999
    assert cosine(model.get_query_embedding("bees"), asyncio.run(model.aget_query_embedding("bees"))) > 0.99999
    assert cosine(model.get_text_embedding(texts[0]), sync[0]) > 0.99999


def test_llama_index_vector_store_index(local_server: LocalServer) -> None:
    model = HFInferEmbedding(
        url=local_server.embed_url,
        api_key=local_server.api_key,
        chunking_settings={"strategy": "sentence", "max_chunk_size": 40, "sentence_overlap": 0},
    )
    documents = [Document(text=text, metadata={"topic": name}) for name, text in TOPICS.items()]
    nodes = HFInferNodeParser(model.endpoint).get_nodes_from_documents(documents)
    index = VectorStoreIndex(nodes, embed_model=model)
    for query, topic in QUERIES.items():
        (best, *_) = index.as_retriever(similarity_top_k=2).retrieve(query)
        assert best.node.metadata["topic"] == topic
