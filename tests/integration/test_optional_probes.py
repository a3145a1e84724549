"""Optional probes (/info): a failure never fails the job, and concurrent first callers wait for one attempt."""

from __future__ import annotations

import asyncio
import logging
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
)

from ..fake_endpoint import expected_vector, fake_endpoint

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


# ------------------------------------------------------------------ optional probes


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("info", ["500", "501", "502", "403", "hang"])
def test_a_failing_info_never_fails_the_job(driver: str, info: str, caplog: pytest.LogCaptureFixture) -> None:
    with fake_endpoint(info=info) as server:
        client = _client(driver, server.embed_url, connect_retry_deadline=1.0)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="hf_infer_core"):
            assert _run(client, "embed_documents", ["a", "b"]) == [expected_vector("a"), expected_vector("b")]
            assert _run(client, "embed_documents", ["c"]) == [expected_vector("c")]
        # One attempt, bounded by connect_retry_deadline (a hang was 120 s, a 500 up to 31 attempts).
        assert time.monotonic() - started < 30
        assert server.stats()["gets"]["/info"] == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "/info" in warnings[0] and "going on without it" in warnings[0], warnings


def test_concurrent_first_callers_wait_for_one_failed_probe() -> None:
    with fake_endpoint(info="hang") as server:
        client = _client("sync", server.embed_url, connect_retry_deadline=1.0)
        results = _in_threads(8, lambda k: client.embed([f"t{k}"]))
        assert results == [[expected_vector(f"t{k}")] for k in range(8)]
        assert server.stats()["gets"]["/info"] == 1  # the N-th caller waited for one probe, not N
