"""Faults over real HTTP: nothing lost, duplicated or reordered; permanent faults typed and bounded.

The fault server (tests/fake_endpoint.py) answers from a seeded schedule on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from hf_infer_core import (
    AsyncEmbeddingClient,
    AuthenticationError,
    EmbeddingClient,
    InferenceEndpoint,
    InvalidRequestError,
    RateLimiter,
    ResponseFormatError,
    ServerError,
)
from langchain_hf_infer import HFInferEmbeddings
from llama_index_hf_infer import HFInferEmbedding

from ..fake_endpoint import BROKEN, RemoteEndpoint, expected_vector, fake_endpoint, max_in_window

KEY = "hf_SECRET_canary_123"
TEXTS = [f"document {i}: {'lorem ipsum ' * (i % 7)}" for i in range(2000)]
EXPECTED = [expected_vector(t) for t in TEXTS]
# Fast retries: every wait capped at 20 ms; a stall (1.5 s) exceeds the 0.5 s timeout.
OPTIONS: dict[str, Any] = {"timeout": 0.5, "max_retries": 8, "max_retry_wait": 0.02, "retry_deadline": 60.0}
NO_CHUNKING = {"strategy": "none"}


def endpoint(server: RemoteEndpoint, rpm: int = 10**9) -> InferenceEndpoint:
    return InferenceEndpoint.from_url(server.embed_url, KEY, requests_per_minute=rpm, chunking_settings=NO_CHUNKING)


def assert_faults_were_injected(server: RemoteEndpoint) -> None:
    counts = server.counts()
    faulty = sum(n for kind, n in counts.items() if kind != "ok")
    assert faulty >= 0.1 * len(server.log), counts
    assert len({k for k in counts if k != "ok"}) >= 5, counts


@pytest.mark.slow
def test_sync_client_loses_nothing_under_transient_faults() -> None:
    with fake_endpoint(seed=1, fault_rate=0.3) as server:
        with EmbeddingClient(
            endpoint(server), batch_size=32, max_concurrency=4, rate_limiter=RateLimiter(10**9), **OPTIONS
        ) as client:
            assert client.embed(TEXTS) == EXPECTED
        assert_faults_were_injected(server)


@pytest.mark.slow
async def test_async_client_loses_nothing_under_transient_faults() -> None:
    with fake_endpoint(seed=2, fault_rate=0.3) as server:
        async with AsyncEmbeddingClient(
            endpoint(server), batch_size=32, max_concurrency=4, rate_limiter=RateLimiter(10**9), **OPTIONS
        ) as client:
            assert await client.embed(TEXTS) == EXPECTED
        assert_faults_were_injected(server)


@pytest.mark.slow
def test_both_adapters_lose_nothing_under_transient_faults() -> None:
    with fake_endpoint(seed=3, fault_rate=0.3) as server:
        common = {
            "url": server.embed_url,
            "api_key": KEY,
            "requests_per_minute": 10**9,
            "chunking_settings": NO_CHUNKING,
            **OPTIONS,
        }
        lc = HFInferEmbeddings(**common)
        assert lc.embed_documents(TEXTS) == EXPECTED
        assert asyncio.run(lc.aembed_documents(TEXTS[:500])) == EXPECTED[:500]
        li = HFInferEmbedding(**common)
        assert li.get_text_embedding_batch(TEXTS) == EXPECTED
        assert asyncio.run(li.aget_text_embedding_batch(TEXTS[:500])) == EXPECTED[:500]
        assert_faults_were_injected(server)


def test_faults_split_batches_without_loss() -> None:
    with fake_endpoint(seed=4, fault_rate=0.2, max_batch=8) as server:
        with EmbeddingClient(endpoint(server), batch_size=32, rate_limiter=RateLimiter(10**9), **OPTIONS) as client:
            assert client.embed(TEXTS[:256]) == EXPECTED[:256]
        counts = server.counts()
        assert counts["tei_413"] + counts["plain_413"] >= 3 * 8  # each batch of 32 was refused, then its halves
        assert {len(entry.inputs) for entry in server.log} == {32, 16, 8}


@pytest.mark.parametrize(
    ("permanent", "error"),
    [("401", AuthenticationError), ("422", InvalidRequestError), ("500", ServerError)]
    + [(kind, ResponseFormatError) for kind in BROKEN],
)
def test_permanent_faults_raise_typed_errors_within_the_deadline(permanent: str, error: type[Exception]) -> None:
    with fake_endpoint(permanent=permanent) as server:
        started = time.monotonic()
        with (
            EmbeddingClient(
                endpoint(server), batch_size=32, max_concurrency=2, rate_limiter=RateLimiter(10**9), **OPTIONS
            ) as client,
            pytest.raises(error) as info,
        ):
            client.embed(TEXTS[:200])
        assert time.monotonic() - started < 10
        indices = info.value.indices  # type: ignore[attr-defined]
        # the error names exactly the inputs of a batch the server received
        assert len(indices) == 32
        assert list(indices) == sorted(set(indices))
        assert {frozenset(entry.inputs) for entry in server.log} >= {frozenset(TEXTS[i] for i in indices)}
        retried = permanent == "500"
        assert info.value.attempts == (OPTIONS["max_retries"] + 1 if retried else 1)  # type: ignore[attr-defined]
        assert KEY not in str(info.value)


async def test_async_permanent_fault_returns_no_partial_result() -> None:
    with fake_endpoint(permanent="401") as server:
        async with AsyncEmbeddingClient(endpoint(server), rate_limiter=RateLimiter(10**9), **OPTIONS) as client:
            with pytest.raises(AuthenticationError):
                await client.embed(TEXTS[:100])


def assert_rate_respected(times: list[float], rpm: int, slack: int = 2) -> None:
    # The limiter spaces request *starts* (a bucket of one: at most window * rate + 1 in any
    # window). A request delayed after its slot by connection set-up can reach the server close
    # to the next one, so `slack` more are allowed in a window; the average is held to the limit.
    rate = rpm / 60
    for window in (1.0, 2.0):
        assert max_in_window(times, window) <= window * rate + 1 + slack, (window, max_in_window(times, window))
    # n requests need n - 1 intervals (less the slack, and 5 ms of arrival jitter at the ends)
    assert times[-1] - times[0] >= (len(times) - 1 - slack) / rate - 0.005


@pytest.mark.slow
def test_retries_never_push_the_rate_over_the_limit() -> None:
    rpm = 1200  # one request per 50 ms
    with fake_endpoint(seed=5, fault_rate=0.3, faults=("429", "500", "502", "503_loading")) as server:
        with EmbeddingClient(
            endpoint(server, rpm), batch_size=16, max_concurrency=4, rate_limiter=RateLimiter(rpm), **OPTIONS
        ) as client:
            assert client.embed(TEXTS[:640]) == EXPECTED[:640]
        times = sorted(entry.at for entry in server.log)
        assert len(times) > 40  # 40 batches plus their retries
        assert_rate_respected(times, rpm)


@pytest.mark.slow
def test_one_instance_from_8_threads_and_4_event_loops() -> None:
    rpm = 6000  # 10 ms apart, shared by every thread and loop
    with fake_endpoint(seed=6, fault_rate=0.1) as server:
        model = HFInferEmbeddings(
            url=server.embed_url,
            api_key=KEY,
            requests_per_minute=rpm,
            chunking_settings=NO_CHUNKING,
            batch_size=8,
            **OPTIONS,
        )
        results: dict[str, bool] = {}

        def in_thread(n: int) -> None:
            part = TEXTS[n * 40 : n * 40 + 40]
            results[f"thread-{n}"] = model.embed_documents(part) == [expected_vector(t) for t in part]

        def in_loop(n: int) -> None:
            part = TEXTS[1000 + n * 40 : 1000 + n * 40 + 40]
            got = asyncio.run(model.aembed_documents(part))
            results[f"loop-{n}"] = got == [expected_vector(t) for t in part]

        threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(8)]
        threads += [threading.Thread(target=in_loop, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results == {**{f"thread-{n}": True for n in range(8)}, **{f"loop-{n}": True for n in range(4)}}
        # four event loops each open their own connections: up to 4 slack requests each time
        assert_rate_respected(sorted(entry.at for entry in server.log), rpm, slack=4)
