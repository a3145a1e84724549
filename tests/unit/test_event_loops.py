"""The asyncio client's per-loop state: thousands of clients in one loop close it cleanly."""

from __future__ import annotations

import asyncio

import httpx

from hf_infer_core import AsyncEmbeddingClient

from .fakes import answer, endpoint

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
