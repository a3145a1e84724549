"""Both drivers and the adapters go through the environment's proxy, as httpx does by default."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    EmbeddingClient,
    InferenceEndpoint,
    TransportError,
)
from llama_index_hf_infer import HFInferEmbedding

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


# ------------------------------------------------------------------ proxies from the environment


@pytest.mark.parametrize("driver", DRIVERS)
def test_both_drivers_go_through_the_environments_proxy(driver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake endpoint answers a proxy's absolute-form request itself: it stands for the proxy.
    nowhere = f"http://127.0.0.1:{_free_port()}/embed"  # nothing listens there
    with fake_endpoint() as proxy:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert _run(_client(driver, nowhere), "embed", ["via proxy"]) == [expected_vector("via proxy")]
        assert [e.inputs for e in proxy.log] == [["via proxy"]]

        # NO_PROXY, and trust_env=False, go direct (refused: nothing listens there).
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with pytest.raises(TransportError, match="refused"):
            _run(_client(driver, nowhere, connect_retry_deadline=0.5), "embed", ["direct"])
        monkeypatch.delenv("NO_PROXY")
        with pytest.raises(TransportError, match="refused"):
            _run(_client(driver, nowhere, connect_retry_deadline=0.5, trust_env=False), "embed", ["direct"])
        assert len(proxy.log) == 1


def test_adapters_and_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_endpoint() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        nowhere = f"http://127.0.0.1:{_free_port()}/embed"
        emb = HFInferEmbedding(url=nowhere, api_key="k", requests_per_minute=None)
        assert emb.get_text_embedding("x") == expected_vector("x")
        assert asyncio.run(emb.aget_text_embedding("y")) == expected_vector("y")
