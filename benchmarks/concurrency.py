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
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InferenceEndpoint
from hf_infer_core.limits._concurrency import after_fork_in_child
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


def _streamed(config: dict[str, Any], setting: int | str, seconds: float) -> tuple[list[dict[str, Any]], float]:
    """One client streaming ``seconds`` into a fresh endpoint of ``config``: the endpoint's log and its first arrival."""
    print(f"  changing endpoint, max_concurrency={setting} ...", file=sys.stderr, flush=True)
    with fake_endpoint(vectors="fixed", dims=384, log_inputs=False, **config) as server:
        asyncio.run(_stream(server.url, setting, seconds))
        log = _log(server.url)
    return log, log[0]["at"]


def scaling_runs(seconds: float = 30.5) -> list[dict[str, Any]]:
    """Each setting streaming through the changing endpoint: per phase capacity, overloads, depth."""
    batch_time = SCALING["latency"] + SCALING["latency_per_word"] * WORDS_PER_TEXT * BATCH  # type: ignore[operator]
    rows = []
    for setting in SETTINGS:
        log, t0 = _streamed(SCALING, setting, seconds)
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

# Issue #38's endpoint shapes: each a fake endpoint in its own process, each setting a fresh one.
# (name, fake endpoint settings, texts per run, capacity in texts/s or None: from the best setting)
SHAPE_SETTINGS: list[int | str] = [1, 2, 4, 8, 16, 32, "auto"]
SHAPES: list[tuple[str, dict[str, Any], int, float | None]] = [
    ("capacity-bound: 25 ms x 8 slots", {"latency": 0.025, "slots": 8}, 10_000, 8 * BATCH / 0.025),
    (
        "sheds load: 25 ms x 2 slots, a queue of 1 (429 beyond 3)",
        # /info announces max_concurrent_requests as TEI does (its 429 beyond 3).
        {"latency": 0.025, "slots": 2, "queue_limit": 1, "info_concurrency": 3},
        5_000,
        2 * BATCH / 0.025,
    ),
    ("client-bound: 2 ms x 64 slots", FAST, 20_000, None),
    (
        "CPU-like: one batch at a time, 2 ms + 0.1 ms a word (40 ms a batch of 32)",
        {"latency": 0.002, "latency_per_word": 0.0001, "slots": 1},
        3_000,
        BATCH / (0.002 + 0.0001 * WORDS_PER_TEXT * BATCH),
    ),
]
CHANGING = {**SCALING, "schedule": [[0, 2], [5, 8], [10, 4]]}  # section 8's endpoint, 5 s a phase
CHANGING_SECONDS = 15.0


def _embed_timed(endpoint: InferenceEndpoint, setting: int | str, corpus: list[str], driver: str = "async") -> float:
    # Every run starts cold, as a new process does: "auto" keeps what it learnt of an endpoint
    # for the process's life, which would favour its later runs.
    after_fork_in_child()
    return _timed(driver, endpoint, setting, corpus)[0]


def shape_runs(repeats: int = 5) -> list[dict[str, Any]]:
    """Every setting on every shape (async driver; sync too on the first and the client-bound one).

    Per shape one endpoint, the settings alternated ``repeats`` times and the median run of each
    kept: a busy moment of the machine (the client and the endpoint share its 2 cores) falls on
    all of them, and single runs of the client-bound shape range from 0.6 to 1.2 of their median.
    (The best run of each was kept before: the best of six fixed settings' eighteen runs is a
    luckier draw than the best of "auto"'s three, whatever the settings do.) The capacity- and
    client-bound shapes, whose runs last about a second, are run ``2 * repeats - 1`` times: their
    rows compare "auto" with the best of six medians, and with five runs one busy second of the
    machine moved a median by 10-15% (sync 32 in flight: 6,566 docs/s in one run, 8,400-9,000 in
    the next).
    """
    rows: list[dict[str, Any]] = []
    for name, config, count, capacity in SHAPES:
        corpus = texts(count)
        short = name.startswith(("capacity", "client"))
        drivers = ("async", "sync") if short else ("async",)
        times = 2 * repeats - 1 if short else repeats
        for driver in drivers:
            print(f"  {name}, {driver}, each setting {times} times ...", file=sys.stderr, flush=True)
            runs: dict[int | str, list[float]] = {setting: [] for setting in SHAPE_SETTINGS}
            refused: dict[int | str, int] = dict.fromkeys(SHAPE_SETTINGS, 0)
            sent: dict[int | str, int] = dict.fromkeys(SHAPE_SETTINGS, 0)
            with fake_endpoint(vectors="fixed", dims=384, log_inputs=False, **config) as server:
                for _ in range(times):
                    for setting in SHAPE_SETTINGS:
                        before = len(_log(server.url))
                        rate = count / _embed_timed(_endpoint(server.url), setting, corpus, driver)
                        runs[setting].append(rate)
                        log = _log(server.url)[before:]
                        refused[setting] += sum(1 for e in log if e["answer"] != "ok")
                        sent[setting] += len(log)
            rows += [
                {
                    "shape": name,
                    "driver": driver,
                    "setting": setting,
                    "docs_s": statistics.median(runs[setting]),
                    "capacity": capacity,
                    "refused": refused[setting] / max(sent[setting], 1),
                }
                for setting in SHAPE_SETTINGS
            ]
    return rows + changing_runs(max(1, repeats // 2))


def changing_runs(repeats: int) -> list[dict[str, Any]]:
    """Each setting streaming 15 s through an endpoint of 2, 8, then 4 slots: the median of ``repeats`` runs."""
    batch_time = CHANGING["latency"] + CHANGING["latency_per_word"] * WORDS_PER_TEXT * BATCH  # type: ignore[operator]
    slot_seconds = 5 * (2 + 8 + 4) - 0.5 * 2  # the cold start answers nothing
    runs: dict[int | str, list[float]] = {setting: [] for setting in SHAPE_SETTINGS}
    refused: dict[int | str, list[float]] = {setting: [] for setting in SHAPE_SETTINGS}
    for _ in range(repeats):
        for setting in SHAPE_SETTINGS:
            log, t0 = _streamed(CHANGING, setting, CHANGING_SECONDS)
            ok = sum(1 for e in log if e["answer"] == "ok" and e["at"] - t0 < CHANGING_SECONDS)
            runs[setting].append(ok * BATCH / CHANGING_SECONDS)
            refused[setting].append(sum(1 for e in log if e["answer"] != "ok") / len(log))
    return [
        {
            "shape": "changing: 2, 8, then 4 slots, 5 s each (queue of 8, 0.5 s cold start)",
            "driver": "async",
            "setting": setting,
            "docs_s": statistics.median(runs[setting]),
            "capacity": slot_seconds / batch_time * BATCH / CHANGING_SECONDS,
            "refused": statistics.fmean(refused[setting]),
        }
        for setting in SHAPE_SETTINGS
    ]


def _shared_client(url: str, i: int, seconds: float, started: Any, counts: Any) -> None:
    """One process's client of the shared endpoint: streams for ``seconds``, counts its vectors."""

    async def run() -> None:
        async def endless() -> AsyncIterator[str]:
            n = 0
            while True:
                yield f"Client {i} document {n}: a short text about topic {n % 97} for the benchmark."
                n += 1

        endpoint = InferenceEndpoint.from_url(url + "/embed", f"key-{i}", requests_per_minute=None)
        async with AsyncEmbeddingClient(endpoint, max_retries=1000) as c:
            await c.embed(["warm up"])
            started.wait()
            deadline = time.monotonic() + seconds
            count = 0
            async for _ in c.aembed_iter(endless()):
                count += 1
                if time.monotonic() >= deadline:
                    break
            counts[i] = count

    asyncio.run(run())


def shared_run(seconds: float = 10.0, latency: float = 0.025) -> list[float]:
    """Two processes' clients, both with the defaults, streaming into one ``latency`` x 8 endpoint: each one's share.

    Two processes, not two threads of one: two event loops under one GIL were bound by the CPU
    (0.77 of the endpoint between them), which measured the interpreter, not the sharing. On two
    CPUs the two clients and the endpoint together are still the bound at 25 ms (the pair gets
    0.78-0.87 of it), so a 50 ms endpoint (half the vectors per second) is run too: there the
    machine has room, and the shares measure the sharing alone.
    """
    import multiprocessing

    config = {"latency": latency, "slots": 8, "queue_limit": 8}
    capacity = 8 * BATCH / latency
    context = multiprocessing.get_context("spawn")
    print(
        f"  two clients (two processes) sharing one {latency * 1000:.0f} ms endpoint ...", file=sys.stderr, flush=True
    )
    with fake_endpoint(vectors="fixed", dims=384, log_inputs=False, **config) as server:
        barrier = context.Barrier(2)
        counts = context.Array("q", 2)
        processes = [
            context.Process(target=_shared_client, args=(server.url, i, seconds, barrier, counts)) for i in (0, 1)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    return [count / seconds / capacity for count in counts]


def shared_runs() -> dict[float, list[float]]:
    """:func:`shared_run` on the 25 ms endpoint and on a 50 ms one (the machine not the bound)."""
    return {latency: shared_run(latency=latency) for latency in (0.025, 0.050)}


def render_shapes(rows: list[dict[str, Any]], shared: dict[float, list[float]]) -> str:
    """One row per shape and driver: docs/s per setting, the best fixed one, auto's ratio to it."""
    fixed = [s for s in SHAPE_SETTINGS if s != "auto"]
    lines = [
        "docs/s, the median of 9 runs alternated on one endpoint for the capacity- and client-bound rows, 5 for the others "
        "(2 for the changing one; refused share of all runs when any); "
        "auto / best fixed and auto / 4 (the old default).",
        "",
        "| endpoint | driver | " + " | ".join(str(s) for s in SHAPE_SETTINGS) + " | auto / best fixed | auto / 4 |",
        "|---|---|" + "---:|" * (len(SHAPE_SETTINGS) + 2),
    ]
    seen: list[tuple[str, str]] = []
    for r in rows:
        if (r["shape"], r["driver"]) not in seen:
            seen.append((r["shape"], r["driver"]))
    for shape, driver in seen:
        mine = {r["setting"]: r for r in rows if r["shape"] == shape and r["driver"] == driver}

        def cell(r: dict[str, Any]) -> str:
            refused = f" ({r['refused'] * 100:.1f}%)" if r["refused"] else ""
            return f"{r['docs_s']:,.0f}{refused}"

        best = max(mine[s]["docs_s"] for s in fixed)
        auto = mine["auto"]["docs_s"]
        cells = " | ".join(cell(mine[s]) for s in SHAPE_SETTINGS)
        lines.append(f"| {shape} | {driver} | {cells} | {auto / best:.2f} | {auto / mine[4]['docs_s']:.2f} |")
    for latency, shares in shared.items():
        together = sum(shares) or 1.0
        lines.append(
            f"\nTwo clients (two processes) sharing one {latency * 1000:.0f} ms x 8 endpoint, both with the "
            f"defaults: shares {shares[0]:.2f} and {shares[1]:.2f} of its capacity (goal: each 0.4-0.6); of "
            f"what the two got together ({together:.2f} of it: less when the machine, not the endpoint, is "
            f"the bound), {shares[0] / together:.2f} and {shares[1] / together:.2f}."
        )
    return "\n".join(lines)


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
    elif sys.argv[1:] == ["shapes"]:
        print(render_shapes(shape_runs(), shared_runs()))
    else:
        print(render(fixed_runs(), scaling_runs()) + "\n\n" + render_fast(fast_runs()))
