"""The chunk-level cache against the real local server (issue #29): texts sent counted by the server."""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import Document as LlamaDocument
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.storage.docstore import SimpleDocumentStore

from hf_infer_core import EmbeddingClient, InferenceEndpoint
from hf_infer_server import LocalServer
from langchain_hf_infer import HFInferEmbeddings, HFInferTextSplitter
from llama_index_hf_infer import HFInferEmbedding, HFInferNodeParser

from ..conftest import RedisServer

SENTENCES = 12


def inputs_sent(server: LocalServer) -> int:
    """Texts the server has embedded since it started, the cached clients' identity probes left out.

    From its /metrics counters, every route: each request a cached client sends carries the
    probe once (cache/_identity.py), so the texts a user sent are the inputs less the requests.
    """
    assert server.api_key is not None
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {server.api_key}"}).text
    inputs = sum(int(float(n)) for n in re.findall(r"^te_\w+_inputs_total(?:\{[^}]*\})? (\S+)$", text, re.M))
    requests = sum(int(float(n)) for n in re.findall(r"^te_request_success\{[^}]*\} (\S+)$", text, re.M))
    return inputs - requests


def corpus(count: int = 20) -> list[str]:
    return [
        " ".join(f"Report {d} sentence {s} says the river rose {s + d} cm near bridge {d}." for s in range(SENTENCES))
        for d in range(count)
    ]


def edit(texts: list[str], every: int = 20) -> list[str]:
    """One sentence changed in one document of every ``every``."""
    return [t.replace("sentence 5 says", "sentence 5 now says") if n % every == 0 else t for n, t in enumerate(texts)]


def test_langchain_index_re_ingestion_sends_only_the_changed_chunks(local_server: LocalServer, tmp_path: Path) -> None:
    chunking = {"strategy": "sentence", "max_chunk_size": 40, "sentence_overlap": 0}
    embeddings = HFInferEmbeddings(
        url=local_server.embed_url, api_key=local_server.api_key, cache=str(tmp_path / "c.sqlite")
    )
    splitter = HFInferTextSplitter(chunking, add_offsets=False)
    records = InMemoryRecordManager(namespace="test")
    records.create_schema()
    store = InMemoryVectorStore(embeddings)
    sent = []
    for run in (corpus(), edit(corpus())):
        docs = splitter.split_documents([Document(t, metadata={"source": f"d{n}"}) for n, t in enumerate(run)])
        before = inputs_sent(local_server)
        index(docs, records, store, cleanup="incremental", source_id_key="source", key_encoder="sha256")
        sent.append(inputs_sent(local_server) - before)
    assert sent[0] >= 20 and sent[1] == 1  # the one chunk that changed
    # A fresh store from the same texts (no record manager): every chunk is a cache hit.
    fresh = HFInferEmbeddings(
        url=local_server.embed_url, api_key=local_server.api_key, cache=str(tmp_path / "c.sqlite")
    )
    before = inputs_sent(local_server)
    fresh.embed_documents([d.page_content for d in splitter.split_documents([Document(t) for t in edit(corpus())])])
    assert inputs_sent(local_server) == before and fresh.cache_stats.misses == 0


def test_llama_index_pipeline_re_ingestion_sends_only_the_changed_chunks(
    local_server: LocalServer, tmp_path: Path
) -> None:
    chunking = {"strategy": "sentence", "max_chunk_size": 40, "sentence_overlap": 0}
    embed_model = HFInferEmbedding(
        url=local_server.embed_url, api_key=local_server.api_key, cache=str(tmp_path / "c.sqlite")
    )
    pipeline = IngestionPipeline(
        transformations=[HFInferNodeParser(chunking), embed_model],
        docstore=SimpleDocumentStore(),
        docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY,
    )
    sent = []
    for run in (corpus(), edit(corpus())):
        before = inputs_sent(local_server)
        pipeline.run(documents=[LlamaDocument(text=t, id_=f"d{n}") for n, t in enumerate(run)])
        sent.append(inputs_sent(local_server) - before)
    # The docstore re-runs the edited document (its 3 chunks); the cache sends only the changed one.
    assert sent[0] >= 20 and sent[1] == 1
    assert embed_model.cache_stats.hits >= 2


@pytest.mark.parametrize("wire_format", ["json", "base64"])
def test_cached_vectors_are_the_endpoints_bit_for_bit(
    local_server: LocalServer, tmp_path: Path, wire_format: str
) -> None:
    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key)
    texts = corpus(5)
    with EmbeddingClient(endpoint, wire_format=wire_format) as plain:
        lists, arrays = plain.embed_documents(texts), plain.embed_documents(texts, as_numpy=True)
        query = plain.embed_query(texts[0])
    path = str(tmp_path / "c.sqlite")
    for _ in range(2):  # filled, then read back
        with EmbeddingClient(endpoint, wire_format=wire_format, cache=path) as cached:
            assert cached.embed_documents(texts) == lists
            assert np.array_equal(cached.embed_documents(texts, as_numpy=True), arrays)
            assert cached.embed_query(texts[0]) == query
    assert cached.cache_stats.misses == 0 and cached.cache_stats.hits > 0


def test_a_redis_cache_is_shared_and_a_down_redis_is_the_endpoint(
    local_server: LocalServer, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key)
    texts = corpus(3)
    with EmbeddingClient(endpoint, cache=redis_server.url) as first:
        expected = first.embed_documents(texts)
    before = inputs_sent(local_server)
    with EmbeddingClient(endpoint, cache=redis_server.url) as second:  # another process or machine, the same cache
        assert second.embed_documents(texts) == expected
    assert inputs_sent(local_server) == before and second.cache_stats.misses == 0
    with socket.socket() as probe:  # a port nothing listens on: Redis down
        probe.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    with caplog.at_level(logging.WARNING, logger="hf_infer_core"), EmbeddingClient(endpoint, cache=down) as client:
        assert client.embed_documents(texts) == expected
    assert client.cache_stats.errors == 1
    assert any("embedding cache: read failed" in r.getMessage() for r in caplog.records)


def test_embed_dataset_actors_share_a_cache_file(local_server: LocalServer, tmp_path: Path) -> None:
    """What each Ray actor runs (embed_dataset(cache=...) hands the option to every actor's client)."""
    import pyarrow as pa

    from hf_infer_core import EmbeddingOptions
    from hf_infer_core.integration._ray import _Embedder

    endpoint = InferenceEndpoint.from_url(local_server.embed_url, local_server.api_key)
    options = EmbeddingOptions.build(None, {"cache": str(tmp_path / "c.sqlite")})
    table = pa.table({"text": corpus(4)})
    first = _Embedder(endpoint, options, "text", "vector", False)(table)
    before = inputs_sent(local_server)
    second = _Embedder(endpoint, options, "text", "vector", False)(table)  # another actor, the same file
    assert inputs_sent(local_server) == before
    assert second.column("vector").to_pylist() == first.column("vector").to_pylist()
