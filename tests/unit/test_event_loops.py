"""The asyncio client's per-loop state: thousands of clients in one loop close it cleanly."""

from __future__ import annotations

import asyncio
import json

import httpx

from hf_infer_core import AsyncEmbeddingClient

from .fakes import endpoint, vector_for


def answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/info"):
        return httpx.Response(404)
    inputs = json.loads(request.content)["inputs"]
    return httpx.Response(200, json=[vector_for(t) for t in inputs])


# ------------------------------------------------------------------ the event loop is wrapped once


def test_thousands_of_async_clients_in_one_loop_close_it_cleanly() -> None:
    loop = asyncio.new_event_loop()

    async def one() -> None:
        async with AsyncEmbeddingClient(endpoint(), transport=httpx.MockTransport(answer), discover=False) as client:
            await client.embed(["x"])

    async def many() -> None:
        for _ in range(1_200):
            await one()

    try:
        loop.run_until_complete(many())
    finally:
        loop.close()  # was: RecursionError, one wrapper of close() per client
    assert loop.is_closed()
