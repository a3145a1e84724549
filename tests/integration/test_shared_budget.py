"""One rate budget for every process: a real redis-server, fork and spawn workers, a logging endpoint."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest

from hf_infer_core import EmbeddingClient, InferenceEndpoint, RateLimitBackendError
from langchain_hf_infer import HFInferEmbeddings

from ..conftest import RedisServer
from ..fake_endpoint import expected_vector, fake_endpoint, max_in_window

RPM = 600


def _worker(name: str, url: str, backend: str, until: float) -> tuple[int, int]:
    """Two threads embedding single texts as fast as the shared budget lets them, until ``until``."""
    endpoint = InferenceEndpoint.from_url(url, "k", requests_per_minute=RPM)
    client = EmbeddingClient(endpoint, rate_limit_backend=backend, batch_size=1, max_concurrency=1)
    counts = [0, 0]  # texts, wrong vectors

    def run(thread: int) -> None:
        i = 0
        while time.monotonic() < until:
            text = f"{name} thread {thread} text {i}"
            vector = client.embed([text])[0]
            counts[0] += 1
            counts[1] += vector != expected_vector(text)
            i += 1

    threads = [threading.Thread(target=run, args=(t,)) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts[0], counts[1]


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
    times = sorted(entry.at for entry in log)
    assert sum(c[1] for c in counts) == 0, "a text got another text's vector"
    assert sum(c[0] for c in counts) == len(log)
    assert all(c[0] > 0 for c in counts), "every process got a share"
    assert max_in_window(times, 10.0) <= RPM // 6 + 1
    achieved = (len(times) - 1) / (times[-1] - times[0]) * 60
    print(
        f"shared budget: {len(times)} requests, {achieved:.1f}/min of {RPM}, {max_in_window(times, 10.0)} in the busiest 10 s"
    )
    assert achieved >= 0.97 * RPM, f"{achieved:.1f}/min of {RPM}"


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
    assert "127.0.0.1" in str(info.value) and "did not answer" in str(info.value)
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
