"""Sparse vectors from the local server's ``/embed_sparse`` through the core clients, and hybrid retrieval in Qdrant.

Qdrant runs in its local mode (in memory, no server): LangChain's ``QdrantVectorStore`` in
``RetrievalMode.HYBRID`` and LlamaIndex's ``QdrantVectorStore(enable_hybrid=True)``, each with
the real model's dense vectors and the server's sparse ones. The query names an error code; its word
pieces are in one document only, so the sparse half of the search finds that one and no other.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from hf_infer_core import AsyncSparseEmbeddingClient, InferenceEndpoint, SparseEmbeddingClient
from hf_infer_server._local import LocalServer

qdrant_client = pytest.importorskip("qdrant_client")

DOCUMENTS = [
    "Pump fault P0301: stopped after the firmware update; reseat the sensor cable.",
    "Pump fault E4712: stopped because the inlet filter was blocked; clean the filter.",
    "Pump fault K9960: stopped on a power dip; check the supply voltage.",
    "Tides rise and fall twice a day along most coasts.",
]
QUERY = "What does E4712 mean?"


def _endpoint(server: LocalServer) -> InferenceEndpoint:
    return InferenceEndpoint.from_url(server.url, server.api_key, task_type="sparse_embedding")


def test_both_clients_get_the_servers_sparse_vectors(local_server: LocalServer) -> None:
    with SparseEmbeddingClient(_endpoint(local_server)) as client:
        vectors = client.embed(DOCUMENTS)
        query = client.embed_query(QUERY)
        streamed = list(client.embed_iter(iter(DOCUMENTS)))

    async def run() -> list[dict[int, float]]:
        async with AsyncSparseEmbeddingClient(_endpoint(local_server)) as aclient:
            return await aclient.embed_documents(DOCUMENTS)

    assert asyncio.run(run()) == vectors == streamed
    assert all(vectors) and all(v >= 0 and math.isfinite(v) for vector in vectors for v in vector.values())
    # The query's word pieces ("e", "##47", "##12", ...) are in the document holding the code only.
    shared = [set(query) & set(vector) for vector in vectors]
    assert shared[1] and not shared[0] and not shared[2] and not shared[3]


def test_a_document_longer_than_the_model_is_chunked_and_max_pooled(local_server: LocalServer) -> None:
    long = " ".join(f"alpha{i}" for i in range(600)) + " omega-tail"
    endpoint = InferenceEndpoint.from_url(
        local_server.url,
        local_server.api_key,
        task_type="sparse_embedding",
        chunking_settings={"strategy": "word", "max_chunk_size": 100, "overlap": 0},
    )
    with SparseEmbeddingClient(endpoint) as client:
        (document,) = client.embed_documents([long])
        (cut,) = client.embed([long])  # sent whole: the server truncates it (auto_truncate)
        (tail,) = client.embed(["omega-tail"])
    assert set(tail) <= set(document)  # the end of the text is in the pooled vector
    assert not set(tail) <= set(cut)  # and was cut from the whole text sent at once


def _langchain_hybrid(local_server: LocalServer, documents: list[str], collection: str) -> tuple[Any, Any, Any]:
    """A LangChain Qdrant store in local mode (HYBRID) over ``documents``, and its dense and sparse embeddings."""
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    from langchain_hf_infer import HFInferEmbeddings, HFInferSparseEmbeddings

    dense = HFInferEmbeddings(url=local_server.url, api_key=local_server.api_key)
    sparse = HFInferSparseEmbeddings(url=local_server.url, api_key=local_server.api_key)
    store = QdrantVectorStore.from_texts(
        documents,
        dense,
        sparse_embedding=sparse,
        retrieval_mode=RetrievalMode.HYBRID,
        location=":memory:",
        collection_name=collection,
    )
    return store, dense, sparse


def test_langchain_hybrid_search_in_qdrants_local_mode_finds_the_error_code(local_server: LocalServer) -> None:
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    store, _, sparse = _langchain_hybrid(local_server, DOCUMENTS, "pumps")
    (best,) = store.similarity_search(QUERY, k=1)
    assert "E4712" in best.page_content
    sparse_only = QdrantVectorStore(
        client=store.client,
        collection_name="pumps",
        sparse_embedding=sparse,
        retrieval_mode=RetrievalMode.SPARSE,
    )
    # Sparse search finds only documents sharing a term with the query: the one holding the code.
    assert [d.page_content for d in sparse_only.similarity_search(QUERY, k=4)] == [DOCUMENTS[1]]

    async def both() -> tuple[list[object], object]:
        return await sparse.aembed_documents(DOCUMENTS[:2]), await sparse.aembed_query(QUERY)

    documents, query = asyncio.run(both())
    assert documents == sparse.embed_documents(DOCUMENTS[:2]) and query == sparse.embed_query(QUERY)


# The code stands in a service log whose other words are far from the query, and one document
# says what the query means in other words: dense retrieval alone puts that one first.
LOG_DOCUMENTS = [
    "What a fault number on the pump's screen signifies, and how to clear it.",
    "Service log, 14 March: replaced the impeller, checked the seals, topped up the oil; E4712 after restart, "
    "inlet filter cleaned.",
    DOCUMENTS[2],
    DOCUMENTS[3],
]
LOG_QUERY = "meaning of error code E4712"


def test_hybrid_search_finds_the_code_that_dense_search_alone_ranks_second(local_server: LocalServer) -> None:
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    hybrid, dense, _ = _langchain_hybrid(local_server, LOG_DOCUMENTS, "log")
    dense_only = QdrantVectorStore(
        client=hybrid.client, collection_name="log", embedding=dense, retrieval_mode=RetrievalMode.DENSE
    )
    dense_ranking = [d.page_content for d in dense_only.similarity_search(LOG_QUERY, k=4)]
    hybrid_ranking = [d.page_content for d in hybrid.similarity_search(LOG_QUERY, k=4)]
    # Both rankings, as a reader of a failure wants them.
    print("dense:", [LOG_DOCUMENTS.index(d) for d in dense_ranking])
    print("hybrid:", [LOG_DOCUMENTS.index(d) for d in hybrid_ranking])
    assert dense_ranking[:2] == [LOG_DOCUMENTS[0], LOG_DOCUMENTS[1]]  # dense alone: the code second
    assert hybrid_ranking[0] == LOG_DOCUMENTS[1]  # with the sparse half: the code first


def test_llama_index_hybrid_index_in_qdrants_local_mode_finds_the_error_code(local_server: LocalServer) -> None:
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.vector_stores.types import VectorStoreQueryMode
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    from llama_index_hf_infer import HFInferEmbedding, HFInferSparseEmbedding, qdrant_sparse_functions

    dense = HFInferEmbedding(url=local_server.url, api_key=local_server.api_key)
    sparse = HFInferSparseEmbedding(url=local_server.url, api_key=local_server.api_key)
    doc_fn, query_fn = qdrant_sparse_functions(sparse)
    store = QdrantVectorStore(
        collection_name="pumps",
        client=qdrant_client.QdrantClient(location=":memory:"),
        enable_hybrid=True,
        sparse_doc_fn=doc_fn,
        sparse_query_fn=query_fn,
    )
    index = VectorStoreIndex.from_documents(
        [Document(text=text) for text in DOCUMENTS],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=dense,
    )
    retriever = index.as_retriever(
        vector_store_query_mode=VectorStoreQueryMode.HYBRID, similarity_top_k=1, sparse_top_k=2
    )
    (best,) = retriever.retrieve(QUERY)
    assert "E4712" in best.node.get_content()
    assert sparse.get_text_embedding_batch(DOCUMENTS) == [dict(v) for v in sparse.sparse_documents(DOCUMENTS)]
    assert asyncio.run(sparse.aget_query_embedding(QUERY)) == sparse.get_query_embedding(QUERY)
