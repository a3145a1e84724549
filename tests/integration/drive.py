"""Helpers the integration tests of both drivers share: a client per driver, a call run either way, threads started together."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def raw_server(reply: bytes = b"") -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on 127.0.0.1 that reads what each connection sends first, answers ``reply`` and closes.

    ``reply`` empty: it hangs up without a word. Yields its port and what it read, a piece per connection.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                received.append(conn.recv(65536))
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], received
    finally:
        listener.close()
