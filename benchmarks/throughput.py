"""Throughput of the hf-infer clients against a local fake endpoint (25 ms latency, 8 slots).

Prints docs/s for the sync and async clients and the ratio to the server's capacity
(slots x batch / latency). Goal: the async client reaches >= 90% of capacity.

    .venv/bin/python benchmarks/throughput.py [--docs 5000] [--batch 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Timer, fake_endpoint, texts

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InferenceEndpoint

NO_LIMIT = 10**9  # requests per minute: the benchmark measures the client, not the limiter


def endpoint_for(url: str) -> InferenceEndpoint:
    return InferenceEndpoint.from_url(url + "/embed", "bench-token", requests_per_minute=NO_LIMIT)


def run(
    docs: int = 5000, batch: int = 32, latency: float = 0.025, slots: int = 8, concurrency: int = 12
) -> list[dict[str, object]]:
    """Measure hf-infer's sync and async clients; return rows with docs/s and capacity ratio."""
    data = texts(docs)
    capacity = slots * batch / latency
    rows: list[dict[str, object]] = []
    with fake_endpoint(latency, slots) as url:
        endpoint = endpoint_for(url)
        with EmbeddingClient(endpoint, batch_size=batch, max_concurrency=concurrency) as client:
            client.embed(data[:64])  # warm the connections
            with Timer() as t:
                vectors = client.embed(data)
        assert len(vectors) == docs
        rows.append({"name": "hf-infer EmbeddingClient.embed (sync)", "docs_s": docs / t.wall, "cpu": t.cpu})

        async def use_async() -> Timer:
            async with AsyncEmbeddingClient(endpoint, batch_size=batch, max_concurrency=concurrency) as client:
                await client.embed(data[:64])
                with Timer() as t:
                    vectors = await client.embed(data)
            assert len(vectors) == docs
            return t

        t = asyncio.run(use_async())
        rows.append({"name": "hf-infer AsyncEmbeddingClient.embed (async)", "docs_s": docs / t.wall, "cpu": t.cpu})
    for row in rows:
        row["capacity"] = float(row["docs_s"]) / capacity  # type: ignore[arg-type]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    capacity = 8 * args.batch / 0.025
    print(
        f"Throughput: {args.docs} texts, batch {args.batch}, server 25 ms x 8 slots = {capacity:.0f} docs/s, {os.cpu_count()} CPUs"
    )
    print("| client | docs/s | x capacity | client CPU s |")
    print("|---|---:|---:|---:|")
    for row in run(args.docs, args.batch):
        print(f"| {row['name']} | {row['docs_s']:.0f} | {row['capacity']:.2f} | {row['cpu']:.2f} |")


if __name__ == "__main__":
    main()
