"""Helpers the integration tests of both drivers share: a client per driver, a call run either way, threads started together."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

from hf_infer_core import (
    AsyncEmbeddingClient,
    EmbeddingClient,
    InferenceEndpoint,
)

DRIVERS = ["sync", "async"]


NO_CHUNKING = {"strategy": "none"}


def make_client(driver: str, url: str, **options: Any) -> Any:
    endpoint = InferenceEndpoint.from_url(url, "k", requests_per_minute=None, chunking_settings=NO_CHUNKING)
    return (EmbeddingClient if driver == "sync" else AsyncEmbeddingClient)(endpoint, **options)


def run_call(client: Any, method: str, *args: Any) -> Any:
    result = getattr(client, method)(*args)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(k)`` on ``count`` threads started together; their results, or the exceptions they raised."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(k: int) -> None:
        start.wait()
        try:
            results[k] = work(k)
        except Exception as err:
            results[k] = err

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results
