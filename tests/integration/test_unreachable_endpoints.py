"""Nothing there: a refusing Redis or a host that does not resolve is one typed error within the connect deadline."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    EmbeddingClient,
    InferenceEndpoint,
    RateLimitBackendError,
    TransportError,
)

DRIVERS = ["sync", "async"]
NO_CHUNKING = {"strategy": "none"}


def _client(driver: str, url: str, **options: Any) -> Any:
    endpoint = InferenceEndpoint.from_url(url, "k", requests_per_minute=None, chunking_settings=NO_CHUNKING)
    return (EmbeddingClient if driver == "sync" else AsyncEmbeddingClient)(endpoint, **options)


def _run(client: Any, method: str, *args: Any) -> Any:
    result = getattr(client, method)(*args)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
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


# ------------------------------------------------------------------ nothing there: reported soon


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_redis_that_refuses_is_reported_within_the_connect_deadline(driver: str) -> None:
    url = f"redis://:redis-pass-123@127.0.0.1:{_free_port()}/0"
    endpoint = InferenceEndpoint.from_url("http://127.0.0.1:1/embed", "k", requests_per_minute=600)
    client = (EmbeddingClient if driver == "sync" else AsyncEmbeddingClient)(
        endpoint, rate_limit_backend=url, connect_retry_deadline=2.0, discover=False
    )
    started = time.monotonic()
    with pytest.raises(RateLimitBackendError) as info:
        _run(client, "embed", ["x"])
    assert time.monotonic() - started < 20  # was 119.8 s (the whole retry_deadline)
    assert "refused" in str(info.value) and "redis-pass-123" not in str(info.value)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_host_that_does_not_resolve_is_one_typed_error_within_the_connect_deadline(driver: str) -> None:
    client = _client(driver, "http://no-such-host.invalid/embed", connect_retry_deadline=2.0)
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        _run(client, "embed", ["x"])
    assert type(info.value) is TransportError and info.value.unresolved  # not TimeoutError in one driver
    assert "does not resolve" in str(info.value)
    assert time.monotonic() - started < 20  # was 6-10 s of retries
