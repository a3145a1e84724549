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
    RetryPolicy,
    ServerError,
    TimeoutError,
    decide,
    shared_rate_limiter,
)

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


def test_give_up_cases() -> None:
    rng = random.Random(0)
    assert not decide(POLICY, 1, error(AuthenticationError, status_code=401), 0, rng).retry
    assert not decide(POLICY, 4, error(ServerError), 0, rng).retry
    assert not decide(POLICY, 1, error(RateLimitError, status_code=429, retry_after=20.0), 45.0, rng).retry
    assert not decide(POLICY, 1, ResponseFormatError("wrong count"), 0, rng).retry
    assert decide(POLICY, 1, ResponseFormatError("cut off", transient=True), 0, rng).retry
    assert decide(POLICY, 1, TimeoutError("slow"), 0, rng).retry
