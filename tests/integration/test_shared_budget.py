"""One rate budget for every process: a real redis-server, fork and spawn workers, a logging endpoint."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import socket
import threading
import time
from typing import Any

import pytest

from hf_infer_core import AsyncEmbeddingClient, EmbeddingClient, InferenceEndpoint, RateLimitBackendError, RateLimiter
from hf_infer_core.limits._ratelimit import RedisRateLimiter, bucket_key
from langchain_hf_infer import HFInferEmbeddings

from ..conftest import RedisServer
from ..fake_endpoint import expected_vector, fake_endpoint, max_in_window

RPM = 600


class Recording:
    """A rate limiter that notes the slot each request was given (time.monotonic: one clock for every process)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.slots = threading.local()

    def acquire(self, sleep: Any = time.sleep) -> float:
        started = time.monotonic()
        waited: float = self.inner.acquire(sleep)
        self.slots.last = started + waited
        return waited


def window_bound(delays: list[float], rpm: int, window: float) -> int:
    """The most arrivals any closed ``window`` may hold when slots are ``60 / rpm`` s apart (a burst of one).

    Slots alone: ``window / interval + 1``. An arrival comes a delay after its slot (sending,
    scheduling: what load changes), so arrivals in a window come from slots up to the largest
    measured delay earlier. Load widens the bound by exactly what it delayed; a limiter that
    hands out slots faster than ``rpm`` still exceeds it.
    """
    interval = 60 / rpm
    return math.floor((window + max(delays)) / interval + 1e-9) + 1


def embed_for(
    name: str, client: EmbeddingClient, limiter: Recording, until: float, threads: int = 2
) -> tuple[int, int, list[tuple[str, float]]]:
    """``threads`` threads embedding single texts as fast as the limiter lets them, until ``until``."""
    counts = [0, 0]  # texts, wrong vectors
    slots: list[tuple[str, float]] = []

    def run(thread: int) -> None:
        i = 0
        while time.monotonic() < until:
            text = f"{name} thread {thread} text {i}"
            vector = client.embed([text])[0]
            slots.append((text, limiter.slots.last))
            counts[0] += 1
            counts[1] += vector != expected_vector(text)
            i += 1

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts[0], counts[1], slots


def _worker(name: str, url: str, backend: str, until: float) -> tuple[int, int, list[tuple[str, float]]]:
    """Two threads of one process drawing on the Redis budget."""
    endpoint = InferenceEndpoint.from_url(url, "k", requests_per_minute=RPM)
    limiter = Recording(RedisRateLimiter(backend, bucket_key(endpoint.url, endpoint.api_key), RPM))
    client = EmbeddingClient(endpoint, rate_limiter=limiter, batch_size=1, max_concurrency=1, discover=False)  # type: ignore[arg-type]
    return embed_for(name, client, limiter, until)


def delays_and_arrivals(log: list[Any], slots: list[tuple[str, float]]) -> tuple[list[float], list[float]]:
    arrival = {entry.inputs[0]: entry.at for entry in log}
    return [arrival[text] - slot for text, slot in slots], sorted(arrival.values())


@pytest.mark.slow
def test_four_processes_share_one_budget(redis_server: RedisServer) -> None:
    seconds = 30.0
    with fake_endpoint() as server:
        until = time.monotonic() + seconds  # CLOCK_MONOTONIC: one clock for every process here
        results: list[Any] = []
        pools = [multiprocessing.get_context(method).Pool(2) for method in ("fork", "spawn")]
        try:
            for method, pool in zip(("fork", "spawn"), pools, strict=True):
                for n in range(2):
                    results.append(
                        pool.apply_async(_worker, (f"{method}-{n}", server.embed_url, redis_server.url, until))
                    )
            counts = [r.get(timeout=seconds + 60) for r in results]
        finally:
            for pool in pools:
                pool.close()
                pool.join()
        log = server.log
    delays, times = delays_and_arrivals(log, [slot for c in counts for slot in c[2]])
    assert sum(c[1] for c in counts) == 0, "a text got another text's vector"
    assert sum(c[0] for c in counts) == len(log)
    assert all(c[0] > 0 for c in counts), "every process got a share"
    busiest, bound = max_in_window(times, 10.0), window_bound(delays, RPM, 10.0)
    achieved = (len(times) - 1) / (times[-1] - times[0]) * 60
    print(
        f"shared budget: {len(times)} requests, {achieved:.1f}/min of {RPM}, {busiest} in the busiest 10 s "
        f"(bound {bound}: largest delay after a slot {max(delays) * 1000:.1f} ms)"
    )
    assert busiest <= bound
    assert achieved >= 0.97 * RPM, f"{achieved:.1f}/min of {RPM}"


@pytest.mark.parametrize(("rate", "within"), [(RPM, True), (2 * RPM, False)], ids=["correct", "broken-2x"])
def test_the_window_bound_catches_a_limiter_that_exceeds_the_budget(rate: int, within: bool) -> None:
    """The same check against a limiter that is right, and one that hands out slots twice as fast."""
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=RPM)
        limiter = Recording(RateLimiter(rate))
        client = EmbeddingClient(endpoint, rate_limiter=limiter, batch_size=1, max_concurrency=1, discover=False)  # type: ignore[arg-type]
        _, wrong, slots = embed_for("probe", client, limiter, time.monotonic() + 4.0, threads=3)
        log = server.log
    delays, times = delays_and_arrivals(log, slots)
    assert wrong == 0
    assert (max_in_window(times, 3.0) <= window_bound(delays, RPM, 3.0)) is within


def test_redis_restarted_mid_run_embeds_every_text_exactly_once(redis_server: RedisServer) -> None:
    texts = [f"text {i}" for i in range(150)]
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=6000)
        client = EmbeddingClient(
            endpoint, rate_limit_backend=redis_server.url, batch_size=1, max_concurrency=4, retry_deadline=15.0
        )

        def restart() -> None:
            redis_server.stop()
            time.sleep(0.5)
            redis_server.start()

        outage = threading.Timer(0.4, restart)
        outage.start()
        vectors = client.embed(texts)
        outage.join()
        sent = [text for entry in server.log for text in entry.inputs]
    assert vectors == [expected_vector(t) for t in texts]
    assert sorted(sent) == sorted(texts)  # exactly once each


def test_redis_gone_for_good_is_a_typed_error_naming_the_unembedded_texts(redis_server: RedisServer) -> None:
    texts = [f"text {i}" for i in range(400)]
    got: list[list[float]] = []
    with fake_endpoint() as server:
        model = HFInferEmbeddings(
            url=server.embed_url,
            api_key="k",
            requests_per_minute=6000,
            rate_limit_backend=redis_server.url,
            batch_size=4,
            max_concurrency=2,
            retry_deadline=2.0,
        )
        outage = threading.Timer(0.5, redis_server.stop)
        outage.start()
        try:
            with pytest.raises(RateLimitBackendError) as info:
                got.extend(model.embed_iter(texts))
        finally:
            outage.join()
            redis_server.start()
        sent = {text for entry in server.log for text in entry.inputs}
    # A stopped Redis refuses connections: reported within connect_retry_deadline (issue #27, case 4).
    assert "127.0.0.1" in str(info.value) and "refused every connection" in str(info.value)
    resume = info.value.indices[0]
    assert got == [expected_vector(t) for t in texts[: len(got)]]
    assert resume == len(got)  # every earlier text was yielded; resume here
    assert not {texts[i] for i in info.value.indices} & sent  # the named texts were never sent
    assert sent >= set(texts[: len(got)])


def test_rate_limit_backend_is_validated_and_never_echoed() -> None:
    with pytest.raises(ValueError, match="rate_limit_backend"):
        EmbeddingClient(InferenceEndpoint.from_url("http://h/embed", "k"), rate_limit_backend="memcached://secret@h")
    with pytest.raises(ValueError) as info:
        EmbeddingClient(InferenceEndpoint.from_url("http://h/embed", "k"), rate_limit_backend="redis-ish:pw@h")
    assert "pw@h" not in str(info.value)
    client = EmbeddingClient(
        InferenceEndpoint.from_url("http://h/embed", "k"), rate_limit_backend="redis://:s3cret-pw@127.0.0.1:1/0"
    )
    assert "s3cret-pw" not in repr(client.rate_limiter) + repr(client.options)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_refused_redis_is_raised_by_the_first_probe_not_absorbed_and_met_again(driver: str) -> None:
    """Issue #40, case 10: the /info probe's refusal by the Redis budget is the call's error, at once."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        refused = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    with fake_endpoint() as server:
        endpoint = InferenceEndpoint.from_url(server.embed_url, "k", requests_per_minute=600)
        cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
        client = cls(endpoint, rate_limit_backend=refused, connect_retry_deadline=0.3)
        tokens = []
        acquire = client.rate_limiter.acquire

        def counted(*args: Any, **kwargs: Any) -> Any:
            tokens.append(1)
            return acquire(*args, **kwargs)

        client.rate_limiter.acquire = counted  # type: ignore[method-assign]
        if driver == "async":
            aacquire = client.rate_limiter.aacquire

            async def acounted(*args: Any, **kwargs: Any) -> Any:
                tokens.append(1)
                return await aacquire(*args, **kwargs)

            client.rate_limiter.aacquire = acounted  # type: ignore[method-assign]

        def call() -> Any:
            result = client.embed(["a text"])
            return asyncio.run(result) if driver == "async" else result

        with pytest.raises(RateLimitBackendError, match="refused every connection"):
            call()
        assert len(tokens) == 1 and server.log == []  # one wait for the budget, no request sent
