"""Token fitting (issue #22): one tokenizer pass locally, one /tokenize round through the endpoint.

1. Local: 5 MB of English prose, Elasticsearch's default chunking (sentence, 250 words, overlap 1),
   fitted to all-MiniLM-L6-v2's 256 word pieces with its own tokenizer, beside the unfitted
   chunking and one ``Tokenizer.encode_batch`` pass over the same text (in 16 KiB pieces: the
   quickest way to tokenize it once). Best of 3.
2. Endpoint: 20 documents of about 1,060 words through ``hf-infer serve`` (the real model,
   ``discover=True``, Elasticsearch's default chunking): requests by route.
3. Rate-limited ingestion at 600 requests/minute, the same 20 documents, with fitting and without
   (the server truncating instead, ``truncate=True``): wall time, best of 3.

    .venv/bin/python -m benchmarks.fitting
"""

from __future__ import annotations

import collections
import os
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from hf_infer_core import EmbeddingClient, InferenceEndpoint, RateLimiter, chunk_text
from hf_infer_core.text._fit import token_fitter
from hf_infer_server import default_model_path, run_local_server

from .corpus import prose

DEFAULT = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def local(megabytes: float = 5.0) -> dict[str, float]:
    from tokenizers import Tokenizer

    path = os.path.join(default_model_path(), "tokenizer.json")
    text = prose(megabytes)
    size = len(text.encode("utf-8")) / 1e6
    fit = token_fitter(None, path, 256)
    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_truncation()
    pieces = [text[i : i + 16384] for i in range(0, len(text), 16384)]
    chunks = chunk_text(text, DEFAULT)
    fitted = fit(text, chunks)
    started = time.process_time()
    tokenizer.encode_batch(pieces)
    encode_cpu = time.process_time() - started
    return {
        "encode_cpu": encode_cpu,
        "encode_chunks": size / best_of(lambda: tokenizer.encode_batch([c.text for c in chunks])),
        "encode_whole": size / best_of(lambda: tokenizer.encode_batch([text]), 1),
        "mb": size,
        "chunking": size / best_of(lambda: chunk_text(text, DEFAULT)),
        "fitted": size / best_of(lambda: fit(text, chunk_text(text, DEFAULT))),
        "encode": size / best_of(lambda: tokenizer.encode_batch(pieces)),
        "chunks": len(chunks),
        "over": len({c.source for c in fitted if c.source is not None}),
        "pieces": len(fitted),
    }


def documents(count: int = 20, words: int = 1060) -> list[str]:
    rng = random.Random(5)
    sentences = [s.strip() + "." for s in prose(2.0).split(".") if s.strip()]
    docs = []
    for _ in range(count):
        picked: list[str] = []
        while sum(len(s.split()) for s in picked) < words:
            picked.append(rng.choice(sentences))
        docs.append(" ".join(picked))
    return docs


class Counting(httpx.HTTPTransport):
    """Counts requests by route."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: collections.Counter[str] = collections.Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.routes[request.url.path] += 1
        return super().handle_request(request)


def endpoint_runs(repeat: int = 3) -> dict[str, Any]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    docs = documents()
    out: dict[str, Any] = {"words": sum(len(d.split()) for d in docs) / len(docs)}
    with run_local_server("bench-key") as server:

        def ingest(fit: bool, rpm: int) -> tuple[float, collections.Counter[str]]:
            endpoint = InferenceEndpoint.from_url(server.embed_url, "bench-key", requests_per_minute=rpm)
            transport = Counting()
            options: dict[str, Any] = (
                {"fit_chunks_to_model": True} if fit else {"fit_chunks_to_model": False, "truncate": True}
            )
            with EmbeddingClient(
                endpoint, transport=transport, rate_limiter=RateLimiter(rpm), discover=True, **options
            ) as client:
                started = time.perf_counter()
                client.embed_documents(docs)
                return time.perf_counter() - started, transport.routes

        ingest(True, 10**6)  # warm the model
        _, out["fitted_routes"] = ingest(True, 10**6)
        _, out["plain_routes"] = ingest(False, 10**6)
        out["fitted_s"] = min(ingest(True, 600)[0] for _ in range(repeat))
        out["plain_s"] = min(ingest(False, 600)[0] for _ in range(repeat))
    return out


def floor(loc: dict[str, float]) -> float:
    """The best fitted/pass ratio any schedule could reach: all the CPU work spread over every core."""
    chunk_s = loc["mb"] / loc["chunking"]
    pass_s = loc["mb"] / loc["encode"]
    cores = os.cpu_count() or 1
    return pass_s / max(pass_s, (chunk_s + loc["encode_cpu"]) / cores)


def render(loc: dict[str, float], ep: dict[str, Any]) -> str:
    fitted, plain = ep["fitted_routes"], ep["plain_routes"]
    total = sum(fitted.values())
    per_embed = total / fitted["/embed"]
    lines = [
        f"Local: {loc['mb']:.1f} MB of English prose, Elasticsearch's default chunking, all-MiniLM-L6-v2's "
        f"tokenizer (256); {loc['over']:.0f} of {loc['chunks']:.0f} chunks over the limit became "
        f"{loc['pieces'] - (loc['chunks'] - loc['over']):.0f} pieces.",
        "",
        "| path | MB/s | x one encode_batch pass |",
        "|---|---:|---:|",
        f"| chunking, unfitted | {loc['chunking']:.2f} | {loc['chunking'] / loc['encode']:.2f} |",
        f"| chunking, fitted to 256 tokens | {loc['fitted']:.2f} | {loc['fitted'] / loc['encode']:.2f} |",
        f"| one Tokenizer.encode_batch pass, 16 KiB pieces (the reference) | {loc['encode']:.2f} | 1.00 |",
        f"| encode_batch over the Elasticsearch chunks | {loc['encode_chunks']:.2f} "
        f"| {loc['encode_chunks'] / loc['encode']:.2f} |",
        f"| encode_batch of the whole text as one input | {loc['encode_whole']:.2f} "
        f"| {loc['encode_whole'] / loc['encode']:.2f} |",
        "",
        f"The reference pass keeps both cores busy ({loc['encode_cpu']:.2f} CPU s for {loc['mb']:.1f} MB); ICU "
        f"chunking alone costs {loc['encode'] / loc['chunking']:.2f} of it on one core, so chunking and one pass "
        f"cannot beat {floor(loc):.2f}x of the pass on this machine even fully overlapped.",
        "",
        f"Endpoint: 20 documents of about {ep['words']:.0f} words, `hf-infer serve` (real model), discover=True.",
        "",
        "| ingestion | /info | /tokenize | /embed | requests | requests per /embed | seconds at 600/min |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| fitted | {fitted['/info']} | {fitted['/tokenize']} | {fitted['/embed']} | {total} | {per_embed:.2f} "
        f"| {ep['fitted_s']:.2f} |",
        f"| not fitted (server truncates) | {plain['/info']} | {plain['/tokenize']} | {plain['/embed']} "
        f"| {sum(plain.values())} | {sum(plain.values()) / plain['/embed']:.2f} | {ep['plain_s']:.2f} |",
        "",
        "| goal (issue #22) | value | goal |",
        "|---|---:|---|",
        f"| requests per /embed request, fitting through the endpoint | {per_embed:.2f} | <= 1.75 (was 5.2) |",
        f"| ingestion time at 600/min, fitted / not fitted | {ep['fitted_s'] / ep['plain_s']:.2f} | <= 1.8 (was ~5) |",
        f"| local fitted chunking / one encode_batch pass | {loc['fitted'] / loc['encode']:.2f} | >= 0.75 (was 0.25-0.3) |",
    ]
    return "\n".join(lines)


def main() -> None:
    print(render(local(), endpoint_runs()))


if __name__ == "__main__":
    main()
