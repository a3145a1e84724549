from __future__ import annotations

import asyncio
import random
import threading

import pytest

from hf_infer_core import (
    AuthenticationError,
    ModelLoadingError,
    RateLimiter,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TimeoutError,
    TransportError,
    shared_rate_limiter,
)
from hf_infer_core.limits._ratelimit import (
    bucket_key,
)
from hf_infer_core.protocol._retry import RetryPolicy, decide

from .fakes import FakeClock


def test_bucket_starts_full_then_spaces_evenly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3000, clock=clock)
    assert limiter.interval == pytest.approx(0.02)
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 0.02, 0.04, 0.06])
    clock.now += 1.0  # idle time does not bank more than one request
    assert [limiter.reserve() for _ in range(2)] == pytest.approx([0.0, 0.02])


def test_acquire_sleeps_for_the_slot() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock)
    assert limiter.acquire(clock.sleep) == 0.0
    assert limiter.acquire(clock.sleep) == 1.0
    assert clock.sleeps == [1.0]
    assert "60/min" in repr(limiter)


def test_shared_across_event_loops_in_threads() -> None:
    clock = FakeClock()
    limiter = RateLimiter(120, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    async def use() -> None:
        async def no_sleep(seconds: float) -> None:
            return None

        for _ in range(3):
            wait = await limiter.aacquire(no_sleep)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=asyncio.run, args=(use(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([i * 0.5 for i in range(12)])


def test_shared_limiter_per_url_takes_the_stricter_limit() -> None:
    a = shared_rate_limiter("http://shared.test/a", 600)
    assert shared_rate_limiter("http://shared.test/a", 1200) is a
    assert a.requests_per_minute == 600
    assert shared_rate_limiter("http://shared.test/a", 60) is a
    assert a.requests_per_minute == 60
    assert shared_rate_limiter("http://shared.test/b", 60) is not a


SPELLINGS = [
    "HTTP://127.0.0.1:80/embed",
    "http://127.0.0.1/embed/",
    "http://127.0.0.1/embed",
    "http://127.0.0.1:80/embed/",
    "Http://127.0.0.1/embed",
    "http://127.0.0.1:80/embed//",
]


def test_spellings_of_one_endpoint_share_one_bucket() -> None:
    from hf_infer_core import EmbeddingClient, InferenceEndpoint

    clients = [EmbeddingClient(InferenceEndpoint.from_url(url, "k", requests_per_minute=60)) for url in SPELLINGS]
    assert len({id(c.rate_limiter) for c in clients}) == 1
    assert len({bucket_key(url) for url in SPELLINGS}) == 1
    assert bucket_key("https://h:443/e") == bucket_key("https://H/e/")
    assert bucket_key("http://h:8080/e") != bucket_key("http://h/e")
    # Another key on the same URL is another budget (a token's own limit); the key never shows.
    other = EmbeddingClient(InferenceEndpoint.from_url(SPELLINGS[0], "other-key", requests_per_minute=60))
    assert other.rate_limiter is not clients[0].rate_limiter
    assert "other-key" not in bucket_key(SPELLINGS[0], other.endpoint.api_key)


def test_a_gone_strict_client_does_not_slow_later_ones() -> None:
    import gc

    from hf_infer_core import EmbeddingClient, InferenceEndpoint

    url = "http://bucket-life.test/embed"
    strict = EmbeddingClient(InferenceEndpoint.from_url(url, "k", requests_per_minute=1))
    loose = EmbeddingClient(InferenceEndpoint.from_url(url, "k", requests_per_minute=60))
    assert loose.rate_limiter is strict.rate_limiter
    assert loose.rate_limiter.requests_per_minute == 1  # live clients share the smaller limit
    del strict
    gc.collect()
    assert loose.rate_limiter.requests_per_minute == 60  # ... and only while the strict one lives
    del loose
    gc.collect()
    later = EmbeddingClient(InferenceEndpoint.from_url(url, "k", requests_per_minute=600))
    assert later.rate_limiter.requests_per_minute == 600  # the bucket died with its clients


def test_a_holder_collected_while_its_limiter_is_locked_does_not_deadlock() -> None:
    """A collection can run a holder's finalizer in the thread inside reserve(): it must not hang.

    It did (once, in a CI run): the finalizer took the limiter's lock, which that thread held.
    """
    import gc
    import threading

    class Holder:
        def __init__(self) -> None:
            self.cycle = self  # collected only by a collection, at whatever point one runs

    calls = [0]

    def clock() -> float:  # runs inside reserve(), with the lock held
        calls[0] += 1
        if calls[0] == 1:
            gc.collect()
        return 0.0

    limiter = RateLimiter(60, clock=clock)
    limiter.attach(Holder(), 1)  # unreachable at once, but alive until a collection
    done = threading.Event()
    gc.disable()  # only the collection inside reserve() may collect the holder
    try:
        thread = threading.Thread(target=lambda: (limiter.reserve(), done.set()), daemon=True)
        thread.start()
        assert done.wait(5), "reserve() deadlocked on the finalizer of a collected holder"
    finally:
        gc.enable()
    assert limiter.requests_per_minute == 1  # no holder left: the last limit stays in force


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


POLICY = RetryPolicy(max_retries=3, initial_backoff=1.0, max_backoff=5.0, max_retry_wait=30.0, deadline=60.0)


def error(cls: type, **kwargs: object):  # type: ignore[no-untyped-def]
    return cls("x", status_code=kwargs.pop("status_code", 500), **kwargs)


def test_backoff_doubles_with_equal_jitter_and_caps() -> None:
    rng = random.Random(3)
    waits = [decide(POLICY, a, error(ServerError), 0.0, rng).wait for a in (1, 2, 3)]
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0
    assert 2.0 <= waits[2] <= 4.0
    capped = RetryPolicy(max_retries=9, max_backoff=5.0)
    assert 2.5 <= decide(capped, 8, error(ServerError), 0.0, rng).wait <= 5.0


def test_hints_are_honoured_and_bounded() -> None:
    rng = random.Random(0)
    assert decide(POLICY, 1, error(RateLimitError, status_code=429, retry_after=12.0), 0, rng).wait == 12.0
    assert decide(POLICY, 1, error(RateLimitError, status_code=429, retry_after=99.0), 0, rng).wait == 30.0
    assert decide(POLICY, 1, error(ModelLoadingError, status_code=503, estimated_time=20.0), 0, rng).wait == 20.0


def test_a_full_queue_backs_off_from_overload_backoff_and_a_hint_still_wins() -> None:
    rng = random.Random(5)
    paced = RetryPolicy(max_retries=5, overload_backoff=0.1, max_backoff=5.0, deadline=60.0)
    full = error(RateLimitError, status_code=429, error_type="overloaded")
    waits = [decide(paced, a, full, 0.0, rng).wait for a in (1, 2, 3)]
    assert 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2 and 0.2 <= waits[2] <= 0.4
    assert 0.5 <= decide(paced, 1, error(RateLimitError, status_code=429), 0.0, rng).wait <= 1.0  # a quota
    assert 0.5 <= decide(paced, 1, error(ServerError), 0.0, rng).wait <= 1.0
    assert (
        decide(paced, 1, error(RateLimitError, status_code=429, error_type="overloaded", retry_after=3.0), 0, rng).wait
        == 3.0
    )
    assert 0.5 <= decide(POLICY, 1, full, 0.0, rng).wait <= 1.0  # no adaptive limit: Elasticsearch's backoff


def test_give_up_cases() -> None:
    rng = random.Random(0)
    assert not decide(POLICY, 1, error(AuthenticationError, status_code=401), 0, rng).retry
    assert not decide(POLICY, 4, error(ServerError), 0, rng).retry
    assert not decide(POLICY, 1, error(RateLimitError, status_code=429, retry_after=20.0), 45.0, rng).retry
    assert not decide(POLICY, 1, ResponseFormatError("wrong count"), 0, rng).retry
    assert decide(POLICY, 1, ResponseFormatError("cut off", transient=True), 0, rng).retry
    assert decide(POLICY, 1, TimeoutError("slow"), 0, rng).retry
    reset, untrusted = TransportError("reset"), TransportError("certificate not accepted")
    untrusted.untrusted = True
    assert decide(POLICY, 1, reset, 0, rng).retry and not decide(POLICY, 1, untrusted, 0, rng).retry
