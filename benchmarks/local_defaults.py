"""Defaults on a CPU server: the local model server, 300 paragraphs, hf-infer built with only its URL vs llama-index's peer.

The peer is llama-index's ``TextEmbeddingsInference`` (batches of 10, one at a time); hf-infer's
adapters are built with the URL alone, and once tuned by hand (``batch_size=10,
max_concurrency=1``, what a CPU server wanted before the defaults followed it). The server is
`hf-infer serve`'s real all-MiniLM-L6-v2 on this machine's CPU, shared with the client: what a
user tries first. Every run is a new adapter (a new process's first call would learn as much),
runs alternated, best of ``repeat`` each.

    .venv/bin/python -m benchmarks.local_defaults [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable

from hf_infer_core.limits._concurrency import after_fork_in_child
from hf_infer_server import run_local_server

from .corpus import prose

PARAGRAPHS = 300


def paragraphs(count: int = PARAGRAPHS) -> list[str]:
    """Paragraphs of the benchmark prose (25 to 180 words, 92 on average)."""
    found = [p.strip() for p in prose(0.3).split("\n\n") if p.strip()]
    return found[:count]


def run(repeat: int = 3) -> list[dict[str, float | str]]:
    # The model loads from the package's files; nothing may be fetched from a hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    from langchain_hf_infer import HFInferEmbeddings
    from llama_index_hf_infer import HFInferEmbedding

    data = paragraphs()
    with run_local_server() as server:
        url = server.embed_url
        base = url.rsplit("/", 1)[0]

        def peer() -> None:
            TextEmbeddingsInference(model_name="all-MiniLM-L6-v2", base_url=base, timeout=120).get_text_embedding_batch(
                data
            )

        def llama_default() -> None:
            HFInferEmbedding(url=url).get_text_embedding_batch(data)

        def llama_tuned() -> None:
            HFInferEmbedding(url=url, batch_size=10, max_concurrency=1).get_text_embedding_batch(data)

        def langchain_default() -> None:
            HFInferEmbeddings(url=url).embed_documents(data)

        async def langchain_async() -> None:
            await HFInferEmbeddings(url=url).aembed_documents(data)

        cases: list[tuple[str, Callable[[], None]]] = [
            ("llama-index TextEmbeddingsInference (peer)", peer),
            ("HFInferEmbedding(url=url)", llama_default),
            ("HFInferEmbedding(url=url, batch_size=10, max_concurrency=1)", llama_tuned),
            ("HFInferEmbeddings(url=url).embed_documents", langchain_default),
            ("HFInferEmbeddings(url=url).aembed_documents", lambda: asyncio.run(langchain_async())),
        ]
        peer()  # warm the model (the first forward passes are slower)
        best = {name: float("inf") for name, _ in cases}
        for _ in range(repeat):
            for name, case in cases:
                after_fork_in_child()  # cold, as a new process: nothing learnt by the runs before
                started = time.perf_counter()
                case()
                best[name] = min(best[name], time.perf_counter() - started)
    return [{"case": name, "seconds": seconds} for name, seconds in best.items()]


def render(rows: list[dict[str, float | str]], repeat: int = 3) -> str:
    peer = float(rows[0]["seconds"])
    lines = [
        f"{PARAGRAPHS} paragraphs (25-180 words), the local server's all-MiniLM-L6-v2 on this CPU; best of {repeat}, alternated.",
        "",
        "| client | seconds | paragraphs/s | speed / peer's |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        seconds = float(r["seconds"])
        lines.append(f"| {r['case']} | {seconds:.2f} | {PARAGRAPHS / seconds:.1f} | {peer / seconds:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(render(run(args.repeat), args.repeat))
