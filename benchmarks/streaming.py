"""Streaming ingestion: about 1 GB of generated text through ``embed_iter``, memory measured.

The corpus is a lazily generated mix of short texts (one or two sentences) and long documents
(20 to 60 kB) of English prose, chunked with Elasticsearch's default (sentence, 250 words), sent
to the fake endpoint (tests/fake_endpoint.py, its own process, 384-d vectors from pre-serialised
bytes). Each run is a child process of its own, so its peak RSS (``ru_maxrss``) is its own. The
contrast: ``embed_documents`` on a slice, which holds every vector until it returns.

    .venv/bin/python -m benchmarks.streaming [--mb 1000] [--slice-mb 50]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from .common import fake_endpoint
from .corpus import prose

SHORT_SHARE = 0.9  # of the texts; the long documents still hold most of the bytes


def corpus(megabytes: float, seed: int = 11) -> Iterator[str]:
    """About ``megabytes`` MB of texts, generated as they are read."""
    rng = random.Random(seed)
    pool = prose(4.0, seed=seed)
    sentences = [s.strip() + "." for s in pool.split(".") if len(s.strip()) > 20]
    budget = int(megabytes * 1_000_000)
    while budget > 0:
        if rng.random() < SHORT_SHARE:
            text = " ".join(rng.sample(sentences, rng.randint(1, 2)))
        else:
            size = rng.randint(20_000, 60_000)
            start = rng.randrange(0, len(pool) - size)
            text = pool[start : start + size]
        budget -= len(text.encode())
        yield text


def _child(url: str, megabytes: float, mode: str) -> dict[str, Any]:
    from hf_infer_core import EmbeddingClient, InferenceEndpoint

    endpoint = InferenceEndpoint.from_url(url, "bench", requests_per_minute=10**9)
    client = EmbeddingClient(endpoint, batch_size=32, max_concurrency=8)
    client.embed_documents(["warm up. Two sentences."])
    before = reset_peak()
    started = time.perf_counter()
    count = 0
    if mode == "stream":
        for _ in client.embed_iter(corpus(megabytes)):
            count += 1
    else:
        count = len(client.embed_documents(list(corpus(megabytes))))
    elapsed = time.perf_counter() - started
    return {"mode": mode, "mb": megabytes, "texts": count, "seconds": elapsed, "growth": peak() - before}


def _status(field: str) -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(field))


def reset_peak() -> int:
    """Reset this process's peak RSS (VmHWM) and return its RSS now.

    ``ru_maxrss`` would not do: a child inherits its parent's peak across fork and exec, so in a
    large parent (``make bench`` after the real model) every child would read 0 growth.
    """
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return _status("VmRSS:")


def peak() -> int:
    """This process's peak RSS since :func:`reset_peak`."""
    return _status("VmHWM:")


def measure(url: str, megabytes: float, mode: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.streaming", "--child", url, str(megabytes), mode]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    measured: dict[str, Any] = json.loads(result.stdout)
    return measured


def run(megabytes: float = 1000.0, slice_mb: float = 50.0) -> list[dict[str, Any]]:
    with fake_endpoint(latency=0.0, slots=0) as url:
        return [measure(url + "/embed", megabytes, "stream"), measure(url + "/embed", slice_mb, "documents")]


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "Generated English prose (90% short texts, 10% long documents of 20-60 kB), sentence chunking "
        "(250 words), batch 32, 8 in flight, 384-d vectors; peak RSS growth of the client process.",
        "",
        "| method | text | texts | seconds | MB/s | peak RSS growth |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = "EmbeddingClient.embed_iter (streaming)" if r["mode"] == "stream" else "embed_documents (a list)"
        lines.append(
            f"| {name} | {r['mb']:.0f} MB | {r['texts']:,} | {r['seconds']:.1f} | {r['mb'] / r['seconds']:.2f} "
            f"| {r['growth'] / 2**20:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], float(sys.argv[3]), sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=1000.0)
    parser.add_argument("--slice-mb", type=float, default=50.0)
    args = parser.parse_args()
    print(render(run(args.mb, args.slice_mb)))


if __name__ == "__main__":
    main()
