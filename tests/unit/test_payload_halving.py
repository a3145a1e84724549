"""A batch a 413 refuses is halved: its halves run side by side within max_concurrency and the batch's deadline."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, TimeoutError

from .fakes import DRIVERS, FakeClock, build, call, endpoint, vector_for

# ------------------------------------------------------------------ a 413's halves: one deadline, side by side


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_batch_split_by_413s_keeps_its_retry_deadline(driver: str) -> None:
    clock = FakeClock()
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(404)
        inputs = json.loads(request.content)["inputs"]
        if len(inputs) > 1:
            return httpx.Response(413, json={"error": "batch too large", "error_type": "validation"})
        with lock:
            attempts[inputs[0]] = attempts.get(inputs[0], 0) + 1
            busy = attempts[inputs[0]] <= 2
        if busy:  # each single text is refused twice, then taken: every leaf spends ~1 s waiting
            return httpx.Response(503, json={"error": "busy"})
        return httpx.Response(200, json=[vector_for(inputs[0])])

    sleep = clock.sleep if driver == "sync" else clock.asleep
    # A fixed window: "auto" parks a refused slot on the process's real clock (the limit is shared
    # by every client of the endpoint), which this fake clock's deadline would not see.
    client = build(
        driver,
        refuse,
        batch_size=16,
        max_concurrency=4,
        retry_deadline=3.0,
        max_retries=10,
        max_retry_wait=0.5,
        sleep=sleep,
        clock=clock,
    )
    started = clock.now
    with pytest.raises(TimeoutError):
        call(client, "embed", [f"t{i}" for i in range(16)])
    # The halves share their batch's deadline: the call ends at it (one wait of each worker over at
    # most), not after 16 leaves of ~1 s each, every half with a deadline of its own (was 10-18 s).
    assert clock.now - started <= 3.0 + 4 * 0.5


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_413s_halves_run_side_by_side_within_max_concurrency(driver: str) -> None:
    lock = threading.Lock()
    active = [0, 0]  # now, most

    async def slow_async(request: httpx.Request) -> httpx.Response:
        with lock:
            active[0] += 1
            active[1] = max(active)
        await asyncio.sleep(0.02)
        with lock:
            active[0] -= 1
        return split(request)

    def slow_sync(request: httpx.Request) -> httpx.Response:
        with lock:
            active[0] += 1
            active[1] = max(active)
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return split(request)

    def split(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        if len(inputs) > 2:
            return httpx.Response(413, json={"error": "batch too large", "error_type": "validation"})
        return httpx.Response(200, json=[vector_for(t) for t in inputs])

    texts = [f"t{i}" for i in range(16)]  # one batch: only its halves can run side by side
    cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
    handler: Any = slow_sync if driver == "sync" else slow_async
    client = cls(endpoint(), transport=httpx.MockTransport(handler), batch_size=16, max_concurrency=3, discover=False)
    assert call(client, "embed", texts) == [vector_for(t) for t in texts]
    assert active[1] == 3  # the halves ran side by side (they were one after another), never past 3
