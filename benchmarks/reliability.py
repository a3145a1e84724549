"""Reliability figures for the README: 2,000 texts through every client under 30% injected faults.

Uses the test suite's fault-injecting endpoint (tests/fake_endpoint.py, a real HTTP server on 127.0.0.1
in its own process). Prints, per client: requests, faults injected, retries, texts lost.

    .venv/bin/python -m benchmarks.reliability
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InferenceEndpoint, RateLimiter
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding
from tests.fake_endpoint import expected_vector, fake_endpoint

TEXTS = [f"document {i}: {'lorem ipsum ' * (i % 7)}" for i in range(2000)]
OPTIONS: dict[str, Any] = {"timeout": 0.5, "max_retries": 8, "max_retry_wait": 0.02, "retry_deadline": 60.0}


def clients(url: str) -> list[tuple[str, Callable[[list[str]], list[list[float]]]]]:
    endpoint = InferenceEndpoint.from_url(url, "key", requests_per_minute=10**9, chunking_settings={"strategy": "none"})
    common = {
        "url": url,
        "api_key": "key",
        "requests_per_minute": 10**9,
        "chunking_settings": {"strategy": "none"},
        **OPTIONS,
    }
    lc = HFInferEmbeddings(**common)
    li = HFInferEmbedding(**common)

    def core_async(texts: list[str]) -> list[list[float]]:
        async def go() -> list[list[float]]:
            async with AsyncEmbeddingClient(endpoint, rate_limiter=RateLimiter(10**9), **OPTIONS) as client:
                return await client.embed(texts)

        return asyncio.run(go())

    sync_client = EmbeddingClient(endpoint, rate_limiter=RateLimiter(10**9), **OPTIONS)
    return [
        ("EmbeddingClient.embed", sync_client.embed),
        ("AsyncEmbeddingClient.embed", core_async),
        ("HFInferEmbeddings.embed_documents", lc.embed_documents),
        ("HFInferEmbeddings.aembed_documents", lambda t: asyncio.run(lc.aembed_documents(t))),
        ("HFInferEmbedding.get_text_embedding_batch", li.get_text_embedding_batch),
        ("HFInferEmbedding.aget_text_embedding_batch", lambda t: asyncio.run(li.aget_text_embedding_batch(t))),
    ]


def run() -> list[dict[str, Any]]:
    expected = [expected_vector(t) for t in TEXTS]
    rows = []
    for seed, (name, _) in enumerate(clients("http://unused/embed")):
        with fake_endpoint(seed=100 + seed, fault_rate=0.3) as server:
            fn = dict(clients(server.embed_url))[name]
            got = fn(TEXTS)
            log = server.log
        faults = sum(1 for entry in log if entry.answer != "ok")
        lost = sum(1 for g, e in zip(got, expected, strict=False) if g != e) + abs(len(got) - len(expected))
        rows.append({"client": name, "requests": len(log), "faults": faults, "retried": faults, "lost": lost})
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "2,000 texts per client, 30% of requests answered with a seeded mix of transient faults "
        "(429, 503 loading, 500/502/504, 424, reset mid-response, stall past the timeout, cut-off JSON, HTML 200)",
        "",
        "| client | requests | faults injected | requests retried | texts lost |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['client']} | {r['requests']} | {r['faults']} | {r['retried']} | {r['lost']} |")
    total = {k: sum(r[k] for r in rows) for k in ("requests", "faults", "retried", "lost")}
    lines.append(f"| all | {total['requests']} | {total['faults']} | {total['retried']} | {total['lost']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(run()))
