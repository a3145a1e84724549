"""Adaptive concurrency (issue #23): ``max_concurrency="auto"`` beside fixed 4, 12 and 32, in one run.

1. The fixed endpoint of section 1 (25 ms x 8 slots, batch 32, no queue limit): docs/s and the
   fraction of its capacity, through the sync and the async client, each setting on 60,000 texts.
2. A changing endpoint (tests/fake_endpoint.py's scaling mode): 2, then 8, then 4 slots, 10 s
   each; each batch takes 10 ms + 0.05 ms per word (384 words: 29.2 ms); at most 8 requests wait
   beyond the slots, the next gets TEI's 429 "Model is overloaded"; the first 0.5 s answer 503
   (a replica starting). The async client streams texts through ``aembed_iter`` for 30 s.
   Per phase: the fraction of capacity from 5 s after the change to its end (goal >= 0.9) and in
   its first second; overload answers (429 + 503) per request (goal <= 1%); the most requests at
   the server per slot after the first 2 s (goal <= 2), also without the 0.5 s after each change
   (a drop in slots is seen by the client one round later).
3. A fast endpoint where the client is the bottleneck (issue #27, case 11): 2 ms x 64 slots,
   20,000 texts in batches of 32: "auto" beside the default (4) through both drivers, and the
   limit "auto" settled at (goal: never below the default's throughput).
Read from the endpoint's own log: arrival times, answers, requests at the server on arrival.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InferenceEndpoint
from tests.fake_endpoint import fake_endpoint

from .common import texts

BATCH = 32
SETTINGS: list[int | str] = [4, 12, 32, "auto"]
FIXED = {"latency": 0.025, "slots": 8}
SCALING = {
    "latency": 0.010,
    "latency_per_word": 0.00005,
    "schedule": [[0, 2], [10, 8], [20, 4]],
    "queue_limit": 8,
    "cold_start": 0.5,
}
PHASES = [(0.0, 10.0, 2), (10.0, 20.0, 8), (20.0, 30.0, 4)]
WORDS_PER_TEXT = 12  # every text here: "Document i: a short text about topic j for the throughput benchmark."


def _endpoint(url: str) -> InferenceEndpoint:
    return InferenceEndpoint.from_url(url + "/embed", "k", requests_per_minute=None)


def _log(url: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = httpx.get(url + "/log", timeout=60).json()
    return entries


def fixed_runs(docs: int = 60_000) -> list[dict[str, Any]]:
    """Each setting on the fixed endpoint, sync and async: docs/s and fraction of capacity."""
    capacity = FIXED["slots"] * BATCH / FIXED["latency"]
    corpus = texts(docs)
    rows = []
    for driver in ("sync", "async"):
        for setting in SETTINGS:
            print(f"  fixed endpoint, {driver}, max_concurrency={setting} ...", file=sys.stderr, flush=True)
            with fake_endpoint(vectors="fixed", dims=384, log_inputs=False, **FIXED) as server:
                endpoint = _endpoint(server.url)
                if driver == "sync":
                    with EmbeddingClient(endpoint, max_concurrency=setting) as client:  # type: ignore[arg-type]
                        client.embed(corpus[:256])  # warm up: connections, discovery, the limit's start
                        started = time.perf_counter()
                        client.embed(corpus)
                        elapsed = time.perf_counter() - started
                else:

                    async def run(endpoint: InferenceEndpoint = endpoint, setting: int | str = setting) -> float:
                        async with AsyncEmbeddingClient(endpoint, max_concurrency=setting) as client:  # type: ignore[arg-type]
                            await client.embed(corpus[:256])
                            started = time.perf_counter()
                            await client.embed(corpus)
                            return time.perf_counter() - started

                    elapsed = asyncio.run(run())
                log = _log(server.url)
            overloads = sum(1 for e in log if e["answer"] != "ok")
            rows.append(
                {
                    "driver": driver,
                    "setting": setting,
                    "docs_s": docs / elapsed,
                    "fraction": docs / elapsed / capacity,
                    "overloads": overloads,
                    "requests": len(log),
                }
            )
    return rows


async def _stream(url: str, setting: int | str, seconds: float) -> None:
    async def endless() -> AsyncIterator[str]:
        i = 0
        while True:
            yield f"Document {i}: a short text about topic {i % 97} for the throughput benchmark."
            i += 1

    async with AsyncEmbeddingClient(_endpoint(url), max_concurrency=setting, max_retries=1000) as client:  # type: ignore[arg-type]
        deadline = None
        async for _ in client.aembed_iter(endless()):
            if deadline is None:
                deadline = time.monotonic() + seconds
            elif time.monotonic() >= deadline:
                break


def scaling_runs(seconds: float = 30.5) -> list[dict[str, Any]]:
    """Each setting streaming through the changing endpoint: per phase capacity, overloads, depth."""
    batch_time = SCALING["latency"] + SCALING["latency_per_word"] * WORDS_PER_TEXT * BATCH  # type: ignore[operator]
    rows = []
    for setting in SETTINGS:
        print(f"  changing endpoint, max_concurrency={setting} ...", file=sys.stderr, flush=True)
        with fake_endpoint(vectors="fixed", dims=384, log_inputs=False, **SCALING) as server:
            asyncio.run(_stream(server.url, setting, seconds))
            log = _log(server.url)
        t0 = log[0]["at"]
        ok = [e["at"] - t0 for e in log if e["answer"] == "ok"]
        row: dict[str, Any] = {"setting": setting, "requests": len(log)}
        row["overload_share"] = sum(1 for e in log if e["answer"] != "ok") / len(log)
        row["phases"] = []
        for start, end, slots in PHASES:
            per_second = slots / batch_time

            def fraction(a: float, b: float, per_second: float = per_second, ok: list[float] = ok) -> float:
                return sum(1 for t in ok if a <= t < b) / ((b - a) * per_second)

            # The first second after the change (after the cold start and the first round, for the first phase).
            early = fraction(1.0, 2.0) if start == 0 else fraction(start, start + 1.0)
            row["phases"].append((fraction(start + 5.0, end), early))
        after = [e for e in log if e["at"] - t0 >= 2.0]
        row["depth"] = max((e["depth"] / e["slots"] for e in after), default=0.0)
        settled = [e for e in after if all(not 0 <= e["at"] - t0 - start < 0.5 for start, _, _ in PHASES)]
        row["depth_settled"] = max((e["depth"] / e["slots"] for e in settled), default=0.0)
        rows.append(row)
    return rows


FAST = {"latency": 0.002, "slots": 64}


def fast_runs(docs: int = 20_000, repeats: int = 5) -> list[dict[str, Any]]:
    """The default (4) and "auto" on a fast endpoint the client cannot fill: docs/s, best of ``repeats``.

    The two settings alternate on one server, so a busy moment of the machine falls on both.
    """
    corpus = texts(docs)
    rows = []
    for driver in ("sync", "async"):
        best: dict[int | str, float] = {4: 0.0, "auto": 0.0}
        limits: dict[int | str, int] = {}
        print(f"  fast endpoint, {driver}, max_concurrency=4 and auto ...", file=sys.stderr, flush=True)
        with fake_endpoint(vectors="fixed", dims=384, log_inputs=False, **FAST) as server:
            endpoint = _endpoint(server.url)
            for _ in range(repeats):
                for setting in (4, "auto"):
                    elapsed, limits[setting] = _timed(driver, endpoint, setting, corpus)
                    best[setting] = max(best[setting], docs / elapsed)
        rows += [{"driver": driver, "setting": k, "docs_s": v, "limit": limits[k]} for k, v in best.items()]
    return rows


def _timed(driver: str, endpoint: InferenceEndpoint, setting: int | str, corpus: list[str]) -> tuple[float, int]:
    """Seconds for one embed of ``corpus`` after a warm-up call, and the limit in force at its end."""
    if driver == "sync":
        with EmbeddingClient(endpoint, max_concurrency=setting) as client:  # type: ignore[arg-type]
            client.embed(corpus[:256])
            started = time.perf_counter()
            client.embed(corpus)
            return time.perf_counter() - started, client.concurrency

    async def run() -> tuple[float, int]:
        async with AsyncEmbeddingClient(endpoint, max_concurrency=setting) as client:  # type: ignore[arg-type]
            await client.embed(corpus[:256])
            started = time.perf_counter()
            await client.embed(corpus)
            return time.perf_counter() - started, client.concurrency

    return asyncio.run(run())


def render_fast(rows: list[dict[str, Any]]) -> str:
    lines = [
        "Fast endpoint, the client the bottleneck: 2 ms x 64 slots, batch 32, 20,000 texts (best of 5, settings alternated).",
        "",
        "| driver | max_concurrency | docs/s | limit at the end | of the default's docs/s |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        default = next(d for d in rows if d["driver"] == r["driver"] and d["setting"] == 4)
        lines.append(
            f"| {r['driver']} | {r['setting']} | {r['docs_s']:,.0f} | {r['limit']} | {r['docs_s'] / default['docs_s']:.2f} |"
        )
    return "\n".join(lines)


def render(fixed: list[dict[str, Any]], scaling: list[dict[str, Any]]) -> str:
    capacity = FIXED["slots"] * BATCH / FIXED["latency"]
    lines = [
        f"Fixed endpoint: 25 ms x 8 slots, batch 32 = {capacity:,.0f} docs/s; 60,000 texts per run, after a warm-up call.",
        "",
        "| driver | max_concurrency | docs/s | of capacity | overload answers |",
        "|---|---|---:|---:|---:|",
    ]
    for r in fixed:
        lines.append(
            f"| {r['driver']} | {r['setting']} | {r['docs_s']:,.0f} | {r['fraction']:.2f} | {r['overloads']} of {r['requests']} |"
        )
    best = {
        driver: max(r["docs_s"] for r in fixed if r["driver"] == driver and r["setting"] != "auto")
        for driver in ("sync", "async")
    }
    for driver in ("sync", "async"):
        auto = next(r for r in fixed if r["driver"] == driver and r["setting"] == "auto")
        lines.append(f"\n{driver}: auto / best fixed = {auto['docs_s'] / best[driver]:.3f}")
    lines += [
        "",
        "Changing endpoint (async client, aembed_iter, 30 s): 2 -> 8 -> 4 slots, 10 s each, queue of 8, "
        "0.5 s cold start; fraction of each phase's capacity from 5 s after its change (first second in brackets).",
        "",
        "| max_concurrency | 2 slots | 8 slots | 4 slots | overload answers | max at server / slots (settled) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in scaling:
        phases = " | ".join(f"{late:.2f} ({early:.2f})" for late, early in r["phases"])
        lines.append(
            f"| {r['setting']} | {phases} | {r['overload_share'] * 100:.2f}% of {r['requests']} | "
            f"{r['depth']:.2f} ({r['depth_settled']:.2f}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["fast"]:
        print(render_fast(fast_runs()))
    else:
        print(render(fixed_runs(), scaling_runs()) + "\n\n" + render_fast(fast_runs()))
