"""Replays of real exchanges with the local all-MiniLM-L6-v2 server (see conftest)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from hf_infer_core import (
    AsyncEmbeddingClient,
    AsyncRerankClient,
    AuthenticationError,
    EmbeddingClient,
    InferenceEndpoint,
    RateLimiter,
    RerankClient,
)
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from ..conftest import SERVER_KEY

CASSETTES = Path(__file__).parents[1] / "cassettes"
DOCS = [
    "The volcano erupted, sending ash and lava down the mountain slopes.",
    "Sourdough bread needs a lively starter, flour, water and patience.",
    "TCP congestion control halves the window when packets are lost.",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def client(url: str, key: str = SERVER_KEY, **options: object) -> EmbeddingClient:
    endpoint = InferenceEndpoint.from_url(url + "/embed", key)
    return EmbeddingClient(endpoint, rate_limiter=RateLimiter(10**9), max_concurrency=1, **options)  # type: ignore[arg-type]


@pytest.mark.vcr
def test_embed_replays_real_vectors(cassette_server: str) -> None:
    with client(cassette_server) as c:
        vectors = c.embed(DOCS)
    assert len(vectors) == 3
    assert all(len(v) == 384 for v in vectors)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in vectors)  # TEI normalises by default


@pytest.mark.vcr
def test_query_is_closest_to_its_topic(cassette_server: str) -> None:
    with client(cassette_server) as c:
        docs = c.embed(DOCS)
        query = c.embed_query("How do I bake bread at home?")
    scores = [cosine(query, d) for d in docs]
    assert scores.index(max(scores)) == 1


@pytest.mark.vcr
def test_wrong_key_is_an_authentication_error(cassette_server: str) -> None:
    with client(cassette_server, key="wrong-key") as c, pytest.raises(AuthenticationError) as info:
        c.embed(["x"])
    assert info.value.status_code == 401


@pytest.mark.vcr
async def test_async_embed_chunks(cassette_server: str) -> None:
    endpoint = InferenceEndpoint.from_url(
        cassette_server + "/embed",
        SERVER_KEY,
        chunking_settings={"strategy": "word", "max_chunk_size": 10, "overlap": 0},
    )
    async with AsyncEmbeddingClient(endpoint, rate_limiter=RateLimiter(10**9), max_concurrency=1) as c:
        (chunks,) = await c.embed_chunks([DOCS[0] + " " + DOCS[1]])
    assert len(chunks) == 3
    assert all(len(ch.embedding) == 384 for ch in chunks)


@pytest.mark.vcr
def test_langchain_and_llama_index_adapters(cassette_server: str) -> None:
    lc = HFInferEmbeddings(url=cassette_server + "/embed", api_key=SERVER_KEY, max_concurrency=1)
    li = HFInferEmbedding(url=cassette_server + "/embed", api_key=SERVER_KEY, max_concurrency=1)
    assert lc.embed_documents(DOCS[:2]) == li.get_text_embedding_batch(DOCS[:2])


@pytest.mark.vcr
async def test_rerank_replays_real_scores(cassette_server: str) -> None:
    endpoint = InferenceEndpoint.from_url(cassette_server, SERVER_KEY, task_type="rerank")
    query = "How do I bake bread at home?"
    with RerankClient(endpoint, rate_limiter=RateLimiter(10**9), max_concurrency=1, batch_size=2) as c:
        results = c.rerank(query, DOCS, return_documents=True)
    assert results[0].index == 1  # the bread passage first, by the server's stand-in
    assert results[0].text == DOCS[1]
    assert [r.relevance_score for r in results] == sorted((r.relevance_score for r in results), reverse=True)
    async with AsyncRerankClient(endpoint, rate_limiter=RateLimiter(10**9), max_concurrency=1, batch_size=2) as a:
        again = await a.rerank(query, DOCS, top_n=1)
    assert [(r.index, r.relevance_score) for r in again] == [(results[0].index, results[0].relevance_score)]


def test_cassettes_hold_no_secret() -> None:
    files = list(CASSETTES.glob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        text = path.read_text()
        assert SERVER_KEY not in text
        for interaction in yaml.safe_load(text)["interactions"]:
            assert "authorization" not in {k.lower() for k in interaction["request"]["headers"]}
