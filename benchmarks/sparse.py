"""13. Sparse embeddings: 2,000 paragraphs through the local server's ``/embed_sparse`` (issue #37).

No LangChain or LlamaIndex package calls a remote TEI for sparse vectors (theirs compute them in
process, with FastEmbed), so the peer row is the loop a user would write: httpx posting batches of
32 one after another. Beside them, hf-infer's dense ``embed`` of the same texts on the same server,
and the client CPU per 1,000 vectors.

Run alone: ``python -m benchmarks.sparse``.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from hf_infer_core import EmbeddingClient, InferenceEndpoint, SparseEmbeddingClient
from hf_infer_server._local import run_local_server

from .common import texts

COUNT = 2000
BATCH = 32


def _timed(run: Any) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    run()
    return COUNT / (time.perf_counter() - started), (time.process_time() - cpu) / COUNT * 1000


def run() -> dict[str, tuple[float, float]]:
    corpus = texts(COUNT)
    rows: dict[str, tuple[float, float]] = {}
    with run_local_server() as server:
        sparse = InferenceEndpoint.from_url(server.url, task_type="sparse_embedding", requests_per_minute=None)
        dense = InferenceEndpoint.from_url(server.url + "/embed", requests_per_minute=None)
        with SparseEmbeddingClient(sparse, batch_size=BATCH) as client:
            client.embed(corpus[:BATCH])  # warm-up: /info read, connections open
            rows["hf-infer SparseEmbeddingClient.embed"] = _timed(lambda: client.embed(corpus))
        with httpx.Client(timeout=60) as http:

            def loop() -> None:
                for i in range(0, COUNT, BATCH):
                    http.post(server.url + "/embed_sparse", json={"inputs": corpus[i : i + BATCH]}).raise_for_status()

            rows["httpx loop, batches of 32 one at a time (what a user writes)"] = _timed(loop)
        with EmbeddingClient(dense, batch_size=BATCH) as client:
            client.embed(corpus[:BATCH])
            rows["hf-infer EmbeddingClient.embed (dense, same texts)"] = _timed(lambda: client.embed(corpus))
    return rows


def render(rows: dict[str, tuple[float, float]]) -> str:
    peer = rows["httpx loop, batches of 32 one at a time (what a user writes)"][0]
    lines = ["| client | texts/s | x the httpx loop | client CPU s / 1000 vectors |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {rate:.0f} | {rate / peer:.2f} | {cpu:.3f} |" for name, (rate, cpu) in rows.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(run()))
