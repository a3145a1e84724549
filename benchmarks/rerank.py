"""10. Reranking (issue #30): 1,000 passages against a 25 ms x 8-slot fake ``/rerank`` with a batch limit of 32.

hf-infer's async and sync clients beside ``llama-index-postprocessor-tei-rerank`` on the same
endpoint; and the client CPU per 1,000 scores beside the CPU per 1,000 embedding vectors.

Run alone: ``python -m benchmarks.rerank``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from hf_infer_core import AsyncRerankClient, EmbeddingClient, InferenceEndpoint, RerankClient
from tests.fake_endpoint import fake_endpoint

from .common import Timer, texts

LATENCY = 0.025
SLOTS = 8
LIMIT = 32
PASSAGES = 1000
CALLS = 20  # calls of 1,000 passages per measured row (after one warm-up call)
QUERY = "which passage is about topic 7?"
CAPACITY = SLOTS * LIMIT / LATENCY  # passages a second the endpoint can score
CONCURRENCY = 12  # more requests in flight than slots, so a slot never waits on the client (as section 1)


def _endpoint(url: str) -> InferenceEndpoint:
    return InferenceEndpoint.from_url(url, task_type="rerank", requests_per_minute=None)


def _hf_infer_async(url: str, passages: list[str]) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        async with AsyncRerankClient(_endpoint(url), max_concurrency=CONCURRENCY) as client:
            await client.rerank(QUERY, passages)  # warm-up: /info read, connections open
            with Timer() as timer:
                for _ in range(CALLS):
                    await client.rerank(QUERY, passages)
        return timer.wall, timer.cpu

    return asyncio.run(run())


def _hf_infer_async_together(url: str, passages: list[str]) -> tuple[float, float]:
    """Four queries' calls at once (a RAG service answering several users), each of 1,000 passages."""

    async def run() -> tuple[float, float]:
        async with AsyncRerankClient(_endpoint(url), max_concurrency=CONCURRENCY) as client:
            await client.rerank(QUERY, passages)
            with Timer() as timer:
                for _ in range(CALLS // 4):
                    await asyncio.gather(*(client.rerank(f"{QUERY} {k}", passages) for k in range(4)))
        return timer.wall, timer.cpu

    return asyncio.run(run())


def _floor(url: str, passages: list[str]) -> tuple[float, float]:
    """Not a client: raw httpx posting the 32 batches, 12 in flight, parsing nothing but JSON."""
    import httpx

    batches = [
        json.dumps({"query": QUERY, "texts": passages[i : i + LIMIT]}).encode() for i in range(0, len(passages), LIMIT)
    ]

    async def run() -> tuple[float, float]:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(limits=limits) as http:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(body: bytes) -> Any:
                async with gate:
                    answer = await http.post(
                        url + "/rerank", content=body, headers={"Content-Type": "application/json"}
                    )
                    return answer.json()

            await asyncio.gather(*(one(b) for b in batches))
            with Timer() as timer:
                for _ in range(CALLS):
                    await asyncio.gather(*(one(b) for b in batches))
        return timer.wall, timer.cpu

    return asyncio.run(run())


def _hf_infer_sync(url: str, passages: list[str]) -> tuple[float, float]:
    with RerankClient(_endpoint(url), max_concurrency=CONCURRENCY) as client:
        client.rerank(QUERY, passages)
        with Timer() as timer:
            for _ in range(CALLS):
                client.rerank(QUERY, passages)
    return timer.wall, timer.cpu


def _peer_whole(url: str, passages: list[str]) -> str:
    """``llama-index-postprocessor-tei-rerank`` given the 1,000 passages at once: what comes of it."""
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    peer = TextEmbeddingInference(base_url=url, top_n=10)
    nodes = [NodeWithScore(node=TextNode(text=p)) for p in passages]
    try:
        peer.postprocess_nodes(nodes, query_str=QUERY)
    except Exception as err:  # what a user sees
        return (
            f"{type(err).__name__}{': ' + str(err)[:60] if str(err) else ''} (its one request of 1,000 texts got a 413)"
        )
    return "ranked"  # pragma: no cover - the endpoint refuses 1,000 texts


def _peer_in_groups(url: str, passages: list[str]) -> tuple[float, float]:
    """The peer called on groups of 32 nodes (what a user must write), one after another, results merged."""
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    peer = TextEmbeddingInference(base_url=url, top_n=LIMIT)

    def one_call() -> None:
        ranked: list[Any] = []
        for start in range(0, len(passages), LIMIT):
            group = [NodeWithScore(node=TextNode(text=p)) for p in passages[start : start + LIMIT]]
            ranked += peer.postprocess_nodes(group, query_str=QUERY)
        ranked.sort(key=lambda n: -(n.score or 0.0))

    one_call()
    with Timer() as timer:
        for _ in range(CALLS):
            one_call()
    return timer.wall, timer.cpu


def _embedding_cpu(url: str) -> float:
    """Client CPU seconds per 1,000 embedding vectors (384-d) on the same machine, for the comparison."""
    endpoint = InferenceEndpoint.from_url(url + "/embed", requests_per_minute=None)
    docs = texts(PASSAGES)
    with EmbeddingClient(endpoint, max_concurrency=CONCURRENCY) as client:
        client.embed(docs)
        with Timer() as timer:
            for _ in range(CALLS):
                client.embed(docs)
    return timer.cpu / CALLS


def run() -> dict[str, Any]:
    passages = texts(PASSAGES)
    rows: dict[str, Any] = {}
    with fake_endpoint(latency=LATENCY, slots=SLOTS, max_batch=LIMIT, info_batch=LIMIT, log_inputs=False) as server:
        url = server.url
        for name, measure in (
            ("hf-infer AsyncRerankClient, one call at a time", _hf_infer_async),
            ("hf-infer AsyncRerankClient, four calls at once", _hf_infer_async_together),
            ("hf-infer RerankClient, one call at a time", _hf_infer_sync),
            ("floor, not a client: raw httpx, the 32 batches 12 in flight", _floor),
            ("llama-index-postprocessor-tei-rerank, groups of 32 in a loop", _peer_in_groups),
        ):
            wall, cpu = measure(url, passages)
            rows[name] = (PASSAGES * CALLS / wall, cpu / CALLS)
        rows["peer whole"] = _peer_whole(url, passages)
        rows["embedding cpu"] = _embedding_cpu(url)
    return rows


def render(rows: dict[str, Any]) -> str:
    lines = [
        f"1,000 passages a call, {CALLS} calls; endpoint: {LATENCY * 1000:.0f} ms x {SLOTS} slots, "
        f"batch limit {LIMIT} (413 above; /info says it), capacity {CAPACITY:,.0f} passages/s; hf-infer with "
        f"max_concurrency={CONCURRENCY}.",
        "",
        "| client | passages/s | share of capacity | client CPU s per 1,000 scores |",
        "|---|---:|---:|---:|",
    ]
    for name, value in rows.items():
        if name in ("peer whole", "embedding cpu"):
            continue
        rate, cpu = value
        lines.append(f"| {name} | {rate:,.0f} | {rate / CAPACITY:.2f} | {cpu:.3f} |")
    lines += [
        "",
        "- One call of 1,000 passages is 32 requests, four rounds of the 8 slots: the first requests'"
        " start and the last ones' end are not overlapped by anything, which the floor (raw httpx, no"
        " client logic) pays as much as hf-infer does. Calls that overlap (several queries at once) fill them.",
        f"- `llama-index-postprocessor-tei-rerank` given the 1,000 passages in one call: {rows['peer whole']}.",
        f"- Client CPU per 1,000 embedding vectors (384-d, `EmbeddingClient.embed`, same run): "
        f"{rows['embedding cpu']:.3f} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    started = time.monotonic()
    print(render(run()))
    print(f"({time.monotonic() - started:.0f} s)")
