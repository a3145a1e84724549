"""The drift cases of issue #19, each one test body run through both drivers (sync and async).

Each failed on the previous main in one driver: the copies had drifted apart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from hf_infer_core import AsyncEmbeddingClient, TimeoutError

from .fakes import DRIVERS, build, call, endpoint, vector_for


def answer(request: httpx.Request) -> httpx.Response:
    inputs = json.loads(request.content)["inputs"]
    return httpx.Response(200, json=[vector_for(t) for t in inputs])


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_httpx_error_after_the_deadline_is_the_deadlines_timeout(driver: str) -> None:
    """Drift 2: only the sync driver called a transport error that came after the deadline expired."""

    def late_failure(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(404)
        time.sleep(0.3)  # blocks even the async driver's loop: asyncio.timeout cannot fire
        raise httpx.ReadError("connection reset", request=request)

    client = build(driver, late_failure, timeout=0.1, max_retries=0)
    with pytest.raises(TimeoutError, match="within the attempt's timeout"):
        call(client, "embed", ["x"])


@pytest.mark.parametrize("driver", DRIVERS)
def test_discovery_is_one_request_however_many_calls_start_at_once(driver: str) -> None:
    """Drift 4: the async driver took no lock, so concurrent first calls each read /info."""
    infos = 0
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal infos
        if request.url.path.endswith("/info"):
            with lock:
                infos += 1
            time.sleep(0.05)
            return httpx.Response(200, json={"model_id": "m", "max_client_batch_size": 8})
        return answer(request)

    async def handler_async(request: httpx.Request) -> httpx.Response:
        nonlocal infos
        if request.url.path.endswith("/info"):
            infos += 1
            await asyncio.sleep(0.05)
            return httpx.Response(200, json={"model_id": "m", "max_client_batch_size": 8})
        return answer(request)

    texts = [[f"call {c} text {i}" for i in range(3)] for c in range(6)]
    if driver == "sync":
        client = build(driver, handler)
        threads = [threading.Thread(target=client.embed, args=(t,)) for t in texts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        client = AsyncEmbeddingClient(endpoint(), transport=httpx.MockTransport(handler_async))

        async def main() -> None:
            await asyncio.gather(*(client.embed(t) for t in texts))

        asyncio.run(main())
    assert infos == 1


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("method", ["embed_iter", "embed_chunks_iter"])
def test_a_single_string_to_a_stream_fails_at_the_call(driver: str, method: str) -> None:
    """Drift 5: aembed_iter("one string") failed only at the first __anext__."""
    client = build(driver, answer)
    name = method if driver == "sync" else "a" + method
    with pytest.raises(TypeError, match="not a single str"):
        getattr(client, name)("one string")  # no iteration: the call itself refuses it


@pytest.mark.parametrize("driver", DRIVERS)
def test_results_come_back_in_order_through_either_driver(driver: str) -> None:
    texts = [f"text {i}" * (i % 5 + 1) for i in range(50)]
    client = build(driver, answer, batch_size=4, max_concurrency=3, discover=False)
    assert call(client, "embed", texts) == [vector_for(t) for t in texts]
