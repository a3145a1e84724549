"""Throughput and client CPU: hf-infer and its peers against one local fake endpoint.

The endpoint (tests/fake_endpoint.py, its own process) answers ``{"inputs": [...]}`` after a
fixed 25 ms in at most 8 parallel slots, with 384-dimensional vectors; there is no rate limit.
Every client embeds the same 5,000 short texts. Columns: docs/s, ratio to the server's capacity
(slots x batch / latency), ratio to the best peer, requests the server saw, errors, and the client
process's CPU seconds per 1,000 vectors (``time.process_time``; the server runs elsewhere).

    .venv/bin/python -m benchmarks.throughput [--docs 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InferenceEndpoint

from .common import Timer, fake_endpoint, texts

LATENCY, SLOTS, BATCH = 0.025, 8, 32
NO_LIMIT = 10**9  # requests per minute: measure the client, not the limiter
HF_API_DOCS = 500
CONCURRENCY = 12  # more requests in flight than server slots, so a slot never waits on the client
Row = dict[str, Any]


def requests_seen(url: str) -> int:
    return len(httpx.get(url + "/stats", timeout=30).json()["arrivals"])


def measure(
    name: str, url: str, docs: list[str], run: Callable[[list[str]], Any], note: str = "", limit: int | None = None
) -> Row:
    """Time one client on ``docs`` after a warm-up call; coroutine functions run both in one event loop."""
    docs = docs[:limit] if limit else docs
    # Each client starts from a collected heap: the garbage the previous one left (5,000 vectors of
    # lists) would otherwise make a full collection, 30-150 ms, land in whichever client comes next.
    print(f"  measuring {name} ...", file=sys.stderr, flush=True)
    errors = 0
    timer = Timer()

    before = 0

    async def timed_async() -> list[Any]:
        nonlocal before
        await run(docs[:64])  # warm up: connections, imports
        before = requests_seen(url)
        gc.collect()
        with timer:
            return list(await run(docs))

    def timed_sync() -> list[Any]:
        nonlocal before
        run(docs[:64])
        before = requests_seen(url)
        gc.collect()
        with timer:
            return list(run(docs))

    try:
        vectors = asyncio.run(timed_async()) if asyncio.iscoroutinefunction(run) else timed_sync()
        if len(vectors) != len(docs) or len(vectors[0]) != 384:
            errors = len(docs)
    except Exception as err:  # a peer failing is a result, not a crash
        errors, note = len(docs), f"{type(err).__name__}: {str(err)[:80]}"
    return {
        "name": name,
        "docs_s": 0.0 if errors else len(docs) / timer.wall,
        "requests": requests_seen(url) - before,
        "errors": errors,
        "cpu_per_1000": timer.cpu / len(docs) * 1000 if not errors else None,
        "note": note,
    }


def ours(url: str, concurrency: int = CONCURRENCY) -> list[tuple[str, Callable[[list[str]], list[Any]]]]:
    from langchain_hf_infer import HFInferEmbeddings
    from llama_index_hf_infer import HFInferEmbedding

    options = {
        "url": url + "/embed",
        "api_key": "bench",
        "requests_per_minute": NO_LIMIT,
        "max_concurrency": concurrency,
    }
    lc = HFInferEmbeddings(**options)
    li = HFInferEmbedding(**options)
    endpoint = InferenceEndpoint.from_url(url + "/embed", "bench", requests_per_minute=NO_LIMIT)
    sync_client = EmbeddingClient(endpoint, max_concurrency=concurrency)
    async_client = AsyncEmbeddingClient(endpoint, max_concurrency=concurrency)
    async_b64 = AsyncEmbeddingClient(endpoint, max_concurrency=concurrency, wire_format="base64")
    sync_b64 = EmbeddingClient(endpoint, max_concurrency=concurrency, wire_format="base64")

    async def async_json_numpy(docs: list[str]) -> Any:
        return await async_client.embed(docs, as_numpy=True)

    async def async_b64_numpy(docs: list[str]) -> Any:
        return await async_b64.embed(docs, as_numpy=True)

    return [
        ("hf-infer EmbeddingClient.embed (core, sync)", sync_client.embed),
        ("hf-infer EmbeddingClient.embed, wire_format=base64", sync_b64.embed),
        ("hf-infer AsyncEmbeddingClient.embed (core, async)", async_client.embed),
        ("hf-infer AsyncEmbeddingClient.embed, wire_format=base64", async_b64.embed),
        ("hf-infer AsyncEmbeddingClient.embed(as_numpy=True), json", async_json_numpy),
        ("hf-infer AsyncEmbeddingClient.embed(as_numpy=True), wire_format=base64", async_b64_numpy),
        ("hf-infer HFInferEmbeddings.embed_documents", lc.embed_documents),
        ("hf-infer HFInferEmbeddings.aembed_documents", lc.aembed_documents),
        ("hf-infer HFInferEmbedding.get_text_embedding_batch", li.get_text_embedding_batch),
        ("hf-infer HFInferEmbedding.aget_text_embedding_batch", li.aget_text_embedding_batch),
    ]


def floors(url: str) -> list[tuple[str, Callable[[list[str]], Any]]]:
    """No library at all: bare requests and base64 decoding, the cost any client pays per request.

    They read TEI's base64 route into one float32 array per batch, with the same concurrency and
    batch size as hf-infer: what is left of a client's CPU once parsing is free.
    """
    import aiohttp

    decode = _b64_matrix

    async def every_batch(docs: list[str], post: Callable[[list[str]], Awaitable[bytes]]) -> list[Any]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(batch: list[str]) -> Any:
            async with gate:
                return decode(await post(batch))

        parts = await asyncio.gather(*(one(b) for b in _batches(docs)))
        return [row for part in parts for row in part]

    async def bare_aiohttp(docs: list[str]) -> list[Any]:
        async with aiohttp.ClientSession() as session:

            async def post(batch: list[str]) -> bytes:
                async with session.post(url + "/v1/embeddings", json=_b64_request(batch)) as response:
                    return await response.read()

            return await every_batch(docs, post)

    async def bare_httpx(docs: list[str]) -> list[Any]:
        from httpx_aiohttp import AiohttpTransport

        async with httpx.AsyncClient(transport=AiohttpTransport()) as client:

            async def post(batch: list[str]) -> bytes:
                return (await client.post(url + "/v1/embeddings", json=_b64_request(batch))).content

            return await every_batch(docs, post)

    return [
        ("reference: bare aiohttp, base64 to numpy (no library)", bare_aiohttp),
        ("reference: bare httpx over aiohttp, base64 to numpy (no library)", bare_httpx),
    ]


FAST_LATENCY, FAST_SLOTS, FAST_DOCS = 0.002, 64, 20_000


def client_cpu(repeats: int = 5) -> list[Row]:
    """Client CPU per 1,000 vectors where the client is the bound (issue #38): 2 ms x 64 slots, 20,000 texts.

    hf-infer's async client with its defaults (``max_concurrency="auto"``) on the base64 wire
    into numpy and on the JSON wire into lists, beside the floor: a bare httpx loop (the same
    transport, 8 requests in flight, batches of 32) that decodes the same base64 bodies into
    numpy and does nothing else. Settings alternated, the least CPU of ``repeats`` runs each.
    """
    import orjson

    from .common import run_endpoint

    corpus = texts(FAST_DOCS)

    def raw_httpx(
        route: str, body: Callable[[list[str]], Any], parse: Callable[[bytes], Any]
    ) -> Callable[[str], Awaitable[None]]:
        async def loop(url: str) -> None:
            from hf_infer_core.drivers._transports import fast_async_transport

            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(transport=fast_async_transport(limits), limits=limits) as client:
                gate = asyncio.Semaphore(8)

                async def one(batch: list[str]) -> Any:
                    async with gate:
                        return parse((await client.post(url + route, json=body(batch))).content)

                await asyncio.gather(*(one(b) for b in _batches(corpus)))

        return loop

    async def ours(url: str, wire: str, numpy: bool) -> None:
        endpoint = InferenceEndpoint.from_url(url + "/embed", "bench", requests_per_minute=None)
        async with AsyncEmbeddingClient(endpoint, wire_format=wire) as client:  # type: ignore[arg-type]
            await client.embed(corpus, as_numpy=numpy)

    cases: list[tuple[str, Callable[[str], Awaitable[None]]]] = [
        ("hf-infer AsyncEmbeddingClient.embed(as_numpy=True), wire_format=base64", lambda u: ours(u, "base64", True)),
        ("hf-infer AsyncEmbeddingClient.embed, json (lists)", lambda u: ours(u, "json", False)),
        (
            "reference: bare httpx loop (same transport), base64 to numpy",
            raw_httpx("/v1/embeddings", _b64_request, _b64_matrix),
        ),
        (
            "reference: bare httpx loop (same transport), JSON to lists, unchecked",
            raw_httpx("/embed", lambda batch: {"inputs": batch}, orjson.loads),
        ),
    ]
    least = {name: float("inf") for name, _ in cases}
    speed = dict.fromkeys(least, 0.0)
    with run_endpoint(latency=FAST_LATENCY, slots=FAST_SLOTS, dims=384, vectors="fixed", log_inputs=False) as server:

        async def all_runs() -> None:
            for _name, case in cases:  # warm up: imports, connections
                await case(server.url)
            for _ in range(repeats):
                for name, case in cases:
                    gc.collect()
                    with Timer() as timer:
                        await case(server.url)
                    least[name] = min(least[name], timer.cpu / FAST_DOCS * 1000)
                    speed[name] = max(speed[name], FAST_DOCS / timer.wall)

        asyncio.run(all_runs())
    return [{"name": name, "cpu_per_1000": least[name], "docs_s": speed[name]} for name, _ in cases]


def render_cpu(rows: list[Row]) -> str:
    lines = [
        f"Client CPU where the client is the bound: {FAST_LATENCY * 1000:.0f} ms x {FAST_SLOTS} slots, "
        f"{FAST_DOCS:,} texts, batch 32, defaults (the least CPU of 5 runs, alternated).",
        "",
        "| client | CPU s / 1000 vectors | docs/s (best) | goal |",
        "|---|---:|---:|---|",
    ]
    goals = {"base64": "<= 0.016", "json": "<= 0.035"}
    for r in rows:
        goal = next((g for k, g in goals.items() if k in r["name"] and r["name"].startswith("hf-infer")), "the floor")
        lines.append(f"| {r['name']} | {r['cpu_per_1000']:.4f} | {r['docs_s']:,.0f} | {goal} |")
    return "\n".join(lines)


def _b64_matrix(body: bytes) -> Any:
    """TEI's base64 answer as one float32 array, nothing checked: what a bare loop decodes."""
    import numpy as np
    import orjson

    data = orjson.loads(body)["data"]
    raw = base64.b64decode("".join(item["embedding"] for item in data))
    return np.frombuffer(raw, dtype="<f4").reshape(len(data), -1)


def _batches(docs: list[str]) -> list[list[str]]:
    return [docs[i : i + BATCH] for i in range(0, len(docs), BATCH)]


def _b64_request(batch: list[str]) -> dict[str, Any]:
    return {"input": batch, "encoding_format": "base64", "model": "fake"}


def peers(url: str) -> list[tuple[str, Callable[[list[str]], list[Any]] | None, str]]:
    from huggingface_hub import InferenceClient
    from llama_index.embeddings.huggingface_api import HuggingFaceInferenceAPIEmbedding
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    hub = InferenceClient(base_url=url + "/embed")

    def hub_batched(docs: list[str]) -> list[Any]:
        out: list[Any] = []
        for batch in _batches(docs):  # batched by hand, one request at a time, as users do
            out.extend(hub.feature_extraction(batch))  # type: ignore[arg-type]
        return out

    def hub_threads(docs: list[str]) -> list[Any]:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            return [v for part in pool.map(hub.feature_extraction, _batches(docs)) for v in part]  # type: ignore[arg-type]

    tei = TextEmbeddingsInference(base_url=url, model_name="fake", embed_batch_size=BATCH)
    tei.num_workers = CONCURRENCY  # its async batch method runs this many requests at once

    # Its sync batch path runs a new event loop per 10 texts while its aiohttp session stays bound
    # to the first loop ("Event loop is closed" from the second batch on): the async path is
    # measured. It sends one request per text.
    hf_api = HuggingFaceInferenceAPIEmbedding(model_name=url + "/embed").aget_text_embedding_batch

    rows: list[tuple[str, Callable[[list[str]], list[Any]] | None, str, int | None]] = [
        ("huggingface_hub InferenceClient.feature_extraction (batched by hand)", hub_batched, "", None),
        ("huggingface_hub InferenceClient.feature_extraction (12 threads)", hub_threads, "", None),
        ("llama-index TextEmbeddingsInference (sync)", tei.get_text_embedding_batch, "", None),
        (
            "llama-index TextEmbeddingsInference (async, 12 workers)",
            lambda d: asyncio.run(tei.aget_text_embedding_batch(d)),
            "",
            None,
        ),
        (
            "llama-index HuggingFaceInferenceAPIEmbedding (async)",
            hf_api,
            f"first {HF_API_DOCS} texts only (one request per text); its sync path fails",
            HF_API_DOCS,
        ),
    ]
    try:
        from langchain_huggingface import HuggingFaceEndpointEmbeddings

        lc = HuggingFaceEndpointEmbeddings(model=url + "/embed")
        rows.append(("langchain-huggingface HuggingFaceEndpointEmbeddings", lc.embed_documents, "", None))
    except Exception as err:
        why = str(err).split("\n")[1].strip() if "\n" in str(err) else str(err)
        why = why.split(" [type=")[0].replace("Value error, ", "")
        rows.append(
            ("langchain-huggingface HuggingFaceEndpointEmbeddings", None, f"not run: it refuses a URL ({why})", None)
        )
    return rows


def run(docs_count: int = 5000) -> list[Row]:
    """Measure every client; return rows (ours first)."""
    docs = texts(docs_count)
    capacity = SLOTS * BATCH / LATENCY
    rows: list[Row] = []
    with fake_endpoint(LATENCY, SLOTS) as url:
        for name, fn in ours(url):
            rows.append(measure(name, url, docs, fn))
        for name, fn in floors(url):
            rows.append(measure(name, url, docs, fn, "not a client: the floor"))
        for name, fn, note, limit in peers(url):
            if fn is None:
                rows.append(
                    {"name": name, "docs_s": 0.0, "requests": 0, "errors": 0, "cpu_per_1000": None, "note": note}
                )
            else:
                rows.append(measure(name, url, docs, fn, note, limit))
    best_peer = (
        max((r["docs_s"] for r in rows if r["name"].split(" ")[0] not in ("hf-infer", "reference:")), default=0.0)
        or 1.0
    )
    for row in rows:
        row["capacity"] = row["docs_s"] / capacity
        row["vs_best_peer"] = row["docs_s"] / best_peer
    return rows


def sweep(docs_count: int = 3000, levels: tuple[int, ...] = (1, 2, 4, 8, 12, 16)) -> dict[str, list[tuple[int, float]]]:
    """docs/s against concurrency, for the plot."""
    from huggingface_hub import InferenceClient
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    docs = texts(docs_count)
    series: dict[str, list[tuple[int, float]]] = {}
    with fake_endpoint(LATENCY, SLOTS) as url:
        hub = InferenceClient(base_url=url + "/embed")
        for level in levels:
            endpoint = InferenceEndpoint.from_url(url + "/embed", "bench", requests_per_minute=NO_LIMIT)

            async def use_async(level: int = level, endpoint: InferenceEndpoint = endpoint) -> float:
                async with AsyncEmbeddingClient(endpoint, max_concurrency=level) as client:
                    await client.embed(docs[:64])
                    with Timer() as t:
                        await client.embed(docs)
                return len(docs) / t.wall

            series.setdefault("hf-infer async", []).append((level, asyncio.run(use_async())))
            with EmbeddingClient(endpoint, max_concurrency=level) as client:
                client.embed(docs[:64])
                with Timer() as t:
                    client.embed(docs)
            series.setdefault("hf-infer sync (threads)", []).append((level, len(docs) / t.wall))
            tei = TextEmbeddingsInference(base_url=url, model_name="fake", embed_batch_size=BATCH)
            tei.num_workers = level
            asyncio.run(tei.aget_text_embedding_batch(docs[:64]))
            with Timer() as t:
                asyncio.run(tei.aget_text_embedding_batch(docs))
            series.setdefault("llama-index TEI async (num_workers)", []).append((level, len(docs) / t.wall))
            batches = _batches(docs)
            with ThreadPoolExecutor(level) as pool, Timer() as t:
                list(pool.map(hub.feature_extraction, batches))  # type: ignore[arg-type]
            series.setdefault("huggingface_hub (threads)", []).append((level, len(docs) / t.wall))
    return series


def parse_cost(batches: int = 300) -> dict[str, float]:
    """CPU seconds per 1,000 vectors for parsing alone: the response bodies of the two wire formats.

    The same 32 x 384 float32 vectors, written as TEI writes them (JSON floats; base64 in OpenAI's
    shape), parsed by hf-infer's I/O-free core: what ``wire_format`` changes, without the HTTP.
    """
    import random
    import struct
    import time

    from hf_infer_core.embeddings._core import EmbeddingCore
    from hf_infer_core.embeddings._options import EmbeddingOptions
    from hf_infer_core.protocol._steps import HttpResult

    rng = random.Random(0)
    vectors = [[round(rng.uniform(-0.1, 0.1), 8) for _ in range(384)] for _ in range(BATCH)]
    json_body = json.dumps(vectors).encode()
    data = [
        {"object": "embedding", "embedding": base64.b64encode(struct.pack("<384f", *v)).decode(), "index": i}
        for i, v in enumerate(vectors)
    ]
    b64_body = json.dumps({"object": "list", "data": data, "model": "m", "usage": {}}).encode()
    endpoint = InferenceEndpoint.from_url("http://127.0.0.1:1/embed", "bench")
    out: dict[str, float] = {}
    for name, wire, body, arrays in [
        ("json", "json", json_body, False),
        ("base64", "base64", b64_body, False),
        ("base64, as_numpy", "base64", b64_body, True),
    ]:
        core = EmbeddingCore(endpoint, EmbeddingOptions(wire_format=wire))  # type: ignore[arg-type]
        result = HttpResult(200, body)
        for _ in range(20):  # warm up: numpy's first calls, caches
            core.parse(result, BATCH, arrays=arrays)
        gc.collect()
        started = time.process_time()
        for _ in range(batches):
            core.parse(result, BATCH, arrays=arrays)
        out[name] = (time.process_time() - started) / (batches * BATCH) * 1000
    return out


def goals(rows: list[Row], parsing: dict[str, float]) -> str:
    """The figures issue #15 asks for, as ratios of rows measured in this run."""
    by = {r["name"]: r for r in rows}

    def cpu(name: str) -> float:
        return float(by[f"hf-infer {name}"]["cpu_per_1000"] or "nan")

    def cap(name: str) -> float:
        return float(by[f"hf-infer {name}"]["capacity"])

    pairs = [
        (
            "client CPU, base64 / JSON, async, lists",
            cpu("AsyncEmbeddingClient.embed, wire_format=base64") / cpu("AsyncEmbeddingClient.embed (core, async)"),
            "<= 0.25",
        ),
        (
            "client CPU, base64 / JSON, async, as_numpy",
            cpu("AsyncEmbeddingClient.embed(as_numpy=True), wire_format=base64")
            / cpu("AsyncEmbeddingClient.embed(as_numpy=True), json"),
            "<= 0.25",
        ),
        (
            "client CPU, base64 / JSON, sync, lists",
            cpu("EmbeddingClient.embed, wire_format=base64") / cpu("EmbeddingClient.embed (core, sync)"),
            "<= 0.25",
        ),
        ("parsing alone, base64 / JSON, lists", parsing["base64"] / parsing["json"], "<= 0.25"),
        ("parsing alone, base64 as_numpy / JSON lists", parsing["base64, as_numpy"] / parsing["json"], "<= 0.25"),
        ("async client, x capacity (JSON)", cap("AsyncEmbeddingClient.embed (core, async)"), ">= 0.95"),
        ("async client, x capacity (base64)", cap("AsyncEmbeddingClient.embed, wire_format=base64"), ">= 0.95"),
        (
            "LlamaIndex get_text_embedding_batch / LangChain embed_documents (sync)",
            cap("HFInferEmbedding.get_text_embedding_batch") / cap("HFInferEmbeddings.embed_documents"),
            ">= 0.90",
        ),
    ]
    lines = [
        "Parsing alone (hf-infer's core on 32 x 384 bodies, CPU s / 1000 vectors): "
        + ", ".join(f"{k} {v:.4f}" for k, v in parsing.items()),
        "",
        "| figure (this run) | value | goal |",
        "|---|---:|---|",
    ]
    lines += [f"| {name} | {value:.3f} | {goal} |" for name, value, goal in pairs]
    return "\n".join(lines)


def render(rows: list[Row]) -> str:
    capacity = SLOTS * BATCH / LATENCY
    lines = [
        f"Server: {LATENCY * 1000:.0f} ms latency x {SLOTS} slots, batch {BATCH} = {capacity:.0f} docs/s capacity; "
        f"hf-infer with max_concurrency={CONCURRENCY}",
        "",
        "| client | docs/s | x capacity | x best peer | requests | errors | CPU s / 1000 vectors | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        cpu = "" if r["cpu_per_1000"] is None else f"{r['cpu_per_1000']:.3f}"
        lines.append(
            f"| {r['name']} | {r['docs_s']:.0f} | {r['capacity']:.2f} | {r['vs_best_peer']:.2f} | {r['requests']} | "
            f"{r['errors']} | {cpu} | {r['note']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--cpu", action="store_true", help="only the client-bound CPU rows (issue #38)")
    args = parser.parse_args()
    if args.cpu:
        print(render_cpu(client_cpu()))
        return
    rows = run(args.docs)
    print(render(rows))
    print()
    print(goals(rows, parse_cost()))


if __name__ == "__main__":
    main()
