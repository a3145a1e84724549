"""Re-ingestion with the chunk-level cache (issue #29), beside the peers' ways, in one run.

1,000 documents (about 620 words each, Elasticsearch's default chunking: 3 chunks), then the
same corpus with one sentence changed in 5% of them, against the 25 ms x 8-slot fake endpoint.
For each way: texts sent on each run (counted at the embedding, what reaches the endpoint) and
wall time. Then a fully cached run: client CPU per 1,000 vectors from the cache against per
1,000 fetched from the endpoint, as lists and as numpy.

    .venv/bin/python -m benchmarks.cache
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import httpx
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from hf_infer_core import EmbeddingClient, InferenceEndpoint
from hf_infer_core.cache._identity import PROBE_TEXT

from .common import Timer, fake_endpoint

DOCUMENTS = 1_000
EDITED_SHARE = 0.05
DEFAULT = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}


def corpus() -> list[str]:
    return [
        " ".join(
            f"Report {d}, note {s}: the gauge at station {d % 37} read {s * 3 + d % 11} cm and the crews logged it."
            for s in range(36)
        )
        for d in range(DOCUMENTS)
    ]


def edited(texts: list[str]) -> list[str]:
    every = round(1 / EDITED_SHARE)
    return [t.replace("note 7:", "note 7 (revised):") if n % every == 0 else t for n, t in enumerate(texts)]


class Counting(Embeddings):
    """An Embeddings that counts the texts it passes on (what the endpoint is sent)."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.sent = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.sent += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.sent += 1
        return self.inner.embed_query(text)


class Misses:
    """A store that holds nothing and counts the keys asked for: the texts a model sends."""

    def __init__(self) -> None:
        self.seen = 0

    def mget(self, keys: list[str]) -> list[bytes | None]:
        self.seen += len(keys)
        return [None] * len(keys)

    def mset(self, pairs: list[tuple[str, bytes]]) -> None:
        pass


def runs(name: str, prepare: Callable[[], Callable[[list[str]], int]]) -> tuple[str, list[tuple[int, float]]]:
    """Run the corpus, then the edited corpus, through one prepared way; texts sent and seconds each."""
    ingest = prepare()
    results = []
    for texts in (corpus(), edited(corpus())):
        with Timer() as timer:
            sent = ingest(texts)
        results.append((sent, timer.wall))
    return name, results


def ways(url: str, folder: str) -> list[tuple[str, Callable[[], Callable[[list[str]], int]]]]:
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_classic.storage import LocalFileStore
    from langchain_core.indexing import InMemoryRecordManager, index
    from langchain_core.vectorstores import InMemoryVectorStore
    from llama_index.core import Document as LlamaDocument
    from llama_index.core.ingestion import DocstoreStrategy, IngestionCache, IngestionPipeline
    from llama_index.core.storage.docstore import SimpleDocumentStore

    from langchain_hf_infer import HFInferEmbeddings, HFInferTextSplitter
    from llama_index_hf_infer import HFInferEmbedding, HFInferNodeParser

    endpoint = InferenceEndpoint.from_url(url, None, requests_per_minute=None, chunking_settings=DEFAULT)
    options: dict[str, Any] = {"url": url, "requests_per_minute": None, "chunking_settings": DEFAULT}

    def hf_infer() -> Callable[[list[str]], int]:
        client = EmbeddingClient(endpoint, cache=os.path.join(folder, "hf.sqlite"), max_concurrency=8)

        def ingest(texts: list[str]) -> int:
            before = client.cache_stats.misses
            client.embed_documents(texts)
            return client.cache_stats.misses - before

        return ingest

    def cache_backed() -> Callable[[list[str]], int]:
        counting = Counting(HFInferEmbeddings(**options, max_concurrency=8))
        store = LocalFileStore(os.path.join(folder, "lc-store"))
        cached = CacheBackedEmbeddings.from_bytes_store(counting, store, namespace="bench", key_encoder="sha256")
        splitter = HFInferTextSplitter(DEFAULT)

        def ingest(texts: list[str]) -> int:
            before = counting.sent
            cached.embed_documents([d.page_content for d in splitter.create_documents(texts)])
            return counting.sent - before

        return ingest

    def index_alone() -> Callable[[list[str]], int]:
        counting = Counting(HFInferEmbeddings(**options, max_concurrency=8))
        splitter = HFInferTextSplitter(DEFAULT)  # offsets in the metadata, as by default
        records = InMemoryRecordManager(namespace="bench")
        records.create_schema()
        store = InMemoryVectorStore(counting)

        def ingest(texts: list[str]) -> int:
            before = counting.sent
            docs = [Document(t, metadata={"source": f"d{n}"}) for n, t in enumerate(texts)]
            index(
                splitter.split_documents(docs),
                records,
                store,
                cleanup="incremental",
                source_id_key="source",
                key_encoder="sha256",
            )
            return counting.sent - before

        return ingest

    def llama_pipeline() -> Callable[[list[str]], int]:
        misses = Misses()  # a cache that never hits: it sees every text the model sends, and adds nothing
        model = HFInferEmbedding(**options, max_concurrency=8, cache=misses)
        pipeline = IngestionPipeline(
            transformations=[HFInferNodeParser(DEFAULT), model],
            docstore=SimpleDocumentStore(),
            docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY,
            cache=IngestionCache(),
        )

        def ingest(texts: list[str]) -> int:
            before = misses.seen
            pipeline.run(documents=[LlamaDocument(text=t, id_=f"d{n}") for n, t in enumerate(texts)])
            return misses.seen - before

        return ingest

    return [
        ("hf-infer EmbeddingClient(cache=file)", hf_infer),
        ("LangChain CacheBackedEmbeddings + LocalFileStore", cache_backed),
        ("LangChain index() alone (offsets in metadata)", index_alone),
        ("LlamaIndex IngestionPipeline, docstore + IngestionCache", llama_pipeline),
    ]


def cached_cpu(url: str, folder: str) -> dict[str, float]:
    """Client CPU seconds per 1,000 vectors: fetched from the endpoint, then from a full cache."""
    endpoint = InferenceEndpoint.from_url(url, None, requests_per_minute=None)
    texts = [f"Sentence {i} of the cache benchmark, about topic {i % 97}." for i in range(5_000)]
    out = {}
    for as_numpy in (False, True):
        path = os.path.join(folder, f"cpu-{as_numpy}.sqlite")
        fetched, hit = float("inf"), float("inf")  # best of 3 each: CPU time of 5,000 vectors is small
        with EmbeddingClient(endpoint, max_concurrency=8, wire_format="base64") as plain:
            for _ in range(3):
                with Timer() as timer:
                    plain.embed(texts, as_numpy=as_numpy)
                fetched = min(fetched, timer.cpu)
        with EmbeddingClient(endpoint, max_concurrency=8, wire_format="base64", cache=path) as client:
            client.embed(texts, as_numpy=as_numpy)  # fills the cache
            for _ in range(3):
                with Timer() as timer:
                    client.embed(texts, as_numpy=as_numpy)
                hit = min(hit, timer.cpu)
            assert client.cache_stats.hits == 3 * len(texts)
        kind = "as_numpy" if as_numpy else "lists"
        out[f"fetched, {kind}"] = fetched / len(texts) * 1000
        out[f"cached, {kind}"] = hit / len(texts) * 1000
    return out


class _Counting(httpx.HTTPTransport):
    """A transport that counts requests, inputs and identity probes (lone, or last of a batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = self.inputs = self.lone = self.carried = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/embed"):
            texts = json.loads(request.read())["inputs"]
            self.requests += 1
            self.inputs += len(texts)
            if texts == [PROBE_TEXT]:
                self.lone += 1
            elif texts[-1:] == [PROBE_TEXT]:
                self.carried += 1
        return super().handle_request(request)


def identity_cost(url: str, folder: str) -> list[str]:
    """What verifying the model costs: lone probes per client and per hour, probes carried by requests."""
    endpoint = InferenceEndpoint.from_url(url, None, requests_per_minute=None, chunking_settings=DEFAULT)
    path = os.path.join(folder, "identity.sqlite")
    counting = _Counting()
    with EmbeddingClient(endpoint, max_concurrency=8, cache=path, transport=counting) as client:
        with Timer() as first:
            client.embed_documents(corpus())
        lone_first, requests_first, inputs_first = counting.lone, counting.requests, counting.inputs
    lone = []
    for _ in range(20):  # a fresh client's start: one lone probe, its round trip
        with EmbeddingClient(endpoint, cache=path) as client, Timer() as timer:
            client.embed_documents(corpus()[:1])
        lone.append(timer.wall)
    lone.sort()
    texts = inputs_first - counting.carried - lone_first
    return [
        "",
        "| identity check (cache/_identity.py) | figure |",
        "|---|---:|",
        f"| lone probe requests at a client's start | {lone_first} |",
        f"| a cached client's first call (one lone probe, then hits): median ms | {lone[len(lone) // 2] * 1000:.1f} |",
        "| lone probe requests per hour of use, at most (one per 60 s of calls; none while misses are sent) | 60 |",
        f"| first run: requests carrying the probe / requests | {counting.carried} / {requests_first} |",
        f"| first run: inputs added by probes / texts sent | {counting.carried + lone_first} / {texts} "
        f"({(counting.carried + lone_first) / max(texts, 1):.1%}) |",
        f"| first run wall time with the cache (s) | {first.wall:.2f} |",
    ]


def render(rows: list[tuple[str, list[tuple[int, float]]]], cpu: dict[str, float]) -> str:
    lines = [
        f"{DOCUMENTS} documents, Elasticsearch's default chunking; then one sentence changed in "
        f"{EDITED_SHARE:.0%} of them. Endpoint: 25 ms x 8 slots.",
        "",
        "| way | first run: texts sent | s | re-ingestion: texts sent | share of first | s | share of first |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, ((sent0, wall0), (sent1, wall1)) in rows:
        lines.append(
            f"| {name} | {sent0} | {wall0:.2f} | {sent1} | {sent1 / max(sent0, 1):.1%} | {wall1:.2f} | "
            f"{wall1 / wall0:.1%} |"
        )
    lines += ["", "| client CPU per 1,000 vectors (base64 wire) | s |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.3f} |" for name, seconds in cpu.items()]
    for kind in ("lists", "as_numpy"):
        ratio = cpu[f"cached, {kind}"] / cpu[f"fetched, {kind}"]
        lines.append(f"| cached / fetched, {kind} | {ratio:.2f} (goal <= 0.5) |")
    return "\n".join(lines)


def run() -> str:
    """Every way, then the CPU figures; the section as markdown."""
    with fake_endpoint() as url, tempfile.TemporaryDirectory() as folder:
        rows = [runs(name, prepare) for name, prepare in ways(url + "/embed", folder)]
        cpu = cached_cpu(url + "/embed", folder)
        identity = identity_cost(url + "/embed", folder)
    return "\n".join([render(rows, cpu), *identity])


def main() -> None:
    print(run())


if __name__ == "__main__":
    main()
